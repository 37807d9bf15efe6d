"""One shipper and one reader at a time per region: PostgreSQL session advisory locks.

Beat may start a run while the previous one still works (a slow bucket, a long backlog); two shippers
would race for the same manifest entry, two readers for the same chunk. Without PostgreSQL (the
embedded default runs one worker) there is nothing to lock.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterator
from contextlib import contextmanager

from django.db import connection

_NAMESPACE = 0x464C4B52  # "FLKR": keeps these keys apart from other advisory locks


@contextmanager
def exclusive(name: str) -> Iterator[bool]:
    """Try to take the lock ``name``; yield whether it was taken; release it afterwards."""
    if connection.vendor != "postgresql":
        yield True
        return
    key = zlib.crc32(name.encode())
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_try_advisory_lock(%s, %s)", [_NAMESPACE, key - (1 << 31)])
        (taken,) = cursor.fetchone()
    try:
        yield bool(taken)
    finally:
        if taken:
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_advisory_unlock(%s, %s)", [_NAMESPACE, key - (1 << 31)])
