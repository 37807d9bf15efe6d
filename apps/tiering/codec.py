"""A warm record as bytes, and objects of independently compressed frames.

A record's bytes are the JSON of every ``PcsRecord`` column (the stored answer kept as its exact text,
so a replay from cold is byte-identical), and its SHA-256 is what the index checks on every read.
Records are packed into frames of ``FRAME_RECORDS`` records compressed on their own, so a lookup reads
one frame (an S3 range read of a few kB) instead of the whole object, while the compressor still sees
many records at once (bench/tier_bench.py: a frame of 32 real decisions compresses about 13x, one
record alone about 2.3x).
"""

from __future__ import annotations

import gzip
import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import zstandard

from apps.pcs.models import PcsRecord

# 32 records per frame (bench/tier_bench.py): most of the ratio of whole-batch compression,
# while a lookup decompresses only ~50 kB.
FRAME_RECORDS = 32
ZSTD_LEVEL = 3
GZIP_LEVEL = 6

_FIELDS = [field.attname for field in PcsRecord._meta.concrete_fields]
_DATETIMES = {
    field.attname for field in PcsRecord._meta.concrete_fields if field.get_internal_type() == "DateTimeField"
}


class CodecError(ValueError):
    """Bytes that do not decompress or decode as a record."""


def record_bytes(record: PcsRecord) -> bytes:
    """The record as canonical bytes: its columns as JSON, in model order."""
    values: dict[str, Any] = {}
    for name in _FIELDS:
        value = getattr(record, name)
        values[name] = value.isoformat() if isinstance(value, datetime) else value
    return json.dumps(values, ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode()


def record_from_bytes(data: bytes) -> PcsRecord:
    """The (unsaved, read-only) record that ``record_bytes`` made these bytes from."""
    try:
        values = json.loads(data)
        for name in _DATETIMES:
            values[name] = datetime.fromisoformat(values[name])
        return PcsRecord(**values)
    except (ValueError, TypeError, KeyError) as exc:
        raise CodecError(f"not a record: {exc}") from exc


def compress(codec: str, data: bytes) -> bytes:
    """One frame."""
    if codec == "zstd":
        return zstandard.ZstdCompressor(level=ZSTD_LEVEL, write_checksum=True).compress(data)
    # mtime=0: the same records always give the same bytes (a resumed batch rebuilds its object).
    return gzip.compress(data, compresslevel=GZIP_LEVEL, mtime=0)


def decompress(codec: str, frame: bytes) -> bytes:
    """The bytes of one frame; ``CodecError`` when they are damaged."""
    try:
        if codec == "zstd":
            return zstandard.ZstdDecompressor().decompress(frame)
        return gzip.decompress(frame)
    except (zstandard.ZstdError, OSError, EOFError) as exc:
        raise CodecError(f"frame does not decompress: {exc}") from exc


@dataclass(frozen=True)
class Placed:
    """Where one record lands in its object."""

    pk: int
    pcs_id: str
    frame_offset: int
    frame_length: int
    offset: int
    length: int
    sha256: str
    decided_at: str

    def as_entry(self) -> list[Any]:
        """The JSON entry ``DemotionBatch.entries`` keeps."""
        return [
            self.pk,
            self.pcs_id,
            self.frame_offset,
            self.frame_length,
            self.offset,
            self.length,
            self.sha256,
            self.decided_at,
        ]

    @classmethod
    def from_entry(cls, entry: Sequence[Any]) -> Placed:
        """The inverse of ``as_entry``."""
        return cls(*entry)


@dataclass(frozen=True)
class Packed:
    """An object's bytes and where each record lies in it."""

    data: bytes
    placed: list[Placed]
    record_bytes: int

    @property
    def sha256(self) -> str:
        """The object's digest."""
        return hashlib.sha256(self.data).hexdigest()


def pack(codec: str, records: Sequence[PcsRecord]) -> Packed:
    """The object of ``records`` (in the order given), frame by frame."""
    chunks: list[bytes] = []
    placed: list[Placed] = []
    position = 0
    total = 0
    for start in range(0, len(records), FRAME_RECORDS):
        group = records[start : start + FRAME_RECORDS]
        raw = [record_bytes(record) for record in group]
        frame = compress(codec, b"".join(raw))
        offset = 0
        for record, data in zip(group, raw, strict=True):
            placed.append(
                Placed(
                    record.pk,
                    record.pcs_id,
                    position,
                    len(frame),
                    offset,
                    len(data),
                    hashlib.sha256(data).hexdigest(),
                    record.decided_at.isoformat(),
                )
            )
            offset += len(data)
            total += len(data)
        chunks.append(frame)
        position += len(frame)
    return Packed(b"".join(chunks), placed, total)


def slice_record(plain: bytes, offset: int, length: int, sha256: str) -> bytes:
    """One record's bytes out of a decompressed frame, checked against its digest (``CodecError``)."""
    data = plain[offset : offset + length]
    if hashlib.sha256(data).hexdigest() != sha256:
        raise CodecError("record bytes do not match their SHA-256")
    return data


def unpack_record(codec: str, frame: bytes, offset: int, length: int, sha256: str) -> bytes:
    """One record's bytes out of its compressed frame, checked against its digest."""
    return slice_record(decompress(codec, frame), offset, length, sha256)
