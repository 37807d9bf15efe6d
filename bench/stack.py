"""One FLK server for a benchmark: a scratch PostgreSQL database, Redis, gunicorn on 127.0.0.1.

Every benchmark that speaks HTTP starts its server here, so they all measure the same configuration
(deployments/gunicorn.conf.py, PostgreSQL, Redis dedup, WAL_FSYNC=always on the real disk) and differ
only in what they send. Signed PCS come from ``PcsFactory``: one computed signal set, many identities,
so building tens of thousands of bodies costs signing and JSON only.

The bench's resources: databases named ``flk_bench*``, Redis db 13 (dedup, rate limits, hot tier) and
12 (Celery broker; no worker runs, so it is flushed). Benchmarks share them and run one at a time.
"""

from __future__ import annotations

import base64
import copy
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import Any

import httpx
import numpy as np

from flk_agent.builder import build_pcs, sign_pcs
from flk_agent.pcs import compute_pcs_id
from flk_agent.signing import Ed25519Signer, HmacSigner, Signer

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
REDIS_DB = 13
BROKER_DB = 12
DEFAULT_HMAC_KEY = "flk-bench-hmac-secret"
START_TIMEOUT_S = 60.0
# The machine's load when the benchmark started: other work on a shared machine (the benchmark
# itself brings a two-core machine to a load of 3 to 4).
LOAD_AT_START = os.getloadavg()


@dataclass(frozen=True)
class BenchTenant:
    """Who signs: the tenant header to send (None on a single-tenant server) and the signer."""

    slug: str | None
    signer: Signer

    @property
    def headers(self) -> dict[str, str]:
        """The request headers that name this tenant."""
        return {"X-Tenant-Id": self.slug} if self.slug else {}


class PcsFactory:
    """Unique, validly signed PCS for one tenant: the signals are computed once, identities vary.

    Each call takes the next epoch of ``shard_id``, so every PCS has its own ``pcs_id``; ``sent_at``
    is the time of the call unless given, which keeps pre-built bodies inside the server's clock-skew
    bound for the length of a benchmark (15 minutes by default).
    """

    def __init__(
        self,
        signer: Signer,
        *,
        shard_id: str,
        seed: int = 1,
        points: int = 2000,
        raw_bytes: int = 8192,
        first_epoch: int = 0,
    ) -> None:
        rng = np.random.default_rng(seed)
        self.signer = signer
        self.shard_id = shard_id
        self.base = build_pcs(
            points=rng.random((points, 2)),
            raw=rng.bytes(raw_bytes),
            shard_id=shard_id,
            epoch=first_epoch,
            seed=seed,
            signer=signer,
        )
        self.next_epoch = first_epoch

    def for_shard(self, shard_id: str) -> PcsFactory:
        """A factory for another shard (another agent) that shares these computed signals."""
        other = copy.copy(self)
        other.shard_id, other.next_epoch = shard_id, 0
        return other

    def make(self) -> dict[str, Any]:
        """The next PCS, signed."""
        epoch = self.next_epoch
        self.next_epoch += 1
        # A shallow copy: nested values (N_j, ft, scales) are shared but never changed.
        pcs = dict(self.base, epoch=epoch, shard_id=self.shard_id, sent_at=_now_rfc3339())
        pcs["pcs_id"] = compute_pcs_id(pcs["merkle_root"], epoch, self.shard_id)
        return sign_pcs(pcs, self.signer)

    def json(self) -> str:
        """The next PCS as compact JSON, as an agent sends it."""
        return json.dumps(self.make(), separators=(",", ":"))

    def bodies(self, count: int) -> list[str]:
        """``count`` consecutive PCS as JSON."""
        return [self.json() for _ in range(count)]


def _now_rfc3339() -> str:
    return datetime.now(UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z")


def run_stamp() -> str:
    """A UTC timestamp for file and shard names of one run."""
    return datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def redis_flush(*dbs: int) -> None:
    """Empty the bench's own Redis databases (never others)."""
    for db in dbs:
        subprocess.run(["redis-cli", "-n", str(db), "flushdb"], check=True, stdout=subprocess.DEVNULL)


def database_recreate(name: str) -> None:
    """Drop and create a scratch PostgreSQL database; the name must be one of the bench's own."""
    if not name.startswith("flk_bench"):
        raise ValueError(f"{name!r} is not a bench database (flk_bench*)")
    psql = ["-h", "127.0.0.1", "-U", "postgres"]
    subprocess.run(["dropdb", *psql, "--if-exists", name], check=True)
    subprocess.run(["createdb", *psql, name], check=True)


def ensure_debian_tool(command: str, package: str) -> str:
    """The path of ``command``, installing its Debian package first when it is missing."""
    found = shutil.which(command)
    if found:
        return found
    print(f"[bench] installing {package} (Debian package)", flush=True)
    subprocess.run(["apt-get", "update", "-qq"], check=True)
    subprocess.run(
        ["apt-get", "install", "-y", "-qq", package],
        check=True,
        env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"},
    )
    return shutil.which(command) or command


class Stack:
    """A gunicorn FLK server on a fresh database, used as a context manager.

    ``with Stack(db="flk_bench") as stack:`` prepares the database (migrate, default tenant), then
    ``stack.tenant_hmac(...)`` / ``stack.tenant_ed25519(...)`` add tenants and ``stack.start()`` starts
    gunicorn. Leaving the block stops the server's process group, removes the WAL and var directories
    and empties the bench's Redis databases.
    """

    def __init__(
        self, *, db: str, multi_tenant: bool = False, extra_env: dict[str, str] | None = None
    ) -> None:
        self.db = db
        self.multi_tenant = multi_tenant
        self.tmp = Path(tempfile.mkdtemp(prefix=f"{db}-"))
        self.port = free_port()
        self.env = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "flk_project.settings.bench",
            "DATABASE_URL": f"postgres://postgres@127.0.0.1:5432/{db}",
            "REDIS_URL": f"redis://127.0.0.1:6379/{REDIS_DB}",
            "DEDUP_BACKEND": "redis",
            "CELERY_BROKER_URL": f"redis://127.0.0.1:6379/{BROKER_DB}",
            "WAL_FSYNC": "always",
            "WAL_DIR": str(self.tmp / "wal"),
            "FLK_VAR_DIR": str(self.tmp / "var"),
            "PCS_HMAC_KEY": DEFAULT_HMAC_KEY,
            "MULTI_TENANT": "true" if multi_tenant else "false",
            "METRICS_PASS": "bench",
            "PROMETHEUS_MULTIPROC_DIR": str(self.tmp / "prom"),
            "FLK_BIND": f"127.0.0.1:{self.port}",
            "WEB_CONCURRENCY": os.environ.get("WEB_CONCURRENCY", "2"),
            "GUNICORN_WORKER_CLASS": os.environ.get("GUNICORN_WORKER_CLASS", "gthread"),
            "GUNICORN_THREADS": os.environ.get("GUNICORN_THREADS", "16"),
            "LOG_LEVEL": "WARNING",
            **(extra_env or {}),
        }
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def base_url(self) -> str:
        """http://127.0.0.1:<port>"""
        return f"http://127.0.0.1:{self.port}"

    @property
    def config(self) -> dict[str, Any]:
        """The server configuration a report records beside its figures."""
        return {
            "workers": self.env["WEB_CONCURRENCY"],
            "worker_class": self.env["GUNICORN_WORKER_CLASS"],
            "threads": self.env["GUNICORN_THREADS"],
            "wal_fsync": self.env["WAL_FSYNC"],
            "dedup": self.env["DEDUP_BACKEND"],
            "database": "postgresql",
            "multi_tenant": self.multi_tenant,
        }

    def __enter__(self) -> Stack:
        database_recreate(self.db)
        redis_flush(REDIS_DB, BROKER_DB)
        self.manage("migrate", "-v0")
        self.manage("flk_init")
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
        shutil.rmtree(self.tmp, ignore_errors=True)
        redis_flush(REDIS_DB, BROKER_DB)

    def manage(self, *args: str) -> str:
        """Run ``manage.py`` with the server's environment; its standard output."""
        done = subprocess.run(
            [sys.executable, "manage.py", *args],
            cwd=ROOT,
            env=self.env,
            check=True,
            capture_output=True,
            text=True,
        )
        return done.stdout

    def default_tenant(self) -> BenchTenant:
        """The single-tenant server's default tenant, signing with the bench's HMAC key."""
        return BenchTenant(None, HmacSigner(DEFAULT_HMAC_KEY.encode()))

    def tenant_hmac(self, slug: str) -> BenchTenant:
        """Create an HMAC tenant through ``manage.py tenant create``; its generated secret signs."""
        out = json.loads(self.manage("tenant", "create", slug, "--alg", "hmac").splitlines()[-1])
        return BenchTenant(slug, HmacSigner(out["secret"].encode()))

    def tenant_ed25519(self, slug: str) -> BenchTenant:
        """Create an Ed25519 tenant from a fresh key pair; the server keeps only the public key."""
        signer = Ed25519Signer.from_seed(secrets.token_bytes(32))
        public = base64.b64encode(signer.public_key_bytes()).decode()
        self.manage("tenant", "create", slug, "--alg", "ed25519", "--public-key", public)
        return BenchTenant(slug, signer)

    def start(self) -> None:
        """Start gunicorn in its own process group and wait until /healthz answers 200."""
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "gunicorn",
                "-c",
                "deployments/gunicorn.conf.py",
                "flk_project.wsgi:application",
            ],
            cwd=ROOT,
            env=self.env,
            start_new_session=True,
        )
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"gunicorn exited with {self.process.returncode} before answering")
            try:
                if httpx.get(f"{self.base_url}/healthz", timeout=1).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.2)
        raise RuntimeError(f"gunicorn did not answer /healthz within {START_TIMEOUT_S:.0f} s")

    def stop(self) -> None:
        """Stop the server's process group (only the group this object started)."""
        if self.process is None or self.process.poll() is not None:
            return
        os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=10)


def write_results(name: str, text: str, data: dict[str, Any]) -> None:
    """Write a benchmark's summary: ``<name>-latest.txt`` and ``.json`` (committed, overwritten each
    run) and a per-run ``<name>-<stamp>.json`` that stays local (ignored by git).

    The machine's load average at the start and at the end is printed and appended to both.
    """
    RESULTS.mkdir(parents=True, exist_ok=True)
    # The machine is shared: how busy it was says how much to trust the absolute figures.
    load = os.getloadavg()
    data = {**data, "loadavg_at_start": LOAD_AT_START, "loadavg_at_end": load}
    machine = (
        f"machine: {os.cpu_count()} cores, load average (1 min) {LOAD_AT_START[0]:.1f} at the start, "
        f"{load[0]:.1f} at the end"
    )
    print(machine)
    text = text.rstrip("\n") + "\n" + machine
    payload = json.dumps(data, indent=2) + "\n"
    (RESULTS / f"{name}-latest.txt").write_text(text + "\n")
    (RESULTS / f"{name}-latest.json").write_text(payload)
    (RESULTS / f"{name}-{run_stamp()}.json").write_text(payload)
