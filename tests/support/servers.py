"""Real server processes for tests that cross process boundaries (gunicorn workers, crashes)."""

from __future__ import annotations

import os
import signal
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
from django.db import connection

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def server_env(**extra: str) -> dict[str, str]:
    """Environment for a child process that shares this test's database, Redis and WAL."""
    db = connection.settings_dict
    env = dict(os.environ)
    env.update(
        {
            "DJANGO_SETTINGS_MODULE": "flk_project.settings.test",
            "DATABASE_URL": f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}",
            "REDIS_URL": settings.REDIS_URL,
            "WAL_DIR": str(settings.WAL_DIR),
            "PCS_HMAC_KEY": settings.PCS_HMAC_KEY,
            "METRICS_PASS": settings.METRICS_PASS,
            "PYTHONUNBUFFERED": "1",
            # Several servers share this machine's PostgreSQL (100 connections) during the suite; a
            # test that needs the production thread count passes GUNICORN_THREADS itself.
            "GUNICORN_THREADS": "4",
        }
    )
    env.update(extra)
    return env


def run_manage(*args: str, env: dict[str, str] | None = None, timeout: float = 120) -> str:
    """Run ``manage.py`` in a child process and return its stdout; fail loudly on error."""
    done = subprocess.run(
        [sys.executable, str(ROOT / "manage.py"), *args],
        env=env or server_env(),
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    if done.returncode != 0:
        raise AssertionError(f"manage.py {' '.join(args)} failed:\n{done.stdout}\n{done.stderr}")
    return done.stdout


def wait_until_answering(proc: subprocess.Popen, url: str, what: str, timeout: float = 30) -> None:
    """Wait until ``url`` answers 2xx; fail if ``proc`` exits or ``timeout`` seconds pass first."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            if httpx.get(url, timeout=1).is_success:
                return
        except httpx.TransportError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"{what} did not start (exit {proc.poll()})")
        time.sleep(0.2)


@dataclass
class Server:
    """A running server process group and where it answers."""

    url: str
    proc: subprocess.Popen

    def crash(self) -> None:
        """SIGKILL the master and every worker at once, as a power cut would."""
        kill_group(self.proc, signal.SIGKILL)


@contextmanager
def gunicorn(workers: int = 2, log: Path | None = None, **env: str) -> Iterator[Server]:
    """Start gunicorn on a free loopback port; yield it; stop it (SIGKILL if needed)."""
    port = free_port()
    out = open(log, "wb") if log else subprocess.DEVNULL  # noqa: SIM115
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "gunicorn",
            "-c",
            str(ROOT / "deployments/gunicorn.conf.py"),
            # Else every test server writes, and leaves behind, ~/.gunicorn/gunicorn.ctl.
            "--no-control-socket",
            "flk_project.wsgi:application",
        ],
        env=server_env(FLK_BIND=f"127.0.0.1:{port}", WEB_CONCURRENCY=str(workers), **env),
        cwd=ROOT,
        stdout=out,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_answering(proc, f"{url}/healthz", "gunicorn")
        yield Server(url, proc)
    finally:
        kill_group(proc)
        if log:
            out.close()


def kill_group(proc: subprocess.Popen, sig: int = signal.SIGTERM) -> None:
    """Signal a process group and wait for it (escalating to SIGKILL after 10 s)."""
    if proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, sig)
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
    except ProcessLookupError:
        pass


@contextmanager
def celery_worker(
    queues: str, log: Path | None = None, *, beat_schedule: Path | None = None, **env: str
) -> Iterator[subprocess.Popen]:
    """A real Celery worker process on the test broker (unless ``env`` names another), consuming ``queues``.

    With ``beat_schedule`` the worker also runs beat (``-B``), keeping its schedule in that file.
    """
    out = open(log, "wb") if log else subprocess.DEVNULL  # noqa: SIM115
    beat = ["-B", "-s", str(beat_schedule)] if beat_schedule is not None else []
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "flk_project",
            "worker",
            *beat,
            "-Q",
            queues,
            "--concurrency",
            "1",
            "--pool",
            "solo",
            "--loglevel",
            "INFO",
            "--without-heartbeat",
            "--without-gossip",
            "--without-mingle",
        ],
        env=server_env(**{"CELERY_BROKER_URL": settings.CELERY_BROKER_URL, **env}),
        cwd=ROOT,
        stdout=out,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        yield proc
    finally:
        kill_group(proc)
        if log:
            out.close()
