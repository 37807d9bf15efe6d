"""The agent's outbox WAL (DESIGN §4): nothing is sent that is not on disk first.

A directory holding ``outbox.log``, ``dead-letter.jsonl`` and ``outbox.lock``. The log is append-only
JSON lines, each prefixed with its CRC-32 (``<8 hex> <json>\\n``), so a line torn by a crash is detected
and dropped. Records:

- ``put``: a PCS entered the outbox (fsynced before ``put`` returns, so before it is ever sent);
- ``attempt``: a send and what came back (not fsynced: it is information, not state); a PCS sent in a
  batch notes the batch's size;
- ``ack``: the server decided it (200 or 202, replayed or not);
- ``dead``: a permanent refusal or an exhausted retry budget, with the reason (also copied to
  ``dead-letter.jsonl`` for people);
- ``retry``: an operator sent a dead record back to pending (``flk-agent outbox retry-dead``); with
  ``pcs``, the record was re-signed (``--resign``) and that PCS replaces the stored one;
- ``purge``: an operator removed a dead record for good (``flk-agent outbox purge-dead``).

One process at a time: the outbox holds an exclusive ``flock`` on ``outbox.lock`` while open, and a
second process gets ``OutboxLocked`` naming the holder, instead of two senders racing.
"""

from __future__ import annotations

import fcntl
import json
import os
import time
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

LOG_NAME = "outbox.log"
DEAD_LETTER_NAME = "dead-letter.jsonl"
LOCK_NAME = "outbox.lock"

PENDING = "pending"
ACKED = "acked"
DEAD = "dead"


class OutboxLocked(RuntimeError):
    """Another process has this outbox open."""


@dataclass
class OutboxRecord:
    """One PCS in the outbox and what has happened to it."""

    seq: int
    pcs: dict[str, Any]
    state: str = PENDING
    put_at: float = 0.0
    attempts: int = 0
    last_status: int | None = None
    last_error: str | None = None
    acked_at: float | None = None
    dead_reason: str | None = None
    dead_detail: str | None = None
    history: list[dict[str, Any]] = field(default_factory=list)

    @property
    def pcs_id(self) -> str:
        """The PCS's id."""
        return self.pcs["pcs_id"]


@dataclass(frozen=True)
class DeadLetter:
    """Why one PCS stops being sent: the reason (the server's error code, or the agent's own) and detail."""

    record: OutboxRecord
    reason: str
    status: int | None = None
    detail: str | None = None


def _encode(entry: dict[str, Any]) -> bytes:
    text = json.dumps(entry, separators=(",", ":"), ensure_ascii=False)
    return f"{zlib.crc32(text.encode()):08x} {text}\n".encode()


def _decode_lines(data: bytes) -> tuple[list[dict[str, Any]], int]:
    """Whole, CRC-valid lines and the byte length they cover; stops at the first torn one."""
    entries: list[dict[str, Any]] = []
    pos = 0
    while True:
        end = data.find(b"\n", pos)
        if end < 0:
            break
        line = data[pos:end]
        crc, _, text = line.partition(b" ")
        try:
            if int(crc, 16) != zlib.crc32(text):
                break
            entries.append(json.loads(text))
        except ValueError:
            break
        pos = end + 1
    return entries, pos


class Outbox:
    """An open outbox; use as a context manager so the lock is always released."""

    def __init__(self, directory: str | os.PathLike[str], *, clock: Any = time.time) -> None:
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self._clock = clock
        self._lock_fd = os.open(self.directory / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(self._lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(self._lock_fd, 64, 0).decode(errors="replace").strip() or "unknown"
            os.close(self._lock_fd)
            raise OutboxLocked(
                f"outbox {self.directory} is in use by another process (pid {holder}); "
                "one outbox serves one agent process at a time"
            ) from None
        os.ftruncate(self._lock_fd, 0)
        os.pwrite(self._lock_fd, str(os.getpid()).encode(), 0)
        self.records: dict[int, OutboxRecord] = {}
        self._load()
        self._log = open(self.directory / LOG_NAME, "ab")  # noqa: SIM115 - closed in close()

    # -- state ------------------------------------------------------------------------------------

    def _load(self) -> None:
        path = self.directory / LOG_NAME
        if not path.exists():
            return
        data = path.read_bytes()
        entries, valid = _decode_lines(data)
        if valid < len(data):
            # A torn last line: the write it belonged to never returned, so nothing depended on it.
            with open(path, "r+b") as fh:
                fh.truncate(valid)
                os.fsync(fh.fileno())
        for entry in entries:
            self._apply(entry)

    def _apply(self, entry: dict[str, Any]) -> None:
        op, seq = entry["op"], entry["seq"]
        if op == "put":
            self.records[seq] = OutboxRecord(seq=seq, pcs=entry["pcs"], put_at=entry["at"])
            return
        record = self.records.get(seq)
        if record is None:  # compacted away
            return
        if op == "attempt":
            record.attempts += 1
            record.last_status = entry.get("status")
            record.last_error = entry.get("error")
            record.history.append(entry)
        elif op == "ack":
            record.state, record.acked_at = ACKED, entry["at"]
            record.last_status = entry["status"]
        elif op == "dead":
            record.state, record.dead_reason = DEAD, entry["reason"]
            record.dead_detail = entry.get("detail")
        elif op == "retry":
            record.state, record.dead_reason, record.dead_detail, record.attempts = PENDING, None, None, 0
            if "pcs" in entry:
                record.pcs = entry["pcs"]
        elif op == "purge":
            del self.records[seq]

    def _append(self, entry: dict[str, Any], *, durable: bool) -> None:
        self._append_many([entry], durable=durable)

    def _append_many(self, entries: list[dict[str, Any]], *, durable: bool) -> None:
        """Write entries, then fsync once: a batch's marks cost one fsync, not one per PCS.

        Entries apply in memory only once they are written (and durable when asked), so nothing is
        reported as stored before it is.
        """
        if not entries:
            return
        self._log.write(b"".join(_encode(entry) for entry in entries))
        self._log.flush()
        if durable:
            os.fsync(self._log.fileno())
        for entry in entries:
            self._apply(entry)

    # -- operations -------------------------------------------------------------------------------

    def put(self, pcs: dict[str, Any]) -> OutboxRecord:
        """Store a PCS durably (fsync) and return its record; it is pending until acked."""
        return self.put_many([pcs])[0]

    def put_many(self, pcs_list: list[dict[str, Any]]) -> list[OutboxRecord]:
        """Store several PCS durably with one fsync and return their records, in order."""
        first, now = max(self.records, default=0) + 1, self._clock()
        entries = [{"op": "put", "seq": first + i, "at": now, "pcs": pcs} for i, pcs in enumerate(pcs_list)]
        self._append_many(entries, durable=True)
        return [self.records[entry["seq"]] for entry in entries]

    def record_attempt(
        self,
        record: OutboxRecord,
        *,
        status: int | None,
        error: str | None = None,
        retry_after: float | None = None,
        waited: float | None = None,
        batch: int | None = None,
    ) -> None:
        """Note one send and its outcome (``batch``: how many PCS the request carried, when batched)."""
        entry: dict[str, Any] = {"op": "attempt", "seq": record.seq, "at": self._clock(), "status": status}
        if error:
            entry["error"] = error
        if retry_after is not None:
            entry["retry_after"] = retry_after
        if waited is not None:
            entry["waited"] = waited
        if batch is not None:
            entry["batch"] = batch
        self._append(entry, durable=False)

    def ack(self, record: OutboxRecord, status: int) -> None:
        """The server decided the PCS: it will not be sent again."""
        self.ack_many([(record, status)])

    def ack_many(self, acks: list[tuple[OutboxRecord, int]]) -> None:
        """Mark several PCS decided, each with the status it got, with one fsync."""
        now = self._clock()
        self._append_many(
            [{"op": "ack", "seq": record.seq, "at": now, "status": status} for record, status in acks],
            durable=True,
        )

    def dead_letter(
        self, record: OutboxRecord, reason: str, *, status: int | None = None, detail: str | None = None
    ) -> None:
        """Stop sending a PCS and say why, in the log and in the dead-letter file."""
        self.dead_letter_many([DeadLetter(record, reason, status, detail)])

    def dead_letter_many(self, letters: list[DeadLetter]) -> None:
        """Stop sending several PCS, each with its reason; one fsync for the log, one for the file."""
        if not letters:
            return
        now = self._clock()
        self._append_many(
            [
                {"op": "dead", "seq": d.record.seq, "at": now, "reason": d.reason}
                | ({"detail": d.detail} if d.detail else {})
                for d in letters
            ],
            durable=True,
        )
        lines = [
            json.dumps(
                {
                    "seq": d.record.seq,
                    "pcs_id": d.record.pcs_id,
                    "at": now,
                    "reason": d.reason,
                    "status": d.status,
                    "detail": d.detail,
                    "pcs": d.record.pcs,
                },
                ensure_ascii=False,
            )
            + "\n"
            for d in letters
        ]
        with open(self.directory / DEAD_LETTER_NAME, "a", encoding="utf-8") as fh:
            fh.write("".join(lines))
            fh.flush()
            os.fsync(fh.fileno())

    def retry_dead(self, *, resign: Callable[[dict[str, Any]], dict[str, Any]] | None = None) -> int:
        """Send every dead-lettered PCS back to pending; return how many.

        ``resign`` (a PCS in, the re-signed PCS out) replaces each one's signature first, for dead
        letters caused by a wrong key: the signed fields, and so the pcs_id, stay as they were.
        """
        now = self._clock()
        entries = []
        for record in self.dead():
            entry: dict[str, Any] = {"op": "retry", "seq": record.seq, "at": now}
            if resign is not None:
                entry["pcs"] = resign(dict(record.pcs))
            entries.append(entry)
        self._append_many(entries, durable=True)
        return len(entries)

    def purge_dead(self) -> list[OutboxRecord]:
        """Remove every dead-lettered PCS from the outbox for good; return them.

        ``dead-letter.jsonl`` keeps their lines, as the history of what was given up.
        """
        dead = self.dead()
        now = self._clock()
        self._append_many([{"op": "purge", "seq": r.seq, "at": now} for r in dead], durable=True)
        return dead

    def dead(self) -> list[OutboxRecord]:
        """Dead-lettered records, oldest first."""
        return sorted((r for r in self.records.values() if r.state == DEAD), key=lambda r: r.seq)

    def pending(self) -> Iterator[OutboxRecord]:
        """Pending records, oldest first."""
        return iter(sorted((r for r in self.records.values() if r.state == PENDING), key=lambda r: r.seq))

    def counts(self) -> dict[str, int]:
        """How many records are pending, acked and dead."""
        out = {PENDING: 0, ACKED: 0, DEAD: 0}
        for record in self.records.values():
            out[record.state] += 1
        return out

    def compact(self, *, horizon_seconds: float) -> int:
        """Rewrite the log without records acked longer than ``horizon_seconds`` ago; return how many.

        Pending and dead records, and recently acked ones, are kept with their history. The new log is
        written beside the old one, fsynced and renamed over it, so a crash leaves one or the other.
        """
        cutoff = self._clock() - horizon_seconds
        drop = {s for s, r in self.records.items() if r.state == ACKED and (r.acked_at or 0) < cutoff}
        if not drop:
            return 0
        tmp = self.directory / (LOG_NAME + ".compact")
        with open(tmp, "wb") as fh:
            for seq in sorted(set(self.records) - drop):
                fh.write(b"".join(_encode(e) for e in self._entries_of(self.records[seq])))
            fh.flush()
            os.fsync(fh.fileno())
        self._log.close()
        os.replace(tmp, self.directory / LOG_NAME)
        dir_fd = os.open(self.directory, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
        for seq in drop:
            del self.records[seq]
        self._log = open(self.directory / LOG_NAME, "ab")  # noqa: SIM115
        return len(drop)

    @staticmethod
    def _entries_of(record: OutboxRecord) -> list[dict[str, Any]]:
        entries: list[dict[str, Any]] = [
            {"op": "put", "seq": record.seq, "at": record.put_at, "pcs": record.pcs}
        ]
        entries += record.history
        if record.state == ACKED:
            entries.append(
                {"op": "ack", "seq": record.seq, "at": record.acked_at, "status": record.last_status}
            )
        elif record.state == DEAD:
            entries.append(
                {
                    "op": "dead",
                    "seq": record.seq,
                    "at": record.acked_at or record.put_at,
                    "reason": record.dead_reason,
                }
                | ({"detail": record.dead_detail} if record.dead_detail else {})
            )
        return entries

    def close(self) -> None:
        """Close the log and release the lock."""
        if self._lock_fd < 0:
            return
        self._log.close()
        os.close(self._lock_fd)  # releases the flock
        self._lock_fd = -1

    def __enter__(self) -> Outbox:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
