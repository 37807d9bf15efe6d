"""Compliance report build time for a tenant of 10,000 decisions, reviews and a key rotation.

On a scratch PostgreSQL database (``flk_bench_reports``) one tenant gets 10,000 decisions through the
batch ingest pipeline (one in 50 escalated), 20 reviews, a key rotation and a few failed
authentications. A real Celery worker on the ``reports`` queue then builds the same report
``BENCH_REPORT_RUNS`` times (default 3); the build time is the worker's (started to finished), and the
baseline of the same run is ``audit_chain_verify`` of the same tenant in this process, the one step
every report must do. Also timed: verifying the downloaded bundle offline. Writes
bench/results/report-latest.{txt,json}.

Run as ``python -m bench.report_bench``. Redis and the broker are the bench's (dbs 13 and 12) unless
REDIS_URL / CELERY_BROKER_URL are set.
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.stack import BROKER_DB, REDIS_DB, ROOT, PcsFactory, database_recreate, run_stamp, write_results

DB = "flk_bench_reports"
DECISIONS = int(os.environ.get("BENCH_REPORT_DECISIONS", "10000"))
RUNS = int(os.environ.get("BENCH_REPORT_RUNS", "3"))
BATCH = 1_000
ESCALATE_EVERY = 50
BUILD_DEADLINE_S = 600.0  # a bound on waiting for the worker
SCRATCH = Path(tempfile.mkdtemp(prefix="flk-report-bench-"))
os.environ.update(
    DJANGO_SETTINGS_MODULE="flk_project.settings.bench",
    DATABASE_URL=f"postgres://postgres@127.0.0.1:5432/{DB}",
    LOG_LEVEL="WARNING",
    MULTI_TENANT="true",
    REPORTS_DIR=str(SCRATCH / "reports"),
    AUDIT_ANCHOR_DIR=str(SCRATCH / "anchors"),
    WAL_DIR=str(SCRATCH / "wal"),
)
os.environ.setdefault("REDIS_URL", f"redis://127.0.0.1:6379/{REDIS_DB}")
os.environ.setdefault("CELERY_BROKER_URL", f"redis://127.0.0.1:6379/{BROKER_DB}")


def _fill(tenant_slug: str, signer: object) -> int:
    from django.utils import timezone

    from apps.pcs.services import pcs_ingest_batch
    from flk_agent.builder import sign_pcs

    factory = PcsFactory(signer, shard_id=f"report-{run_stamp()}")  # type: ignore[arg-type]
    escalated = 0
    for start in range(0, DECISIONS, BATCH):
        items = []
        for i in range(start, min(start + BATCH, DECISIONS)):
            pcs = factory.make()
            if i % ESCALATE_EVERY == 0:  # a claimed D_hat the server recomputes differently: 202
                pcs = sign_pcs({**pcs, "D_hat": 0.2}, signer)  # type: ignore[arg-type]
            items.append(pcs)
        result = pcs_ingest_batch(
            body=json.dumps({"items": items}).encode(), tenant_header=tenant_slug, received_at=timezone.now()
        )
        statuses = [r["status"] for r in result.body["results"]]
        if result.status != 200 or set(statuses) - {200, 202}:
            raise SystemExit(f"ingest refused PCS: {result.status} {sorted(set(statuses))}")
        escalated += statuses.count(202)
        print(f"[bench] {min(start + BATCH, DECISIONS)} decisions", flush=True)
    return escalated


def main() -> int:
    """Fill, time the baseline, time the builds on a worker, verify, report."""
    database_recreate(DB)
    import django
    import redis

    django.setup()
    from datetime import UTC, datetime, timedelta

    from django.core.management import call_command
    from django.utils import timezone

    from apps.audit.checkpoints import public_key_b64
    from apps.audit.models import AuditEntry
    from apps.audit.selectors import audit_chain_verify
    from apps.audit.services import audit_append
    from apps.reports.models import ReportRun
    from apps.reports.services import report_request
    from apps.tenants.services import key_rotate, tenant_create
    from flk_agent.report import verify_bundle
    from flk_agent.signing import HmacSigner

    call_command("migrate", verbosity=0)
    redis.Redis.from_url(os.environ["REDIS_URL"]).flushdb()
    redis.Redis.from_url(os.environ["CELERY_BROKER_URL"]).flushdb()
    tenant, new = tenant_create(slug="bench-reports", name="Bench Reports", actor="bench")
    escalated = _fill(tenant.slug, HmacSigner(new.secret.encode()))
    key_rotate(tenant=tenant, actor="admin:bench", overlap=timedelta(hours=1))
    for i, pcs_id in enumerate(
        AuditEntry.objects.filter(tenant=tenant, kind="decision", status=202).values_list(
            "pcs_id", flat=True
        )[:20]
    ):
        audit_append(
            tenant_id=tenant.pk,
            kind="review",
            actor="user:bench",
            pcs_id=pcs_id,
            details={
                "outcome": "accepted" if i % 4 else "rejected",
                "reviewer": "bench",
                "reason": "bench",
                "supersedes_seq": 0,
                "escalated_at": timezone.now().isoformat(),
                "seconds_to_decision": 60 + i,
            },
        )
    entries = AuditEntry.objects.filter(tenant=tenant).count()

    verify_s = []
    for _ in range(RUNS):
        t = time.perf_counter()
        assert audit_chain_verify(tenant_id=tenant.pk).ok
        verify_s.append(time.perf_counter() - t)

    today = datetime.combine(timezone.now().date(), datetime.min.time(), UTC)
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    log = open(SCRATCH / "worker.log", "wb")  # noqa: SIM115
    worker = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "flk_project", "worker", "-Q", "reports",
         "--concurrency", "1", "--pool", "solo", "--without-heartbeat", "--without-gossip",
         "--without-mingle", "--loglevel", "WARNING"],
        env=env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )  # fmt: skip
    build_s, wall_s, runs = [], [], []
    try:
        for _ in range(RUNS):
            t = time.perf_counter()
            run = report_request(
                tenant=tenant, framework="soc2", period_start=today, period_end=today + timedelta(days=1),
                created_by="bench",
            )  # fmt: skip
            deadline = time.monotonic() + BUILD_DEADLINE_S
            while True:
                run.refresh_from_db()
                if run.state in (ReportRun.DONE, ReportRun.FAILED):
                    break
                if time.monotonic() > deadline or worker.poll() is not None:
                    raise SystemExit(f"no report from the worker; see {SCRATCH / 'worker.log'}")
                time.sleep(0.1)
            if run.state != ReportRun.DONE:
                raise SystemExit(f"the build failed: {run.error}")
            wall_s.append(time.perf_counter() - t)
            build_s.append((run.finished_at - run.started_at).total_seconds())
            runs.append(run)
            print(f"[bench] report #{run.pk} built in {build_s[-1]:.2f} s", flush=True)
    finally:
        os.killpg(worker.pid, 15)
        worker.wait(timeout=30)
        log.close()

    bundle = Path(runs[-1].bundle_location)
    t = time.perf_counter()
    result = verify_bundle(bundle, public_key_b64=public_key_b64())
    offline_s = time.perf_counter() - t
    if not result.ok:
        raise SystemExit(f"the bundle does not verify: {result.problems}")

    build, chain, wall = statistics.median(build_s), statistics.median(verify_s), statistics.median(wall_s)
    text = "\n".join(
        [
            f"compliance report (soc2) of one tenant: {DECISIONS} decisions ({escalated} escalated),",
            f"20 reviews, a key rotation; {entries} audit entries; {RUNS} builds on one worker (solo pool),",
            "medians:",
            f"build on the worker       {build:8.2f} s   (request to downloadable: {wall:.2f} s)",
            f"baseline: chain verify    {chain:8.2f} s   (audit_chain_verify of the same tenant, in-process)",
            f"ratio build / chain verify {build / chain:7.2f}",
            f"offline verify of bundle  {offline_s:8.2f} s   ({bundle.stat().st_size / 1024:.0f} KiB zip)",
        ]
    )
    print(text)
    write_results(
        "report",
        text,
        {
            "when": run_stamp(),
            "decisions": DECISIONS,
            "escalated": escalated,
            "audit_entries": entries,
            "runs": RUNS,
            "build_seconds": build_s,
            "request_to_done_seconds": wall_s,
            "chain_verify_seconds": verify_s,
            "ratio_build_to_chain_verify": build / chain,
            "offline_verify_seconds": offline_s,
            "bundle_bytes": bundle.stat().st_size,
        },
    )
    shutil.rmtree(SCRATCH, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
