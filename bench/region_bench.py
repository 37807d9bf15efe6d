"""`make bench`, regions: replay throughput (chunks/s, PCS/s) and replication lag under load.

Two regions on this machine (a third, C, for the replay baseline), each with its own scratch PostgreSQL
database (``flk_bench_region_a``/``_b``/``_c``), Redis dbs (7-8 / 9-10 / 11-12), WAL directory and bucket
on one moto S3 server:

1. Replay: BENCH_REGION_PCS PCS are posted to A in batches of 500; A ships its WAL (``crr ship``);
   B replays it (``crr_pull`` timed inside the process, Django start-up excluded). chunks/s and PCS/s.
   Then BENCH_REGION_SINGLES single submissions to A, shipped to B and to a third region C; B replays
   them in groups (CRR_REPLAY_GROUP's default) and C one request per transaction (CRR_REPLAY_GROUP=1),
   the baseline of the same run.
2. Lag under load: A's gunicorn, a ``crr`` worker with beat in each region (ship interval
   BENCH_REGION_INTERVAL s); BENCH_REGION_LOAD_SECONDS of single submissions to A from 4 clients; then
   per PCS, A's receive time to B's decision (p50/p95/max) and per chunk the age of its first byte
   when replayed (wal_replication_replay_age_seconds, p95).

Benchmarks, not tests: nothing is asserted. Writes bench/results/region-latest.{txt,json}.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import boto3
import httpx
import psycopg

from bench.loadgen import percentile
from bench.stack import PcsFactory, free_port, redis_flush, write_results
from flk_agent.signing import HmacSigner

ROOT = Path(__file__).resolve().parent.parent
PY = sys.executable
PCS = int(os.environ.get("BENCH_REGION_PCS", "5000"))
SINGLES = int(os.environ.get("BENCH_REGION_SINGLES", "3000"))
LOAD_S = float(os.environ.get("BENCH_REGION_LOAD_SECONDS", "15"))
INTERVAL = os.environ.get("BENCH_REGION_INTERVAL", "2")
HMAC_KEY = "flk-bench-region-hmac"
CREDS = {"AWS_ACCESS_KEY_ID": "bench", "AWS_SECRET_ACCESS_KEY": "bench-secret"}


def _db(name: str) -> str:
    return f"postgres://postgres@127.0.0.1:5432/{name}"


def _recreate(name: str) -> None:
    with psycopg.connect("postgresql://postgres@127.0.0.1:5432/postgres", autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')


def _env(region: str, bucket: str, remote: str, endpoint: str, work: Path, redis_db: int) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        DJANGO_SETTINGS_MODULE="flk_project.settings.base",
        DATABASE_URL=_db(f"flk_bench_region_{region}"),
        REDIS_URL=f"redis://127.0.0.1:6379/{redis_db}",
        CELERY_BROKER_URL=f"redis://127.0.0.1:6379/{redis_db + 1}",
        WAL_DIR=str(work / f"wal_{region}"),
        PCS_HMAC_KEY=HMAC_KEY,
        METRICS_PASS="bench",
        REGION_ID=region,
        REGION_BUCKET=bucket,
        WAL_REMOTE_BUCKET=remote,
        WAL_REPLICATION_ENABLED="true",
        CRR_S3_ENDPOINT_URL=endpoint,
        CRR_S3_REGION="us-east-1",
        CRR_SHIP_INTERVAL_SECONDS=INTERVAL,
        CRR_DIFF_INTERVAL_SECONDS="3600",
        **CREDS,
    )
    return env


def _manage(env: dict[str, str], *args: str) -> str:
    done = subprocess.run(
        [PY, "manage.py", *args], env=env, cwd=ROOT, capture_output=True, text=True, check=True
    )
    return done.stdout


def _start(cmd: list[str], env: dict[str, str], log: Path) -> subprocess.Popen:
    return subprocess.Popen(
        cmd, env=env, cwd=ROOT, stdout=open(log, "wb"), stderr=subprocess.STDOUT, start_new_session=True
    )


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, 15)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, 9)


def _wait_http(url: str, proc: subprocess.Popen) -> None:
    for _ in range(300):
        try:
            if httpx.get(url, timeout=1).is_success:
                return
        except httpx.TransportError:
            pass
        if proc.poll() is not None:
            raise RuntimeError(f"{url} did not start")
        time.sleep(0.2)


def _worker(env: dict[str, str], work: Path, name: str) -> subprocess.Popen:
    return _start(
        [
            PY,
            "-m",
            "celery",
            "-A",
            "flk_project",
            "worker",
            "-B",
            "-s",
            str(work / f"{name}-beat"),
            "-Q",
            "crr",
            "--pool",
            "solo",
            "--concurrency",
            "1",
            "--without-heartbeat",
            "--without-gossip",
            "--without-mingle",
        ],
        env,
        work / f"{name}-worker.log",
    )


def _gunicorn(env: dict[str, str], work: Path, name: str) -> tuple[subprocess.Popen, str]:
    port = free_port()
    proc = _start(
        [
            PY,
            "-m",
            "gunicorn",
            "-c",
            "deployments/gunicorn.conf.py",
            "--no-control-socket",
            "flk_project.wsgi:application",
        ],
        {**env, "FLK_BIND": f"127.0.0.1:{port}", "WEB_CONCURRENCY": "2"},
        work / f"{name}-gunicorn.log",
    )
    url = f"http://127.0.0.1:{port}"
    _wait_http(f"{url}/healthz", proc)
    return proc, url


def _rows(region: str, sql: str) -> list[tuple[Any, ...]]:
    with psycopg.connect(_db(f"flk_bench_region_{region}").replace("postgres://", "postgresql://")) as conn:
        return list(conn.execute(sql))


PULL_TIMED = (
    "import json, time; from apps.regions.reader import crr_pull; t = time.perf_counter(); r = crr_pull(); "
    "print(json.dumps({'seconds': time.perf_counter() - t, **r.as_dict()}))"
)


def main() -> None:
    work = Path(tempfile.mkdtemp(prefix="flk-region-bench-"))
    moto_port = free_port()
    moto = _start(
        [PY, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(moto_port)],
        dict(os.environ),
        work / "moto.log",
    )
    endpoint = f"http://127.0.0.1:{moto_port}"
    procs: list[subprocess.Popen] = [moto]
    try:
        _wait_http(f"{endpoint}/moto-api/", moto)
        s3 = boto3.client(
            "s3", endpoint_url=endpoint, region_name="us-east-1", **{k.lower(): v for k, v in CREDS.items()}
        )
        bucket_a, bucket_b, bucket_c = (f"flk-bench-{r}-{uuid.uuid4().hex[:8]}" for r in "abc")
        for bucket in (bucket_a, bucket_b, bucket_c):
            s3.create_bucket(Bucket=bucket)
        env_a = _env("a", bucket_a, f"{bucket_b},{bucket_c}", endpoint, work, 7)
        env_b = _env("b", bucket_b, bucket_a, endpoint, work, 9)
        env_c = {**_env("c", bucket_c, bucket_a, endpoint, work, 11), "CRR_REPLAY_GROUP": "1"}
        redis_flush(7, 8, 9, 10, 11, 12)
        for name, env in (("a", env_a), ("b", env_b), ("c", env_c)):
            _recreate(f"flk_bench_region_{name}")
            _manage(env, "migrate", "-v", "0")
            _manage(env, "flk_init")
        gunicorn_a, url_a = _gunicorn(env_a, work, "a")
        procs.append(gunicorn_a)
        factory = PcsFactory(HmacSigner(HMAC_KEY.encode()), shard_id=f"bench-{uuid.uuid4().hex[:6]}")

        # 1. Replay throughput.
        bodies = factory.bodies(PCS)
        with httpx.Client(timeout=60) as client:
            for start in range(0, PCS, 500):
                body = '{"items":[' + ",".join(bodies[start : start + 500]) + "]}"
                client.post(f"{url_a}/v1/pcs/submit:batch", content=body).raise_for_status()
        shipped = json.loads(_manage(env_a, "crr", "ship").strip().splitlines()[-1])
        pulled = json.loads(_manage(env_b, "shell", "-c", PULL_TIMED).strip().splitlines()[-1])
        replay = {
            "pcs": PCS,
            "chunks": pulled["chunks"],
            "bytes": pulled["bytes"],
            "requests": pulled["requests"],
            "seconds": pulled["seconds"],
            "chunks_per_s": pulled["chunks"] / pulled["seconds"],
            "pcs_per_s": PCS / pulled["seconds"],
            "shipped_chunks": shipped["chunks"],
        }
        _manage(env_c, "shell", "-c", PULL_TIMED)  # C catches up on the batches, untimed

        # 1b. Single submissions replayed in groups (B) and one per transaction (C, the baseline).
        singles = factory.bodies(SINGLES)

        def post_singles(part: list[str]) -> None:
            with httpx.Client(timeout=60) as client:
                for body in part:
                    client.post(f"{url_a}/v1/pcs/submit", content=body).raise_for_status()

        posters = [threading.Thread(target=post_singles, args=(singles[i::8],)) for i in range(8)]
        for t in posters:
            t.start()
        for t in posters:
            t.join()
        _manage(env_a, "crr", "ship")
        grouped = json.loads(_manage(env_b, "shell", "-c", PULL_TIMED).strip().splitlines()[-1])
        alone = json.loads(_manage(env_c, "shell", "-c", PULL_TIMED).strip().splitlines()[-1])
        singles_replay = {
            "pcs": SINGLES,
            "grouped_seconds": grouped["seconds"],
            "grouped_pcs_per_s": grouped["requests"] / grouped["seconds"],
            "one_per_transaction_seconds": alone["seconds"],
            "one_per_transaction_pcs_per_s": alone["requests"] / alone["seconds"],
            "ratio": alone["seconds"] / grouped["seconds"],
            "requests": (grouped["requests"], alone["requests"]),
        }

        # 2. Lag under load.
        procs += [_worker(env_a, work, "a"), _worker(env_b, work, "b")]
        time.sleep(8)  # workers and beats up
        since = time.time()
        acked: list[str] = []
        stop = threading.Event()

        def send() -> None:
            with httpx.Client(timeout=10) as client:
                while not stop.is_set():
                    pcs = factory.make()
                    if client.post(f"{url_a}/v1/pcs/submit", content=json.dumps(pcs)).status_code in (
                        200,
                        202,
                    ):
                        acked.append(pcs["pcs_id"])

        senders = [threading.Thread(target=send) for _ in range(4)]
        for t in senders:
            t.start()
        time.sleep(LOAD_S)
        stop.set()
        for t in senders:
            t.join()
        deadline = time.time() + 120
        while time.time() < deadline:
            done = _rows(
                "b", f"SELECT count(*) FROM pcs_pcsrecord WHERE received_at >= to_timestamp({since})"
            )[0][0]
            if done >= len(acked):
                break
            time.sleep(0.5)
        delays = [
            (d - r).total_seconds()
            for d, r in _rows(
                "b",
                "SELECT decided_at, received_at FROM pcs_pcsrecord "
                f"WHERE received_at >= to_timestamp({since})",
            )
        ]
        ages = [
            (r - f).total_seconds()
            for r, f in _rows(
                "b",
                "SELECT replayed_at, first_byte_at FROM regions_replayedchunk "
                f"WHERE first_byte_at >= to_timestamp({since})",
            )
        ]
        lag = {
            "load_seconds": LOAD_S,
            "ship_interval_seconds": float(INTERVAL),
            "accepted_in_a": len(acked),
            "decided_in_b": len(delays),
            "pcs_per_s_offered": len(acked) / LOAD_S,
            "a_receive_to_b_decision_p50": percentile(delays, 50) if delays else None,
            "a_receive_to_b_decision_p95": percentile(delays, 95) if delays else None,
            "a_receive_to_b_decision_max": max(delays) if delays else None,
            "chunk_replay_age_p95": percentile(ages, 95) if ages else None,
            "chunks": len(ages),
        }
    finally:
        for proc in reversed(procs):
            _stop(proc)
    text = (
        f"region replay: {replay['pcs']} PCS in {replay['chunks']} chunks ({replay['bytes']} bytes) "
        f"replayed in {replay['seconds']:.2f} s = {replay['chunks_per_s']:.1f} chunks/s, "
        f"{replay['pcs_per_s']:.0f} PCS/s\n"
        f"single submissions replayed: {singles_replay['pcs']} PCS, grouped "
        f"{singles_replay['grouped_pcs_per_s']:.0f} PCS/s vs one per transaction "
        f"{singles_replay['one_per_transaction_pcs_per_s']:.0f} PCS/s (same run) = "
        f"{singles_replay['ratio']:.2f}x\n"
        f"lag under load: {lag['accepted_in_a']} PCS accepted by A in {LOAD_S:.0f} s "
        f"({lag['pcs_per_s_offered']:.0f}/s), ship interval {INTERVAL} s; A receive -> B decision "
        f"p50 {lag['a_receive_to_b_decision_p50']:.2f} s, p95 {lag['a_receive_to_b_decision_p95']:.2f} s, "
        f"max {lag['a_receive_to_b_decision_max']:.2f} s; chunk replay age p95 "
        f"{lag['chunk_replay_age_p95']:.2f} s over {lag['chunks']} chunks; "
        f"decided in B {lag['decided_in_b']}/{lag['accepted_in_a']}"
    )
    write_results("region", text, {"replay": replay, "singles_replay": singles_replay, "lag": lag})


if __name__ == "__main__":
    main()
