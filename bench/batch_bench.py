"""`make bench`, part 2: the batch endpoint in PCS/s, against single submissions of the same run.

A multi-tenant stack (bench/stack.py, MULTI_TENANT=true) with two tenants created through
``manage.py tenant create``: one HMAC, one Ed25519. First the baselines: wrk (64 connections) on the
floor endpoint and on /v1/pcs/submit for each tenant. Then, for each tenant and batch size (100 and
1,000 items), CONNECTIONS clients post ``{"items": [...]}`` to /v1/pcs/submit:batch back to back for
DURATION seconds (or until the pre-built PCS run out) and every item's status is counted.

PCS/s = items decided (200 or 202) per second of the run. The ratios to read are batch PCS/s over the
same tenant's single-submission req/s, and over the floor. Targets (benchmarks, not tests): 20,000 PCS/s
with HMAC, 8,000 with Ed25519. Writes bench/results/batch-latest.{txt,json}.
"""

from __future__ import annotations

import asyncio
import json
import math
import os
import sys
import time
from collections import Counter
from collections.abc import Iterator
from typing import Any

from bench.loadgen import HttpConnection, percentile, prepare_request, wrk_post
from bench.stack import BenchTenant, PcsFactory, Stack, ensure_debian_tool, run_stamp, write_results

DB = "flk_bench_batch"
SIZES = (100, 1000)
DURATION_S = float(os.environ.get("BENCH_BATCH_DURATION", "10"))
CONNECTIONS = int(os.environ.get("BENCH_BATCH_CONNECTIONS", "4"))
# PCS built ahead per (tenant, size): building them costs 30-50 µs each on the bench's own cores, so
# they are built before the clock starts; a run that uses them all up ends early and says so.
POOL = int(os.environ.get("BENCH_BATCH_POOL", "60000"))
BASELINE_S = int(os.environ.get("BENCH_BATCH_BASELINE", "10"))
BASELINE_CONNECTIONS = 64
WARMUP_BATCHES = 2
TARGETS = {"hmac": 20_000, "ed25519": 8_000}
PATH = "/v1/pcs/submit:batch"


class BatchUnavailable(Exception):
    """The server has no batch endpoint (404/405 on the first batch)."""


def _batches(bodies: list[str], size: int) -> Iterator[bytes]:
    for start in range(0, len(bodies) - size + 1, size):
        yield ('{"items":[' + ",".join(bodies[start : start + size]) + "]}").encode()


async def _post_batches(
    port: int, tenant: BenchTenant, batches: list[bytes], duration_s: float
) -> dict[str, Any]:
    """CONNECTIONS clients post the batches back to back until the duration or the batches end."""
    requests = iter([prepare_request("127.0.0.1", port, PATH, body, tenant.headers) for body in batches])
    items: Counter[str] = Counter()
    batch_statuses: Counter[str] = Counter()
    latencies: list[float] = []
    started = time.perf_counter()
    deadline = started + duration_s

    async def client() -> None:
        conn = HttpConnection("127.0.0.1", port)
        try:
            for raw in requests:
                if time.perf_counter() >= deadline:
                    return
                t = time.perf_counter()
                status, body = await conn.request(raw)
                latencies.append(time.perf_counter() - t)
                batch_statuses[str(status)] += 1
                if status in (404, 405):
                    raise BatchUnavailable(f"{PATH} answered {status}")
                if status == 200:
                    items.update(str(r["status"]) for r in json.loads(body)["results"])
        finally:
            conn.close()

    await asyncio.gather(*(client() for _ in range(CONNECTIONS)))
    elapsed = time.perf_counter() - started
    decided = items["200"] + items["202"]
    return {
        "batches": len(latencies),
        "elapsed_s": elapsed,
        "pool_exhausted": elapsed < duration_s * 0.95,
        "batch_statuses": dict(batch_statuses),
        "item_statuses": dict(items),
        "decided": decided,
        "pcs_per_s": decided / elapsed,
        "batch_p50_ms": percentile(latencies, 50) * 1000,
        "batch_p99_ms": percentile(latencies, 99) * 1000,
    }


def main() -> int:
    """Baselines, then every (tenant, size); print the report and write it to bench/results/."""
    wrk = ensure_debian_tool("wrk", "wrk")
    stamp = run_stamp()
    with Stack(db=DB, multi_tenant=True) as stack:
        tenants = {"hmac": stack.tenant_hmac("bench-hmac"), "ed25519": stack.tenant_ed25519("bench-ed25519")}
        factories = {alg: PcsFactory(t.signer, shard_id=f"batch-{alg}-{stamp}") for alg, t in tenants.items()}
        print(f"[batch] building {POOL} PCS per tenant and size, and the baselines' bodies", flush=True)
        baseline_files = {}
        for alg, factory in factories.items():
            path = stack.tmp / f"single-{alg}.jsonl"
            path.write_text("\n".join(factory.bodies((BASELINE_S + 1) * 4000)) + "\n")
            baseline_files[alg] = path
        warm = {alg: list(_batches(f.bodies(100 * WARMUP_BATCHES), 100)) for alg, f in factories.items()}
        pools = {
            (alg, size): list(_batches(f.bodies(POOL), size))
            for alg, f in factories.items()
            for size in SIZES
        }
        stack.start()
        base = stack.base_url
        wrk_post(
            wrk, f"{base}/v1/bench/floor", baseline_files["hmac"], seconds=3, connections=BASELINE_CONNECTIONS
        )
        floor = wrk_post(
            wrk,
            f"{base}/v1/bench/floor",
            baseline_files["hmac"],
            seconds=BASELINE_S,
            connections=BASELINE_CONNECTIONS,
        )
        print(f"[batch] floor {floor['rps']:.0f} req/s", flush=True)
        single = {}
        for alg, tenant in tenants.items():
            single[alg] = wrk_post(
                wrk,
                f"{base}/v1/pcs/submit",
                baseline_files[alg],
                seconds=BASELINE_S,
                connections=BASELINE_CONNECTIONS,
                tenant=tenant.slug,
            )
            print(f"[batch] single submissions, {alg}: {single[alg]['rps']:.0f} req/s", flush=True)
        runs: dict[str, dict[str, Any]] = {}
        try:
            for alg, tenant in tenants.items():
                asyncio.run(_post_batches(stack.port, tenant, warm[alg], DURATION_S))
                for size in SIZES:
                    run = asyncio.run(_post_batches(stack.port, tenant, pools[(alg, size)], DURATION_S))
                    run["per_single"] = run["pcs_per_s"] / single[alg]["rps"]
                    run["per_floor"] = run["pcs_per_s"] / floor["rps"]
                    runs[f"{alg}/{size}"] = run
                    print(f"[batch] {alg}, {size} per batch: {run['pcs_per_s']:.0f} PCS/s", flush=True)
        except BatchUnavailable as exc:
            text = f"FLK batch benchmark, {stamp}: SKIPPED, {exc} (the batch endpoint is not in this build)"
            print(text)
            write_results("batch", text, {"when": stamp, "skipped": str(exc)})
            return 0
        config = {**stack.config, "connections": CONNECTIONS, "duration_s": DURATION_S, "pool": POOL}

    report = {
        "when": stamp,
        "machine": {"cores": os.cpu_count()},
        "config": config,
        "floor": floor,
        "single": single,
        "batch": runs,
    }
    text = _render(report)
    print(text)
    write_results("batch", text, report)
    return 0


def _render(report: dict[str, Any]) -> str:
    floor, single = report["floor"], report["single"]
    lines = [
        f"FLK batch benchmark, {report['when']}, {os.cpu_count()} cores, "
        f"{report['config']['workers']} gunicorn workers x {report['config']['threads']} threads",
        f"baselines (wrk, {BASELINE_CONNECTIONS} connections, {BASELINE_S}s): "
        f"floor {floor['rps']:.0f} req/s, "
        + ", ".join(f"single submit {alg} {row['rps']:.0f} req/s" for alg, row in single.items()),
        f"batches: {CONNECTIONS} connections back to back, {DURATION_S:.0f}s or until {POOL} PCS are used",
        f"{'tenant/size':<14}{'PCS/s':>9}{'x single':>10}{'x floor':>9}{'batch p50':>11}{'batch p99':>11}"
        f"{'decided':>9}  item statuses",
    ]
    for name, run in report["batch"].items():
        lines.append(
            f"{name:<14}{run['pcs_per_s']:>9.0f}{run['per_single']:>10.2f}{run['per_floor']:>9.2f}"
            f"{run['batch_p50_ms']:>9.0f}ms{run['batch_p99_ms']:>9.0f}ms{run['decided']:>9}"
            f"  {run['item_statuses']}" + ("  (pool used up early)" if run["pool_exhausted"] else "")
        )
        if set(run["batch_statuses"]) - {"200"}:
            lines.append(f"  batch statuses: {run['batch_statuses']}")
    for alg, target in TARGETS.items():
        best = max(
            (r["pcs_per_s"] for n, r in report["batch"].items() if n.startswith(alg)), default=math.nan
        )
        lines.append(f"target {alg}: >= {target} PCS/s (best {best:.0f})")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
