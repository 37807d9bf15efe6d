"""Who holds a dedup claim, and whether that process is still alive.

An owner is ``host:pid:start``, where ``start`` is the process's start time in clock ticks since boot
(``/proc/<pid>/stat`` field 22): a pid reused by a later process has another start time, so a claim
is never mistaken for a live one's. Only owners on this host can be judged; any other owner counts as
alive and its claim waits for the claim timeout.
"""

from __future__ import annotations

import os
import socket
from functools import cache

_HOST = socket.gethostname()


def _start_ticks(pid: int) -> str | None:
    """The start time of ``pid`` in ticks since boot, or None when no such process runs.

    A zombie (killed, not yet reaped: its parent died too and nobody has waited for it) runs no more.
    """
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            stat = fh.read().decode("ascii", "replace")
    except (FileNotFoundError, ProcessLookupError):
        return None
    except OSError:
        return ""  # unreadable: alive, start unknown
    # The command name (field 2) is in parentheses and may hold spaces; fields after it are plain.
    fields = stat[stat.rfind(")") + 2 :].split()
    if fields and fields[0] in ("Z", "X"):  # field 3, the state: zombie or dead
        return None
    return fields[19] if len(fields) > 19 else ""


@cache
def _owner_of(pid: int) -> str:
    return f"{_HOST}:{pid}:{_start_ticks(pid) or ''}"


def process_owner() -> str:
    """This process's owner string (recomputed after a fork, since the pid changes)."""
    return _owner_of(os.getpid())


def owner_is_dead(owner: str) -> bool:
    """True only when ``owner`` names a process on this host that no longer runs."""
    parts = owner.rsplit(":", 2)
    if len(parts) != 3 or not parts[1].isdigit():
        return False
    host, pid, start = parts[0], int(parts[1]), parts[2]
    if host != _HOST:
        return False
    current = _start_ticks(pid)
    if current is None:
        return True
    return bool(start) and bool(current) and current != start
