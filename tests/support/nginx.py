"""The shipped front for tests: nginx rendered from deployments/nginx/, gunicorn on a unix socket."""

from __future__ import annotations

import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
from django.conf import settings

from tests.support.servers import ROOT, free_port, kill_group, server_env

RENDER = ROOT / "deployments/nginx/render.py"


def nginx_binary() -> str:
    """Debian's nginx (in /usr/sbin, which a normal user's PATH lacks); `make services` installs it."""
    found = shutil.which("nginx") or ("/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else None)
    if not found:
        raise AssertionError("nginx is not installed: `make services` installs Debian's nginx package")
    return found


@dataclass
class Front:
    """nginx listening on ``url``, with its process group and its directory (config, logs)."""

    url: str
    port: int
    proc: subprocess.Popen
    directory: Path

    @property
    def errors(self) -> str:
        """What nginx wrote to stderr so far."""
        return (self.directory / "stderr.log").read_text(errors="replace")


@contextmanager
def nginx_front(*, directory: Path, upstream: str) -> Iterator[Front]:
    """Render the shipped templates for ``upstream`` and run nginx on a free loopback port.

    The body limits and Retry-After come from the test settings, as run.sh takes them from the
    application's settings.
    """
    port = free_port()
    subprocess.run(
        [
            sys.executable,
            str(RENDER),
            "--dir",
            str(directory),
            "--listen",
            f"127.0.0.1:{port}",
            "--upstream",
            upstream,
            "--max-body-bytes",
            str(settings.MAX_BODY_BYTES),
            "--batch-max-body-bytes",
            str(settings.BATCH_MAX_BODY_BYTES),
            "--retry-after",
            str(settings.RETRY_AFTER_SECONDS),
        ],
        check=True,
        capture_output=True,
    )
    stderr = open(directory / "stderr.log", "wb")  # noqa: SIM115
    proc = subprocess.Popen(
        [nginx_binary(), "-p", str(directory), "-c", str(directory / "nginx.conf"), "-e", "stderr"],
        stdout=stderr,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    front = Front(url=f"http://127.0.0.1:{port}", port=port, proc=proc, directory=directory)
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise AssertionError(f"nginx did not start:\n{front.errors}") from None
                time.sleep(0.1)
        yield front
    finally:
        kill_group(proc)
        stderr.close()


@contextmanager
def gunicorn_unix(
    *, socket_path: Path, workers: int = 2, log: Path | None = None, **env: str
) -> Iterator[str]:
    """gunicorn with deployments/gunicorn.conf.py on a unix socket, as `make run` starts it behind nginx.

    Yields the upstream address (``unix:/path``). It shares the test's database, Redis and WAL.
    """
    out = open(log, "wb") if log else subprocess.DEVNULL  # noqa: SIM115
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "gunicorn",
            "-c",
            str(ROOT / "deployments/gunicorn.conf.py"),
            "--bind",
            f"unix:{socket_path}",
            "--no-control-socket",
            "flk_project.wsgi:application",
        ],
        env=server_env(WEB_CONCURRENCY=str(workers), PROXY_CLIENT_IP_HEADER="X-Real-IP", **env),
        cwd=ROOT,
        stdout=out,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 30
        with httpx.Client(transport=httpx.HTTPTransport(uds=str(socket_path)), timeout=1) as client:
            while True:
                try:
                    if client.get("http://localhost/healthz").is_success:
                        break
                except httpx.TransportError:
                    pass
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise AssertionError(f"gunicorn did not start (exit {proc.poll()})")
                time.sleep(0.2)
        yield f"unix:{socket_path}"
    finally:
        kill_group(proc)
        if log:
            out.close()
