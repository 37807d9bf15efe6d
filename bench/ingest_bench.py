"""`make bench`: single-submission ingest against its floor, on one stack, in one run.

gunicorn on 127.0.0.1 with PostgreSQL, Redis dedup and WAL_FSYNC=always. wrk (one thread, 64
connections) posts pre-generated, unique, validly signed PCS to /v1/pcs/submit, and the same bodies to
the floor endpoint, which parses them and answers without verifying or storing. Floor and submit
alternate for ROUNDS rounds so that machine noise hits both; the report gives req/s, p50/p95/p99 of
each and the submit/floor ratios, and is written to bench/results/.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from flk_agent.builder import build_pcs, sign_pcs  # noqa: E402
from flk_agent.pcs import compute_pcs_id  # noqa: E402
from flk_agent.signing import HmacSigner  # noqa: E402

CONNECTIONS = int(os.environ.get("BENCH_CONNECTIONS", "64"))
DURATION_S = int(os.environ.get("BENCH_DURATION", "15"))
WARMUP_S = 3
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "2"))
HMAC_KEY = "flk-bench-hmac-secret"
DB_NAME = "flk_bench"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _bodies(count: int) -> list[str]:
    """Unique valid PCS: one computed signal set, many identities, each signed."""
    import numpy as np

    rng = np.random.default_rng(1)
    signer = HmacSigner(HMAC_KEY.encode())
    base = build_pcs(
        points=rng.random((2000, 2)), raw=rng.bytes(8192), shard_id="bench", epoch=0, seed=1, signer=signer
    )
    run = datetime.now(UTC).strftime("%H%M%S")
    out = []
    for epoch in range(count):
        pcs = dict(base, epoch=epoch, shard_id=f"bench-{run}")
        pcs["pcs_id"] = compute_pcs_id(pcs["merkle_root"], epoch, pcs["shard_id"])
        out.append(json.dumps(sign_pcs(pcs, signer), separators=(",", ":")))
    return out


def _ensure_wrk() -> str:
    wrk = shutil.which("wrk")
    if wrk:
        return wrk
    print("[bench] installing wrk (Debian package)")
    subprocess.run(["apt-get", "update", "-qq"], check=True)
    subprocess.run(
        ["apt-get", "install", "-y", "-qq", "wrk"],
        check=True,
        env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"},
    )
    return shutil.which("wrk") or "wrk"


def _server_env(tmp: Path, port: int) -> dict[str, str]:
    return {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "flk_project.settings.bench",
        "DATABASE_URL": f"postgres://postgres@127.0.0.1:5432/{DB_NAME}",
        "REDIS_URL": "redis://127.0.0.1:6379/13",
        "DEDUP_BACKEND": "redis",
        "CELERY_BROKER_URL": "redis://127.0.0.1:6379/12",
        "WAL_FSYNC": "always",
        "WAL_DIR": str(tmp / "wal"),
        "FLK_VAR_DIR": str(tmp / "var"),
        "PCS_HMAC_KEY": HMAC_KEY,
        "METRICS_PASS": "bench",
        "PROMETHEUS_MULTIPROC_DIR": str(tmp / "prom"),
        "FLK_BIND": f"127.0.0.1:{port}",
        "WEB_CONCURRENCY": os.environ.get("WEB_CONCURRENCY", "2"),
        "GUNICORN_WORKER_CLASS": os.environ.get("GUNICORN_WORKER_CLASS", "gthread"),
        "GUNICORN_THREADS": os.environ.get("GUNICORN_THREADS", "4"),
        "LOG_LEVEL": "WARNING",
    }


def _wrk(wrk: str, url: str, bodies: Path, seconds: int) -> dict:
    done = subprocess.run(
        [
            wrk,
            "-t1",
            f"-c{CONNECTIONS}",
            f"-d{seconds}s",
            "--timeout",
            "5s",
            "--latency",
            "-s",
            str(ROOT / "bench/wrk_bodies.lua"),
            url,
        ],
        env={**os.environ, "FLK_BENCH_BODIES": str(bodies), "FLK_BENCH_THREADS": "1"},
        capture_output=True,
        text=True,
        check=True,
        timeout=seconds + 60,
    )
    line = next(ln for ln in done.stdout.splitlines() if ln.startswith("FLK_RESULT "))
    result = json.loads(line.removeprefix("FLK_RESULT "))
    result["rps"] = result["requests"] / (result["duration_us"] / 1e6)
    return result


def main() -> int:
    """Run the benchmark and print and store its report."""
    wrk = _ensure_wrk()
    subprocess.run(["dropdb", "-h", "127.0.0.1", "-U", "postgres", "--if-exists", DB_NAME], check=True)
    subprocess.run(["createdb", "-h", "127.0.0.1", "-U", "postgres", DB_NAME], check=True)
    tmp = Path(tempfile.mkdtemp(prefix="flk-bench-"))
    port = _free_port()
    env = _server_env(tmp, port)
    py = sys.executable
    subprocess.run([py, "manage.py", "migrate", "-v0"], cwd=ROOT, env=env, check=True)
    subprocess.run([py, "manage.py", "flk_init"], cwd=ROOT, env=env, check=True, stdout=subprocess.DEVNULL)
    subprocess.run(["redis-cli", "-n", "13", "flushdb"], check=True, stdout=subprocess.DEVNULL)

    per_round = int((DURATION_S + WARMUP_S) * 4000)  # more than the server can take in a round
    print(f"[bench] generating {per_round * ROUNDS} signed PCS")
    all_bodies = _bodies(per_round * ROUNDS)
    server = subprocess.Popen(
        [py, "-m", "gunicorn", "-c", "deployments/gunicorn.conf.py", "flk_project.wsgi:application"],
        cwd=ROOT,
        env=env,
        start_new_session=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(100):
            try:
                if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.2)
        rounds = []
        for i in range(ROUNDS):
            bodies = tmp / f"bodies-{i}.jsonl"
            bodies.write_text("\n".join(all_bodies[i * per_round : (i + 1) * per_round]) + "\n")
            _wrk(wrk, f"{base}/v1/bench/floor", bodies, WARMUP_S)
            floor = _wrk(wrk, f"{base}/v1/bench/floor", bodies, DURATION_S)
            submit = _wrk(wrk, f"{base}/v1/pcs/submit", bodies, DURATION_S)
            rounds.append({"floor": floor, "submit": submit})
            print(f"[bench] round {i + 1}: floor {floor['rps']:.0f} req/s, submit {submit['rps']:.0f} req/s")
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=20)
        shutil.rmtree(tmp, ignore_errors=True)

    def med(kind: str, key: str) -> float:
        return statistics.median(r[kind][key] for r in rounds)

    report = {
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {"cores": os.cpu_count()},
        "config": {
            "connections": CONNECTIONS,
            "duration_s": DURATION_S,
            "rounds": ROUNDS,
            "workers": env["WEB_CONCURRENCY"],
            "worker_class": env["GUNICORN_WORKER_CLASS"],
            "threads": env["GUNICORN_THREADS"],
            "wal_fsync": "always",
            "dedup": "redis",
            "database": "postgresql",
        },
        "rounds": rounds,
        "floor": {k: med("floor", k) for k in ("rps", "p50_us", "p95_us", "p99_us")},
        "submit": {k: med("submit", k) for k in ("rps", "p50_us", "p95_us", "p99_us")},
    }
    report["ratio"] = {
        "throughput_submit_over_floor": report["submit"]["rps"] / report["floor"]["rps"],
        "p99_submit_over_floor": report["submit"]["p99_us"] / report["floor"]["p99_us"],
    }
    bad = [r["submit"]["statuses"] for r in rounds if set(r["submit"]["statuses"]) - {"200"}]
    lines = [
        f"FLK ingest benchmark, {report['when']}, {os.cpu_count()} cores, {CONNECTIONS} connections, "
        f"{ROUNDS} x {DURATION_S}s (median of rounds)",
        f"{'':8}{'req/s':>10}{'p50 ms':>10}{'p95 ms':>10}{'p99 ms':>10}",
    ]
    for kind in ("floor", "submit"):
        row = report[kind]
        lines.append(
            f"{kind:8}{row['rps']:>10.0f}{row['p50_us'] / 1000:>10.2f}"
            f"{row['p95_us'] / 1000:>10.2f}{row['p99_us'] / 1000:>10.2f}"
        )
    lines.append(
        f"submit/floor throughput ratio: {report['ratio']['throughput_submit_over_floor']:.2f}; "
        f"p99 ratio: {report['ratio']['p99_submit_over_floor']:.2f}"
    )
    if bad:
        lines.append(f"WARNING: non-200 submit answers: {bad}")
    text = "\n".join(lines)
    print(text)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    (ROOT / "bench/results").mkdir(exist_ok=True)
    (ROOT / f"bench/results/ingest-{stamp}.json").write_text(json.dumps(report, indent=2) + "\n")
    (ROOT / "bench/results/latest.txt").write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
