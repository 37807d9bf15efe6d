"""Process-wide caches and store clients, registered in one place so they can be forgotten together.

A module that keeps state for the life of a process (a built store client, a cache of tenants or keys,
the WAL writer) registers, at import, the function that forgets it. ``reset_all`` calls every one:
the test suite does between tests, so each test meets the settings it runs with and no state left by
the one before. A module that was never imported holds no state, so registering at import is enough;
nothing has to list the modules by hand.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

_resets: dict[str, Callable[[], None]] = {}
_lock = threading.Lock()


def register(name: str, reset: Callable[[], None]) -> None:
    """Register ``reset`` as the way to forget the state called ``name`` (``"<app>.<what>"``).

    Registering a name again replaces the earlier function, so a reloaded module is not reset twice.
    """
    with _lock:
        _resets[name] = reset


def registered() -> list[str]:
    """The names registered so far, in registration order."""
    with _lock:
        return list(_resets)


def reset_all() -> None:
    """Call every registered reset, in registration order.

    One that fails does not keep the others from running; the first failure is raised at the end.
    """
    with _lock:
        resets = list(_resets.values())
    failure: BaseException | None = None
    for reset in resets:
        try:
            reset()
        except Exception as exc:  # the others must still be forgotten
            failure = failure or exc
    if failure is not None:
        raise failure
