"""Two regions on this machine: A is the test's own database and process, B a second database, Redis db,
WAL directory and set of processes; one moto S3 server with a bucket per region."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import redis
from django.db import connection

from tests.support.s3 import S3_CREDENTIALS, S3_REGION
from tests.support.servers import ROOT, celery_worker, kill_group, run_manage, server_env

REDIS_B_DB = 7
BROKER_B_DB = 8


def dsn(name: str) -> str:
    """A psycopg connection string to database ``name`` on the test server."""
    db = connection.settings_dict
    return f"postgresql://{db['USER']}@{db['HOST']}:{db['PORT']}/{name}"


def clone_database(template: str, name: str) -> None:
    """Create ``name`` as a copy of the (migrated, empty) ``template``."""
    with psycopg.connect(dsn("postgres"), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}" TEMPLATE "{template}"')


def drop_database(name: str) -> None:
    """Drop ``name`` (and its connections)."""
    with psycopg.connect(dsn("postgres"), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def empty_database(name: str) -> None:
    """Truncate every table but the migration history (as pytest-django's flush does for A)."""
    with psycopg.connect(dsn(name), autocommit=True) as conn:
        tables = [
            row[0]
            for row in conn.execute(
                "SELECT tablename FROM pg_tables "
                "WHERE schemaname = 'public' AND tablename <> 'django_migrations'"
            )
        ]
        conn.execute("TRUNCATE " + ", ".join(f'"{t}"' for t in tables) + " RESTART IDENTITY CASCADE")


class CommandShell:
    """Region B's long-lived command process (tests/regions/region_shell.py)."""

    def __init__(self, env: dict[str, str], log: Path) -> None:
        self._log = open(log, "wb")  # noqa: SIM115
        self.proc = subprocess.Popen(
            [
                sys.executable,
                str(ROOT / "manage.py"),
                "shell",
                "-c",
                "from tests.regions.region_shell import serve; serve()",
            ],
            env=env,
            cwd=ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._log,
            text=True,
            start_new_session=True,
        )
        self._read_until("@@ready")

    def _read_until(self, marker: str) -> str:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            if line.startswith(marker):
                return line[len(marker) :]
        raise RuntimeError(f"region shell exited ({self.proc.poll()}); see {self._log.name}")

    def run(self, *argv: str) -> Any:
        """Run one command; its JSON output."""
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps(list(argv)) + "\n")
        self.proc.stdin.flush()
        answer = json.loads(self._read_until("@@answer "))
        if not answer["ok"]:
            raise AssertionError(f"{' '.join(argv)} failed in region B:\n{answer['error']}")
        return answer["out"]

    def close(self) -> None:
        """Stop the process."""
        kill_group(self.proc)
        self._log.close()


class LocalShell:
    """Region A's commands, run in the test's own process (its settings are region A's)."""

    def run(self, *argv: str) -> Any:
        """Run one management command in-process; its JSON output."""
        import io

        from django.core.management import call_command

        buffer = io.StringIO()
        call_command(*argv, stdout=buffer)
        text = buffer.getvalue().strip()
        return json.loads(text.splitlines()[-1]) if text else None


@dataclass
class Region:
    """One region: its id, bucket, environment for its processes, and its database."""

    id: str
    bucket: str
    env: dict[str, str]
    database: str
    wal_dir: Path
    shell: CommandShell | LocalShell | None = None  # where crr commands run

    def manage(self, *args: str, timeout: float = 120) -> str:
        """Run ``manage.py`` as this region in a new process."""
        return run_manage(*args, env=self.env, timeout=timeout)

    def crr(self, action: str, *args: str) -> Any:
        """``manage.py crr <action>`` as this region, its JSON answer."""
        if self.shell is not None:
            return self.shell.run("crr", action, *args)
        return json.loads(self.manage("crr", action, *args).strip().splitlines()[-1])

    def query(self, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        """Rows of a query on this region's database."""
        with psycopg.connect(dsn(self.database)) as conn:
            return list(conn.execute(sql, params))

    def decided(self) -> dict[str, int]:
        """pcs_id -> stored status of every decision here."""
        return dict(self.query("SELECT pcs_id, status_code FROM pcs_pcsrecord"))

    def records_per_pcs(self) -> dict[str, int]:
        """pcs_id -> how many records (the unique constraint says at most one)."""
        return dict(self.query("SELECT pcs_id, count(*) FROM pcs_pcsrecord GROUP BY pcs_id"))


def region_env(
    *,
    region_id: str,
    bucket: str,
    remote: str,
    endpoint: str,
    wal_dir: Path,
    interval: float = 1.0,
    **extra: str,
) -> dict[str, str]:
    """Environment of a region's processes (server_env's database/Redis unless ``extra`` names others)."""
    return server_env(
        REGION_ID=region_id,
        REGION_BUCKET=bucket,
        WAL_REMOTE_BUCKET=remote,
        WAL_REPLICATION_ENABLED="true",
        CRR_S3_ENDPOINT_URL=endpoint,
        CRR_S3_REGION=S3_REGION,
        CRR_SHIP_INTERVAL_SECONDS=str(interval),
        CRR_DIFF_INTERVAL_SECONDS="3600",
        WAL_DIR=str(wal_dir),
        WAL_REPLAY_GRACE_SECONDS="2",
        **S3_CREDENTIALS,
        **extra,
    )


def new_bucket(s3: Any, region_id: str) -> str:
    """A fresh bucket for one region."""
    name = f"flk-crr-{region_id}-{uuid.uuid4().hex[:10]}"
    s3.create_bucket(Bucket=name)
    return name


def empty_bucket(s3: Any, bucket: str) -> None:
    """Delete every object of ``bucket``."""
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket):
        for item in page.get("Contents", []):
            s3.delete_object(Bucket=bucket, Key=item["Key"])


def flush_redis(url: str) -> None:
    """Empty one Redis database."""
    redis.Redis.from_url(url).flushdb()


def crr_worker(
    env: dict[str, str], schedule: Path, log: Path | None = None
) -> AbstractContextManager[subprocess.Popen]:
    """A real Celery worker of the region ``env`` describes on the ``crr`` queue, with an embedded beat."""
    return celery_worker("crr", log, beat_schedule=schedule, **env)


def wait_for(predicate: Callable[[], bool], timeout: float, what: str, step: float = 0.5) -> float:
    """Poll until ``predicate()``; the seconds it took. Fails after ``timeout`` (a bound, not a timing)."""
    started = time.monotonic()
    while not predicate():
        if time.monotonic() - started > timeout:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(step)
    return time.monotonic() - started


def p95(values: list[float]) -> float:
    """The 95th percentile (nearest rank) of ``values``; 0 for none."""
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(0.95 * len(ordered)) - 1))]
