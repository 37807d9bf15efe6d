"""The object store regions exchange through: S3 (boto3), immutable objects written with If-None-Match.

Layout of a region's bucket (what the other regions write into it):

    wal/<source>/chunks/<segment>/<start>-<end>.chunk  WAL bytes [start, end) of a segment; sha256 metadata
    wal/<source>/manifest/<seq>.json                    entry seq of the chain: chunk key, range, sha256, prev
    wal/<source>/head.json                              the source's last shipment (overwritten each run)
    control/<source>/<version>.json                     control-plane snapshot (tenants, keys, policies)
    digests/<source>/latest.json                        decided-set digests per tenant, bucket (replaced)
    digests/<source>/detail/<tenant>/<bucket>/<digit>.json   the decided set of one differing cell

Chunks, manifest entries and snapshots are written once (``put_once``): the same bytes again are a
no-op, other bytes under the same name are refused (``ObjectConflict``) and never overwritten.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from functools import cache
from typing import Any

from django.conf import settings


class ObjectConflict(RuntimeError):
    """The name is taken by an object with other content."""


class ObjectMissing(LookupError):
    """No object under that name."""


@dataclass(frozen=True)
class StoredObject:
    """An object read back: its bytes and user metadata."""

    body: bytes
    metadata: dict[str, str]


def sha256_hex(data: bytes) -> str:
    """Lowercase hex SHA-256."""
    return hashlib.sha256(data).hexdigest()


@cache
def _client(endpoint_url: str, region: str, timeout: float) -> Any:
    import boto3
    from botocore.config import Config

    config = Config(
        connect_timeout=timeout, read_timeout=timeout, retries={"max_attempts": 2, "mode": "standard"}
    )
    return boto3.client("s3", endpoint_url=endpoint_url or None, region_name=region or None, config=config)


def client() -> Any:
    """The boto3 S3 client of the settings (endpoint, region, timeouts)."""
    return _client(settings.CRR_S3_ENDPOINT_URL, settings.CRR_S3_REGION, settings.CRR_S3_TIMEOUT_SECONDS)


def _code(exc: Exception) -> str:
    return str(getattr(exc, "response", {}).get("Error", {}).get("Code", ""))


def put_once(bucket: str, key: str, data: bytes, metadata: dict[str, str] | None = None) -> bool:
    """Write ``data`` under ``key`` unless it exists; True when written, False when the same bytes were there.

    Raises ``ObjectConflict`` when other bytes hold the name.
    """
    from botocore.exceptions import ClientError

    meta = {"sha256": sha256_hex(data), **(metadata or {})}
    try:
        client().put_object(
            Bucket=bucket, Key=key, Body=data, Metadata=meta, IfNoneMatch="*", ChecksumAlgorithm="SHA256"
        )
        return True
    except ClientError as exc:
        if _code(exc) not in ("PreconditionFailed", "412", "ConditionalRequestConflict"):
            raise
    found = get(bucket, key)
    if found.body != data:
        theirs = sha256_hex(found.body)
        ours = meta["sha256"]
        raise ObjectConflict(f"s3://{bucket}/{key} holds other content (sha256 {theirs}, ours {ours})")
    return False


def put(bucket: str, key: str, data: bytes) -> None:
    """Write (or replace) a derived object: heads and digests, never WAL data."""
    client().put_object(Bucket=bucket, Key=key, Body=data, Metadata={"sha256": sha256_hex(data)})


def get(bucket: str, key: str) -> StoredObject:
    """Read an object; ``ObjectMissing`` when there is none."""
    from botocore.exceptions import ClientError

    try:
        answer = client().get_object(Bucket=bucket, Key=key)
    except ClientError as exc:
        if _code(exc) in ("NoSuchKey", "404"):
            raise ObjectMissing(f"s3://{bucket}/{key}") from exc
        raise
    return StoredObject(answer["Body"].read(), dict(answer.get("Metadata") or {}))


def list_keys(bucket: str, prefix: str, start_after: str = "", limit: int | None = None) -> list[str]:
    """Keys under ``prefix`` after ``start_after``, in key order (at most ``limit``)."""
    keys: list[str] = []
    kwargs: dict[str, Any] = {"Bucket": bucket, "Prefix": prefix}
    if start_after:
        kwargs["StartAfter"] = start_after
    while True:
        answer = client().list_objects_v2(**kwargs)
        keys += [item["Key"] for item in answer.get("Contents", [])]
        if limit is not None and len(keys) >= limit:
            return keys[:limit]
        if not answer.get("IsTruncated"):
            return keys
        kwargs["ContinuationToken"] = answer["NextContinuationToken"]


def list_prefixes(bucket: str, prefix: str) -> list[str]:
    """The next path component of every key under ``prefix`` (e.g. the source regions under ``wal/``)."""
    names: list[str] = []
    kwargs: dict[str, Any] = {"Bucket": bucket, "Prefix": prefix, "Delimiter": "/"}
    while True:
        answer = client().list_objects_v2(**kwargs)
        names += [p["Prefix"][len(prefix) :].rstrip("/") for p in answer.get("CommonPrefixes", [])]
        if not answer.get("IsTruncated"):
            return names
        kwargs["ContinuationToken"] = answer["NextContinuationToken"]


def chunk_key(source: str, segment: str, start: int, end: int) -> str:
    """Where the bytes [start, end) of a source's segment lie."""
    return f"wal/{source}/chunks/{segment.removesuffix('.wal')}/{start:016d}-{end:016d}.chunk"


def manifest_prefix(source: str) -> str:
    """Prefix of a source's manifest entries."""
    return f"wal/{source}/manifest/"


def manifest_key(source: str, seq: int) -> str:
    """Key of manifest entry ``seq`` (from 1)."""
    return f"{manifest_prefix(source)}{seq:012d}.json"


def head_key(source: str) -> str:
    """Key of the source's last-shipment head."""
    return f"wal/{source}/head.json"


def control_key(source: str, version: int) -> str:
    """Key of control-plane snapshot ``version``."""
    return f"control/{source}/{version:012d}.json"
