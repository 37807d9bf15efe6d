"""A real S3 API on 127.0.0.1 for the tests: moto's server mode, in its own process."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager

from tests.support.servers import free_port, kill_group, wait_until_answering

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
        wait_until_answering(proc, f"{url}/moto-api/", "moto server")
        yield url
    finally:
        kill_group(proc)
