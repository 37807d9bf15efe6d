"""The cold store: S3 (any S3-compatible service, through boto3) or a local directory.

Objects are written once: S3 puts carry ``If-None-Match: *`` so the first write of a key wins and a
resumed batch never overwrites what an earlier attempt wrote; the directory store creates files with
O_EXCL. Network and service failures are ``TierUnavailable`` (callers fail closed and retry later); an
object that the index names but the store lacks is ``TierCorrupt`` (never served).
"""

from __future__ import annotations

import contextlib
import os
from functools import cache
from pathlib import Path
from typing import Any, Protocol

from django.conf import settings

from apps.pcs.tiers import TierCorrupt, TierUnavailable
from flk_project.caches import register
from flk_project.fsync import fsync_dir


class ColdStore(Protocol):
    """Write-once objects with ranged reads."""

    backend: str

    def put_once(self, key: str, data: bytes) -> bool:
        """Write ``data`` at ``key`` unless an object is there; True when this call wrote it."""
        ...

    def exists(self, key: str) -> bool:
        """Whether an object is at ``key``."""
        ...

    def get(self, key: str, start: int = 0, length: int | None = None) -> bytes:
        """``length`` bytes from ``start`` (all of them when None)."""
        ...

    def delete(self, key: str) -> None:
        """Remove the object (eviction); no error when it is already gone."""
        ...


class LocalColdStore:
    """Files under a directory, created exclusively, fsynced with their directory, read-only."""

    backend = "local"

    def __init__(self, root: Path) -> None:
        self.root = root

    def _path(self, key: str) -> Path:
        path = (self.root / key).resolve()
        if self.root.resolve() not in path.parents:
            raise ValueError(f"key {key!r} leaves the cold directory")
        return path

    def put_once(self, key: str, data: bytes) -> bool:
        """Create the file; False when it exists already."""
        path = self._path(key)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o444)
        except FileExistsError:
            return False
        except OSError as exc:
            raise TierUnavailable(f"cold directory: {exc}") from exc
        try:
            os.write(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)
        fsync_dir(path.parent)
        return True

    def exists(self, key: str) -> bool:
        """Whether the file exists."""
        return self._path(key).exists()

    def get(self, key: str, start: int = 0, length: int | None = None) -> bytes:
        """Read a range of the file."""
        try:
            with open(self._path(key), "rb") as handle:
                handle.seek(start)
                return handle.read() if length is None else handle.read(length)
        except FileNotFoundError as exc:
            raise TierCorrupt(f"cold object {key} is missing") from exc
        except OSError as exc:
            raise TierUnavailable(f"cold directory: {exc}") from exc

    def delete(self, key: str) -> None:
        """Unlink the file."""
        with contextlib.suppress(FileNotFoundError):
            self._path(key).unlink()


class S3ColdStore:
    """An S3 bucket through boto3, with explicit timeouts and few retries (callers retry later)."""

    backend = "s3"

    def __init__(self, client: Any, bucket: str, prefix: str) -> None:
        self.client = client
        self.bucket = bucket
        self.prefix = prefix

    def _call(self, method: str, **kwargs: Any) -> Any:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            return getattr(self.client, method)(Bucket=self.bucket, **kwargs)
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "")
            if code in ("PreconditionFailed", "412", "NoSuchKey", "404", "NotFound"):
                raise
            raise TierUnavailable(f"s3 {method}: {code or exc}") from exc
        except BotoCoreError as exc:
            raise TierUnavailable(f"s3 {method}: {exc}") from exc

    def put_once(self, key: str, data: bytes) -> bool:
        """Conditional put (``If-None-Match: *``); False when the key exists."""
        from botocore.exceptions import ClientError

        try:
            self._call(
                "put_object",
                Key=self.prefix + key,
                Body=data,
                IfNoneMatch="*",
                ChecksumAlgorithm="SHA256",
                ContentType="application/octet-stream",
            )
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("PreconditionFailed", "412"):
                return False
            raise TierUnavailable(f"s3 put_object: {exc}") from exc
        return True

    def exists(self, key: str) -> bool:
        """HEAD the object."""
        from botocore.exceptions import ClientError

        try:
            self._call("head_object", Key=self.prefix + key)
        except ClientError:
            return False
        return True

    def get(self, key: str, start: int = 0, length: int | None = None) -> bytes:
        """GET, ranged when ``length`` is given."""
        from botocore.exceptions import BotoCoreError, ClientError

        kwargs: dict[str, Any] = {"Key": self.prefix + key}
        if length is not None:
            kwargs["Range"] = f"bytes={start}-{start + length - 1}"
        elif start:
            kwargs["Range"] = f"bytes={start}-"
        try:
            answer = self._call("get_object", **kwargs)
            return answer["Body"].read()
        except ClientError as exc:
            raise TierCorrupt(f"cold object {key} is missing") from exc
        except BotoCoreError as exc:
            raise TierUnavailable(f"s3 get_object: {exc}") from exc

    def delete(self, key: str) -> None:
        """DELETE the object."""
        from botocore.exceptions import ClientError

        with contextlib.suppress(ClientError):
            self._call("delete_object", Key=self.prefix + key)


@cache
def _s3_store(bucket: str, prefix: str, endpoint_url: str, region: str, timeout: float) -> S3ColdStore:
    import boto3
    from botocore.config import Config

    config = Config(
        connect_timeout=timeout, read_timeout=timeout, retries={"max_attempts": 2, "mode": "standard"}
    )
    client = boto3.client("s3", endpoint_url=endpoint_url or None, region_name=region or None, config=config)
    return S3ColdStore(client, bucket, prefix)


def get_cold_store() -> ColdStore:
    """S3 when ``TIER_COLD_BUCKET`` is set, else the local directory ``TIER_COLD_DIR``."""
    if settings.TIER_COLD_BUCKET:
        return _s3_store(
            settings.TIER_COLD_BUCKET,
            settings.TIER_COLD_PREFIX,
            settings.TIER_COLD_S3_ENDPOINT_URL,
            settings.TIER_COLD_S3_REGION,
            settings.TIER_COLD_TIMEOUT_SECONDS,
        )
    return LocalColdStore(Path(settings.TIER_COLD_DIR))


register("tiering.cold_store", _s3_store.cache_clear)
