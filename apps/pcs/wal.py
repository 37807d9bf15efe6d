"""The inbox write-ahead log (DESIGN §4).

Append-only segment files in ``WAL_DIR``, one writer per process, each record framed as
``length (u32 BE) | CRC-32 (u32 BE) | payload``. A request record holds the raw body, the tenant
header and the receive time; an outcome record says that a request got a final answer, so replay can
skip it. Outcome records are never fsynced on their own: a lost one only costs an idempotent re-run.

A writer holds an exclusive ``flock`` on its active segment; a segment nobody holds is closed (rotated,
or its process died), which is what lets replay cut its torn tail safely.
"""

from __future__ import annotations

import fcntl
import logging
import os
import struct
import threading
import time
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from flk_project.caches import register
from flk_project.fsync import fsync_dir

logger = logging.getLogger("flk.wal")

FRAME = struct.Struct(">II")  # payload length, CRC-32 of the payload
REQUEST_HEAD = struct.Struct(">BqH")  # record type, received_at (ns since epoch), tenant length
OUTCOME_HEAD = struct.Struct(">BQHH")  # record type, request offset, status, segment-name length
REC_REQUEST = 1
REC_OUTCOME = 2
REC_BATCH = 3  # a submit:batch body: the same layout as a request
NO_TENANT = 0xFFFF  # tenant length marking "no X-Tenant-Id header"
MAX_RECORD_BYTES = 16 * 1024 * 1024  # a frame claiming more is corruption, not data
SEGMENT_SUFFIX = ".wal"
DONE_SUFFIX = ".wal.done"


class WalError(Exception):
    """The WAL could not make a record durable."""


@dataclass(frozen=True)
class WalRef:
    """Where a request record lives: its segment's file name and byte offset."""

    segment: str
    offset: int


@dataclass(frozen=True)
class WalRequest:
    """A request as the WAL kept it."""

    ref: WalRef
    received_at: datetime
    tenant_header: str | None
    body: bytes
    batch: bool = False


@dataclass(frozen=True)
class WalOutcome:
    """A marker saying the request at ``ref`` got a final answer with ``status``."""

    ref: WalRef
    status: int


def encode_request(
    body: bytes, tenant_header: str | None, received_at: datetime, batch: bool = False
) -> bytes:
    """Payload bytes of a request record (a batch record when ``batch``)."""
    tenant = tenant_header.encode() if tenant_header is not None else b""
    tenant_len = len(tenant) if tenant_header is not None else NO_TENANT
    ns = int(received_at.timestamp() * 1_000_000) * 1000
    return REQUEST_HEAD.pack(REC_BATCH if batch else REC_REQUEST, ns, tenant_len) + tenant + body


def encode_outcome(ref: WalRef, status: int) -> bytes:
    """Payload bytes of an outcome record."""
    name = ref.segment.encode()
    return OUTCOME_HEAD.pack(REC_OUTCOME, ref.offset, status, len(name)) + name


def frame(payload: bytes) -> bytes:
    """Length + CRC-32 + payload."""
    return FRAME.pack(len(payload), zlib.crc32(payload)) + payload


class _Segment:
    """One open segment file and the group-commit state of its fsyncs."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND, 0o600)
        fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        self.size = 0
        self.written = 0  # bytes handed to the kernel
        self.synced = 0  # bytes known durable
        self.syncing = False
        self.closed = False
        self.cond = threading.Condition()

    def sync_upto(self, upto: int, window: float) -> None:
        """Return once the first ``upto`` bytes are durable; one thread fsyncs for all waiting.

        The leader sleeps ``window`` seconds first (group mode) so that more appends share its fsync;
        with a zero window this is plain fsync-per-append that still merges concurrent callers.
        """
        with self.cond:
            while self.synced < upto and not self.closed:
                if self.syncing:
                    self.cond.wait()
                    continue
                self.syncing = True
                self.cond.release()
                try:
                    if window > 0:
                        time.sleep(window)
                    target = self.written
                    os.fdatasync(self.fd)
                finally:
                    self.cond.acquire()
                    self.syncing = False
                    self.cond.notify_all()
                self.synced = max(self.synced, target)

    def close(self) -> None:
        """Make everything durable, drop the lock and close the file."""
        with self.cond:
            while self.syncing:
                self.cond.wait()
            if self.closed:
                return
            os.fdatasync(self.fd)
            self.synced = self.written
            self.closed = True
            os.close(self.fd)  # closing the descriptor releases the flock
            self.cond.notify_all()


class WalWriter:
    """The append side of the inbox WAL for one process; thread-safe."""

    def __init__(self, directory: Path, fsync_mode: str, segment_bytes: int, group_window_ms: float) -> None:
        if fsync_mode not in ("always", "group", "off"):
            raise ValueError(f"unknown fsync mode {fsync_mode!r}")
        self.directory = Path(directory)
        self.fsync_mode = fsync_mode
        self.segment_bytes = segment_bytes
        self.window = group_window_ms / 1000.0 if fsync_mode == "group" else 0.0
        self.pid = os.getpid()
        self._lock = threading.Lock()
        self._segment: _Segment | None = None

    def _open_segment(self) -> _Segment:
        self.directory.mkdir(parents=True, exist_ok=True)
        name = f"{time.time_ns():020d}-{os.getpid()}{SEGMENT_SUFFIX}"
        segment = _Segment(self.directory / name)
        fsync_dir(self.directory)  # the new file's name must survive a crash too
        return segment

    def _append(self, payload: bytes, durable: bool) -> WalRef:
        data = frame(payload)
        try:
            with self._lock:
                segment = self._segment
                if segment is None or (segment.size and segment.size + len(data) > self.segment_bytes):
                    if segment is not None:
                        segment.close()
                    segment = self._segment = self._open_segment()
                offset = segment.size
                written = os.write(segment.fd, data)
                if written != len(data):
                    # A short write leaves a torn frame: retire the segment so nothing follows it.
                    self._segment = None
                    segment.close()
                    raise WalError(f"short write to {segment.path.name}")
                segment.size += written
                segment.written = segment.size
                end = segment.size
            if durable and self.fsync_mode != "off":
                segment.sync_upto(end, self.window)
        except OSError as exc:
            raise WalError(str(exc)) from exc
        return WalRef(segment.path.name, offset)

    def append_request(
        self, *, body: bytes, tenant_header: str | None, received_at: datetime, batch: bool = False
    ) -> WalRef:
        """Append a request and return once it is as durable as ``WAL_FSYNC`` asks."""
        return self._append(encode_request(body, tenant_header, received_at, batch), durable=True)

    def append_outcome(self, ref: WalRef, status: int) -> None:
        """Record that the request at ``ref`` was answered; durable with the next fsync."""
        self._append(encode_outcome(ref, status), durable=False)

    def close(self) -> None:
        """Close the active segment (it becomes eligible for replay)."""
        with self._lock:
            if self._segment is not None:
                self._segment.close()
                self._segment = None

    @property
    def active_segment(self) -> str | None:
        """File name of the segment this writer appends to, if any."""
        segment = self._segment
        return segment.path.name if segment is not None else None


def decode(segment: str, offset: int, payload: bytes) -> WalRequest | WalOutcome:
    """Turn one record payload back into a request or an outcome."""
    kind = payload[0]
    if kind in (REC_REQUEST, REC_BATCH):
        _, ns, tenant_len = REQUEST_HEAD.unpack_from(payload)
        start = REQUEST_HEAD.size
        if tenant_len == NO_TENANT:
            tenant, body_start = None, start
        else:
            tenant, body_start = payload[start : start + tenant_len].decode(), start + tenant_len
        received = datetime.fromtimestamp(ns / 1e9, UTC)
        return WalRequest(WalRef(segment, offset), received, tenant, payload[body_start:], kind == REC_BATCH)
    if kind == REC_OUTCOME:
        _, ref_offset, status, name_len = OUTCOME_HEAD.unpack_from(payload)
        start = OUTCOME_HEAD.size
        name = payload[start : start + name_len].decode()
        return WalOutcome(WalRef(name, ref_offset), status)
    raise ValueError(f"unknown WAL record type {kind}")


@dataclass
class SegmentScan:
    """What reading one segment found."""

    records: list[WalRequest | WalOutcome]
    valid_bytes: int
    file_bytes: int

    @property
    def torn(self) -> bool:
        """True when bytes after the last whole record fail framing or CRC."""
        return self.valid_bytes < self.file_bytes


def scan_segment(path: Path) -> SegmentScan:
    """Read every whole, CRC-valid record; stop at the first torn or corrupt frame."""
    data = path.read_bytes()
    records: list[WalRequest | WalOutcome] = []
    pos = 0
    name = path.name.removesuffix(".done")
    while pos + FRAME.size <= len(data):
        length, crc = FRAME.unpack_from(data, pos)
        start, end = pos + FRAME.size, pos + FRAME.size + length
        if length == 0 or length > MAX_RECORD_BYTES or end > len(data):
            break
        payload = data[start:end]
        if zlib.crc32(payload) != crc:
            break
        try:
            records.append(decode(name, pos, payload))
        except (ValueError, struct.error, UnicodeDecodeError):
            break
        pos = end
    return SegmentScan(records, pos, len(data))


def read_frames(path: Path, start: int, max_bytes: int) -> bytes:
    """The whole, CRC-valid frames of a segment from byte ``start`` (a frame boundary) on.

    Stops before the first torn or corrupt frame and after ``max_bytes`` (but always takes one whole
    frame when there is one). Region shipping reads segments, active ones included, through this.
    """
    with open(path, "rb") as fh:
        fh.seek(start)
        data = fh.read()
    pos = 0
    while pos + FRAME.size <= len(data):
        length, crc = FRAME.unpack_from(data, pos)
        end = pos + FRAME.size + length
        if length == 0 or length > MAX_RECORD_BYTES or end > len(data):
            break
        if zlib.crc32(data[pos + FRAME.size : end]) != crc:
            break
        if pos and end > max_bytes:
            break
        pos = end
    return data[:pos]


def decode_frames(segment: str, start: int, data: bytes) -> list[WalRequest | WalOutcome]:
    """Decode bytes that must be whole, CRC-valid frames (a shipped chunk from ``segment`` at ``start``).

    Raises ``ValueError`` at the first frame that is torn, fails its CRC or does not decode: a chunk
    is replayed whole or not at all.
    """
    records: list[WalRequest | WalOutcome] = []
    pos = 0
    while pos < len(data):
        if pos + FRAME.size > len(data):
            raise ValueError(f"torn frame header at {start + pos}")
        length, crc = FRAME.unpack_from(data, pos)
        end = pos + FRAME.size + length
        if length == 0 or length > MAX_RECORD_BYTES or end > len(data):
            raise ValueError(f"bad frame length at {start + pos}")
        payload = data[pos + FRAME.size : end]
        if zlib.crc32(payload) != crc:
            raise ValueError(f"CRC mismatch at {start + pos}")
        try:
            records.append(decode(segment, start + pos, payload))
        except (struct.error, UnicodeDecodeError) as exc:
            raise ValueError(f"undecodable record at {start + pos}: {exc}") from exc
        pos = end
    return records


def cut_torn_tail(path: Path, valid_bytes: int) -> None:
    """Truncate a closed segment to its last whole record so the torn bytes are never replayed."""
    with open(path, "r+b") as fh:
        fh.truncate(valid_bytes)
        fh.flush()
        os.fsync(fh.fileno())
    logger.warning("wal.torn_tail_cut segment=%s kept_bytes=%d", path.name, valid_bytes)


def segment_is_active(path: Path) -> bool:
    """True while some live writer holds the segment's lock."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)
    return False


def list_segments(directory: Path, *, include_done: bool = False) -> list[Path]:
    """Segments in name order (creation time first)."""
    if not directory.exists():
        return []
    found = sorted(directory.glob(f"*{SEGMENT_SUFFIX}"))
    if include_done:
        found += sorted(directory.glob(f"*{DONE_SUFFIX}"))
    return found


def iter_requests(scan: SegmentScan) -> Iterator[WalRequest]:
    """The request records of a scanned segment."""
    return (rec for rec in scan.records if isinstance(rec, WalRequest))


_writer: WalWriter | None = None
_writer_lock = threading.Lock()


def get_writer() -> WalWriter:
    """This process's writer, created on first use (after a fork, a fresh one)."""
    global _writer
    from django.conf import settings

    writer = _writer
    if writer is not None and writer.pid == os.getpid():
        return writer
    with _writer_lock:
        if _writer is None or _writer.pid != os.getpid():
            _writer = WalWriter(
                settings.WAL_DIR,
                settings.WAL_FSYNC,
                settings.WAL_SEGMENT_BYTES,
                settings.WAL_GROUP_WINDOW_MS,
            )
        return _writer


def reset_writer() -> None:
    """Close and forget this process's writer (tests, settings changes)."""
    global _writer
    with _writer_lock:
        if _writer is not None and _writer.pid == os.getpid():
            _writer.close()
        _writer = None


register("pcs.wal_writer", reset_writer)
