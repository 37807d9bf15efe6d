"""A real S3 API on 127.0.0.1 for the tests: moto's server mode, in its own process."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager

import httpx

from tests.support.servers import free_port, kill_group

# moto accepts any credentials; boto3 only needs some to sign requests.
S3_CREDENTIALS = {"AWS_ACCESS_KEY_ID": "flk-test", "AWS_SECRET_ACCESS_KEY": "flk-test-secret"}
S3_REGION = "us-east-1"


@contextmanager
def moto_s3_server() -> Iterator[str]:
    """Start ``moto.server`` on a free loopback port; yield its endpoint URL; stop it."""
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                httpx.get(f"{url}/moto-api/", timeout=1)
                break
            except httpx.TransportError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"moto server did not start (exit {proc.poll()})") from None
                time.sleep(0.2)
        yield url
    finally:
        kill_group(proc)
