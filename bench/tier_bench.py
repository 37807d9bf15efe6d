"""Tiering: lookup latency per tier, demotion throughput, bytes per record warm vs cold, zstd vs gzip.

On a scratch PostgreSQL database (``flk_bench_tier``) one tenant gets ``SEEDS`` (200) real decisions
through the batch ingest pipeline (eight agents with their own signals, one in ten escalated). The
warm table is then filled to ``BENCH_TIER_RECORDS`` records (default 1,000,000) by one bulk SQL insert
per 100,000 rows that copies those real decisions under new pcs_ids (the PCS, its stored answer and
every column as ingest wrote them; no audit entries of their own, which demotion never reads), all
decided more than ``TIER_WARM_TTL`` ago. Then, against moto's S3 server on 127.0.0.1:

- codecs: zstd and gzip packing 20,000 of the records in frames of 32 (ratio, MB/s), and zstd one
  record per frame, which is what a frame-less ranged read would cost;
- lookups (``apps.pcs.tiers.record_lookup``): warm (the baseline), hot (the dedup claim that finds
  the answer in Redis), cold (ranged GET of a frame, decompress, SHA-256, rebuild): p50/p95;
- demotion (``tier_demote`` in this process, batches of ``TIER_DEMOTE_BATCH``): records/s, against the
  baseline of reading and packing the same rows without writing anything (the database and codec part);
- bytes per record: the warm table on disk (``pg_total_relation_size``) vs the cold objects.

Run as ``python -m bench.tier_bench`` (``BENCH_TIER_RECORDS=20000`` for a quick check). Writes
bench/results/tier-latest.{txt,json}. Redis is the bench's (db 13) unless REDIS_URL is set.
"""

from __future__ import annotations

import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

from bench.stack import REDIS_DB, PcsFactory, database_recreate, free_port, run_stamp, write_results

DB = "flk_bench_tier"
RECORDS = int(os.environ.get("BENCH_TIER_RECORDS", "1000000"))
SEEDS = 200
LOOKUPS = int(os.environ.get("BENCH_TIER_LOOKUPS", "500"))
FILL_CHUNK = 100_000
CODEC_SAMPLE = 20_000
SCRATCH = Path(tempfile.mkdtemp(prefix="flk-tier-bench-"))
BUCKET = "flk-bench-cold"
os.environ.update(
    DJANGO_SETTINGS_MODULE="flk_project.settings.bench",
    DATABASE_URL=f"postgres://postgres@127.0.0.1:5432/{DB}",
    LOG_LEVEL="WARNING",
    MULTI_TENANT="true",
    WAL_DIR=str(SCRATCH / "wal"),
    AUDIT_ANCHOR_DIR=str(SCRATCH / "anchors"),
    AWS_ACCESS_KEY_ID="flk-bench",
    AWS_SECRET_ACCESS_KEY="flk-bench-secret",
    TIER_COLD_BUCKET=BUCKET,
    TIER_COLD_S3_REGION="us-east-1",
    TIER_DEMOTE_MAX_BATCHES="1000000",
)
os.environ.setdefault("REDIS_URL", f"redis://127.0.0.1:6379/{REDIS_DB}")


def _seed(tenant_slug: str, signer: object) -> None:
    from django.utils import timezone

    from apps.pcs.services import pcs_ingest_batch
    from flk_agent.builder import sign_pcs

    items = []
    for agent in range(8):
        factory = PcsFactory(signer, shard_id=f"tier-{agent}-{run_stamp()}", seed=agent + 1)  # type: ignore[arg-type]
        for i in range(SEEDS // 8):
            pcs = factory.make()
            if i % 10 == 0:  # a claimed D_hat the server recomputes differently: 202
                pcs = sign_pcs({**pcs, "D_hat": 0.2}, signer)  # type: ignore[arg-type]
            items.append(pcs)
    result = pcs_ingest_batch(
        body=json.dumps({"items": items}).encode(), tenant_header=tenant_slug, received_at=timezone.now()
    )
    statuses = {r["status"] for r in result.body["results"]}
    if result.status != 200 or statuses - {200, 202}:
        raise SystemExit(f"ingest refused PCS: {result.status} {sorted(statuses)}")


# Copies of the real decisions under new ids: pcs_id = sha256(seed's pcs_id || n), the id written into
# the PCS and into the stored answer as well; decided 8 days and n milliseconds ago.
FILL_SQL = """
WITH seeds AS (
    SELECT row_number() OVER (ORDER BY id) - 1 AS rn, * FROM pcs_pcsrecord WHERE id <= %(last_seed)s
), made AS (
    SELECT g, s.*, encode(sha256(convert_to(s.pcs_id || ':' || g, 'UTF8')), 'hex') AS new_id
    FROM generate_series(%(first)s, %(last)s) AS g
    JOIN seeds s ON s.rn = g %% %(seeds)s
)
INSERT INTO pcs_pcsrecord (tenant_id, pcs_id, payload_digest, inputs_digest, shard_id, epoch, pcs,
    status_code, accepted, escalated, reason, policy_version, d_hat, regime, budget, anomaly_score,
    response, audit_entry_id, received_at, decided_at)
SELECT tenant_id, new_id, payload_digest, inputs_digest, shard_id, g,
    pcs || jsonb_build_object('pcs_id', new_id),
    status_code, accepted, escalated, reason, policy_version, d_hat, regime, budget, anomaly_score,
    replace(response, pcs_id, new_id), audit_entry_id,
    now() - interval '8 days' - g * interval '1 millisecond',
    now() - interval '8 days' - g * interval '1 millisecond'
FROM made
"""


def _percentiles(samples: list[float]) -> tuple[float, float]:
    ordered = sorted(samples)
    return statistics.median(ordered), ordered[int(len(ordered) * 0.95) - 1]


def _moto() -> tuple[subprocess.Popen, str]:
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        try:
            if httpx.get(f"{url}/moto-api/", timeout=1).is_success:
                return proc, url
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline:
            raise SystemExit("moto server did not start")
        time.sleep(0.2)


def _codecs(rows: list) -> dict[str, dict[str, float]]:
    from apps.tiering import codec

    raw = sum(len(codec.record_bytes(row)) for row in rows)
    out = {}
    for name, kind, frame in (("zstd", "zstd", 32), ("gzip", "gzip", 32), ("zstd_1_per_frame", "zstd", 1)):
        codec.FRAME_RECORDS = frame
        started = time.perf_counter()
        packed = codec.pack(kind, rows)
        seconds = time.perf_counter() - started
        out[name] = {"ratio": raw / len(packed.data), "pack_mb_s": raw / seconds / 1e6}
    codec.FRAME_RECORDS = 32
    return out


def main() -> int:
    """Seed, fill, measure codecs, lookups and demotion, report."""
    database_recreate(DB)
    moto, endpoint = _moto()
    os.environ["TIER_COLD_S3_ENDPOINT_URL"] = endpoint
    try:
        return _run(endpoint)
    finally:
        os.killpg(moto.pid, 15)
        moto.wait(timeout=10)


def _run(endpoint: str) -> int:
    import boto3
    import django
    import redis

    django.setup()
    from django.core.management import call_command
    from django.db import connection

    from apps.pcs import tiers
    from apps.pcs.dedup import get_dedup_store
    from apps.pcs.models import PcsRecord
    from apps.tenants.services import tenant_create
    from apps.tiering.models import DemotionBatch
    from apps.tiering.services import tier_demote
    from flk_agent.signing import HmacSigner

    call_command("migrate", verbosity=0)
    redis.Redis.from_url(os.environ["REDIS_URL"]).flushdb()
    boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1").create_bucket(Bucket=BUCKET)
    tenant, new = tenant_create(slug="bench-tier", name="Bench Tier", actor="bench")
    _seed(tenant.slug, HmacSigner(new.secret.encode()))
    last_seed = PcsRecord.objects.order_by("-id").values_list("id", flat=True).first()

    started = time.perf_counter()
    for first in range(0, RECORDS, FILL_CHUNK):
        last = min(first + FILL_CHUNK, RECORDS) - 1
        with connection.cursor() as cursor:
            cursor.execute(FILL_SQL, {"first": first, "last": last, "seeds": SEEDS, "last_seed": last_seed})
        print(f"[bench] {last + 1} records", flush=True)
    fill_s = time.perf_counter() - started
    # The codecs on the real decisions alone (the copies repeat them, which flatters any compressor).
    real_codecs = _codecs(list(PcsRecord.objects.filter(id__lte=last_seed)))
    PcsRecord.objects.filter(id__lte=last_seed).delete()  # the seeds are recent: not due for demotion
    with connection.cursor() as cursor:
        cursor.execute("VACUUM ANALYZE pcs_pcsrecord")
        cursor.execute("SELECT pg_total_relation_size('pcs_pcsrecord'), count(*) FROM pcs_pcsrecord")
        warm_bytes, warm_count = cursor.fetchone()

    sample = list(PcsRecord.objects.order_by("?")[:CODEC_SAMPLE])
    codecs = _codecs(sample)
    ids = [row.pcs_id for row in random.sample(sample, min(LOOKUPS, len(sample)))]

    def timed(call) -> list[float]:
        out = []
        for pcs_id in ids:
            t = time.perf_counter()
            call(pcs_id)
            out.append((time.perf_counter() - t) * 1000)
        return out

    warm_ms = timed(lambda pcs_id: tiers.record_lookup(tenant_id=tenant.pk, pcs_id=pcs_id, promote=False))

    # Baseline of demotion: read the rows in batches and pack them, writing nothing.
    from apps.tiering.codec import pack

    t = time.perf_counter()
    baseline_rows = 0
    for rows in _batches(PcsRecord, tenant.pk, min(RECORDS, 100_000)):
        pack("zstd", rows)
        baseline_rows += len(rows)
    baseline_rate = baseline_rows / (time.perf_counter() - t)

    t = time.perf_counter()
    run = tier_demote()
    demote_s = time.perf_counter() - t
    objects = DemotionBatch.objects.filter(state="deleted")
    cold_bytes = sum(objects.values_list("object_bytes", flat=True))

    cold_ms = timed(lambda pcs_id: tiers.record_lookup(tenant_id=tenant.pk, pcs_id=pcs_id, promote=False))
    for pcs_id in ids:  # promote, then read the hot tier as the dedup lookup does
        tiers.record_lookup(tenant_id=tenant.pk, pcs_id=pcs_id)
    store = get_dedup_store()
    hot_ms = timed(lambda pcs_id: store.claim(tenant_id=tenant.pk, pcs_id=pcs_id, digest=""))

    warm_per, cold_per = warm_bytes / warm_count, cold_bytes / max(run.records, 1)
    warm50, warm95 = _percentiles(warm_ms)
    hot50, hot95 = _percentiles(hot_ms)
    cold50, cold95 = _percentiles(cold_ms)
    rate = run.records / demote_s
    lines = [
        f"tier bench: {RECORDS} records ({SEEDS} real decisions copied by bulk SQL in {fill_s:.0f} s), "
        f"{LOOKUPS} lookups per tier, cold tier on moto's S3 server",
        f"lookup warm (baseline) p50 {warm50:.2f} ms p95 {warm95:.2f} ms",
        f"lookup hot  p50 {hot50:.2f} ms p95 {hot95:.2f} ms  = {hot50 / warm50:.2f}x warm p50",
        f"lookup cold p50 {cold50:.2f} ms p95 {cold95:.2f} ms  = {cold50 / warm50:.2f}x warm p50",
        f"demotion {run.records} records in {demote_s:.1f} s = {rate:.0f} records/s "
        f"({run.batches} batches, {run.failed} failed) = {rate / baseline_rate:.2f}x "
        f"the read+pack baseline ({baseline_rate:.0f} records/s)",
        f"bytes per record: warm {warm_per:.0f} (table on disk), cold {cold_per:.0f} "
        f"= {warm_per / cold_per:.1f}x smaller",
        "codecs on "
        + f"{len(sample)} records: "
        + ", ".join(
            f"{name} ratio {v['ratio']:.2f} at {v['pack_mb_s']:.0f} MB/s" for name, v in codecs.items()
        ),
        f"codecs on the {SEEDS} real decisions alone: " + _codec_line(real_codecs),
    ]
    text = "\n".join(lines)
    print(text)
    write_results(
        "tier",
        text,
        {
            "records": RECORDS,
            "lookups": LOOKUPS,
            "lookup_ms": {
                "warm": {"p50": warm50, "p95": warm95},
                "hot": {"p50": hot50, "p95": hot95},
                "cold": {"p50": cold50, "p95": cold95},
            },
            "demotion_records_per_s": rate,
            "demotion_baseline_records_per_s": baseline_rate,
            "demoted": run.records,
            "bytes_per_record": {"warm": warm_bytes / warm_count, "cold": cold_bytes / max(run.records, 1)},
            "codecs": codecs,
            "codecs_real_decisions": real_codecs,
            "fill_seconds": fill_s,
        },
    )
    return 0 if run.failed == 0 and run.records == warm_count else 1


def _codec_line(codecs: dict[str, dict[str, float]]) -> str:
    return ", ".join(
        f"{name} ratio {v['ratio']:.2f} at {v['pack_mb_s']:.0f} MB/s" for name, v in codecs.items()
    )


def _batches(model, tenant_id: int, limit: int):
    from django.conf import settings

    size = settings.TIER_DEMOTE_BATCH
    qs = model.objects.filter(tenant_id=tenant_id).order_by("decided_at", "id")
    for start in range(0, limit, size):
        rows = list(qs[start : start + size])
        if not rows:
            return
        yield rows


if __name__ == "__main__":
    raise SystemExit(main())
