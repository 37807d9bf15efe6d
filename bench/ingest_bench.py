"""`make bench`, part 1: single submissions against the floor, throughput and latency, in one run.

One stack (bench/stack.py: gunicorn, PostgreSQL, Redis dedup, WAL_FSYNC=always), two measurements,
each of /v1/pcs/submit against the floor endpoint /v1/bench/floor (same server, same parse, no
verification, no storage), every PCS unique and validly signed:

1. Throughput, closed loop: wrk (one thread, 64 connections) for ROUNDS rounds, floor and submit
   alternating so machine noise hits both; medians of the rounds.
2. Latency at a fixed offered rate (1,000 req/s by default), open loop (bench/loadgen.py): floor, then
   submit, each for a warm-up and a measured window; p50/p95/p99 from the intended send time, the
   achieved 2xx rate, errors and the client-side backlog if the server did not keep up.

Ratios submit/floor are the figures to compare between runs (the machine is shared). Writes
bench/results/ingest-latest.{txt,json}.
"""

from __future__ import annotations

import asyncio
import os
import statistics
import sys
from typing import Any

from bench.loadgen import OpenLoopReport, at_rate, wrk_post
from bench.stack import PcsFactory, Stack, ensure_debian_tool, run_stamp, write_results

CONNECTIONS = int(os.environ.get("BENCH_CONNECTIONS", "64"))
DURATION_S = int(os.environ.get("BENCH_DURATION", "15"))
WARMUP_S = 3
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "2"))
RATE = float(os.environ.get("BENCH_RATE", "1000"))
RATE_DURATION_S = float(os.environ.get("BENCH_RATE_DURATION", "20"))
RATE_WARMUP_S = 2.0
RATE_CONNECTIONS = int(os.environ.get("BENCH_RATE_CONNECTIONS", "256"))
DB = "flk_bench"
# The team's targets, printed beside the figures (benchmarks, not tests).
TARGET_RPS, TARGET_RATIO, TARGET_P99_MS = 1500, 0.6, 25.0
# More bodies per round than the server can take: wrk cycles through them, and a repeat would be a replay.
BODIES_PER_SECOND = 4000


def _at_rate(stack: Stack, path: str, bodies: list[str], headers: dict[str, str]) -> OpenLoopReport:
    return asyncio.run(
        at_rate(
            host="127.0.0.1",
            port=stack.port,
            path=path,
            bodies=[b.encode() for b in bodies],
            headers=headers,
            rate=RATE,
            duration_s=RATE_DURATION_S,
            warmup_s=RATE_WARMUP_S,
            max_connections=RATE_CONNECTIONS,
        )
    )


def _ratio(a: float, b: float) -> float:
    return a / b if b else float("nan")


def main() -> int:
    """Run both measurements, print the report and write it to bench/results/."""
    wrk = ensure_debian_tool("wrk", "wrk")
    per_round = (DURATION_S + WARMUP_S) * BODIES_PER_SECOND
    at_rate = int(RATE * (RATE_DURATION_S + RATE_WARMUP_S)) + 1
    with Stack(db=DB) as stack:
        tenant = stack.default_tenant()
        print(f"[bench] generating {per_round * ROUNDS + at_rate} signed PCS", flush=True)
        factory = PcsFactory(tenant.signer, shard_id=f"bench-{run_stamp()}")
        round_bodies = [factory.bodies(per_round) for _ in range(ROUNDS)]
        rate_bodies = factory.bodies(at_rate)
        stack.start()
        base = stack.base_url
        rounds = []
        for i, bodies in enumerate(round_bodies):
            path = stack.tmp / f"bodies-{i}.jsonl"
            path.write_text("\n".join(bodies) + "\n")
            wrk_post(wrk, f"{base}/v1/bench/floor", path, seconds=WARMUP_S, connections=CONNECTIONS)
            floor = wrk_post(wrk, f"{base}/v1/bench/floor", path, seconds=DURATION_S, connections=CONNECTIONS)
            submit = wrk_post(wrk, f"{base}/v1/pcs/submit", path, seconds=DURATION_S, connections=CONNECTIONS)
            rounds.append({"floor": floor, "submit": submit})
            print(f"[bench] round {i + 1}: floor {floor['rps']:.0f} req/s, submit {submit['rps']:.0f} req/s")
        print(f"[bench] open loop at {RATE:.0f} req/s: floor, then submit", flush=True)
        # The floor neither verifies nor stores, so it may reuse the first round's bodies.
        floor_rate = _at_rate(stack, "/v1/bench/floor", round_bodies[0][:at_rate], tenant.headers)
        submit_rate = _at_rate(stack, "/v1/pcs/submit", rate_bodies, tenant.headers)
        config = {
            **stack.config,
            "connections": CONNECTIONS,
            "duration_s": DURATION_S,
            "rounds": ROUNDS,
            "rate": RATE,
            "rate_duration_s": RATE_DURATION_S,
            "rate_warmup_s": RATE_WARMUP_S,
            "rate_max_connections": RATE_CONNECTIONS,
        }

    def med(kind: str, key: str) -> float:
        return statistics.median(r[kind][key] for r in rounds)

    report: dict[str, Any] = {
        "when": run_stamp(),
        "machine": {"cores": os.cpu_count()},
        "config": config,
        "rounds": rounds,
        "floor": {k: med("floor", k) for k in ("rps", "p50_us", "p95_us", "p99_us")},
        "submit": {k: med("submit", k) for k in ("rps", "p50_us", "p95_us", "p99_us")},
        "fixed_rate": {"floor": floor_rate.as_dict(), "submit": submit_rate.as_dict()},
    }
    report["ratio"] = {
        "throughput_submit_over_floor": _ratio(report["submit"]["rps"], report["floor"]["rps"]),
        "p99_submit_over_floor": _ratio(report["submit"]["p99_us"], report["floor"]["p99_us"]),
        "fixed_rate_achieved_submit_over_floor": _ratio(submit_rate.achieved_rps, floor_rate.achieved_rps),
        **{
            f"fixed_rate_{q}_submit_over_floor": _ratio(
                getattr(submit_rate, f"{q}_ms"), getattr(floor_rate, f"{q}_ms")
            )
            for q in ("p50", "p95", "p99")
        },
    }
    text = _render(report, floor_rate, submit_rate)
    print(text)
    write_results("ingest", text, report)
    return 0


def _render(report: dict[str, Any], floor_rate: OpenLoopReport, submit_rate: OpenLoopReport) -> str:
    ratio = report["ratio"]
    lines = [
        f"FLK ingest benchmark, {report['when']}, {os.cpu_count()} cores, "
        f"{report['config']['workers']} gunicorn workers x {report['config']['threads']} threads",
        "",
        f"1. throughput, closed loop: wrk, {CONNECTIONS} connections, "
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
        f"submit/floor throughput ratio: {ratio['throughput_submit_over_floor']:.2f}; "
        f"p99 ratio: {ratio['p99_submit_over_floor']:.2f}"
    )
    bad = [r["submit"]["statuses"] for r in report["rounds"] if set(r["submit"]["statuses"]) - {"200"}]
    if bad:
        lines.append(f"WARNING: non-200 submit answers: {bad}")
    lines += [
        f"targets: >= {TARGET_RPS} req/s ({report['submit']['rps']:.0f}) and >= {TARGET_RATIO} of the floor "
        f"({ratio['throughput_submit_over_floor']:.2f})",
        "",
        f"2. latency at a fixed offered rate: {RATE:.0f} req/s, open loop, {RATE_DURATION_S:.0f}s after "
        f"{RATE_WARMUP_S:.0f}s warm-up, latency from the intended send time",
        f"{'':8}{'offered':>9}{'achieved':>10}{'errors':>8}{'unsent':>8}{'p50 ms':>10}{'p95 ms':>10}"
        f"{'p99 ms':>10}{'max ms':>10}  sustained",
    ]
    for kind, row in (("floor", floor_rate), ("submit", submit_rate)):
        lines.append(
            f"{kind:8}{row.offered_rps:>9.0f}{row.achieved_rps:>10.0f}{row.errors:>8}{row.unsent:>8}"
            f"{row.p50_ms:>10.2f}{row.p95_ms:>10.2f}{row.p99_ms:>10.2f}{row.max_ms:>10.1f}  "
            f"{'yes' if row.sustained else 'NO'}"
        )
    lines.append(
        f"submit/floor: achieved {ratio['fixed_rate_achieved_submit_over_floor']:.2f}, "
        + ", ".join(f"{q} {ratio[f'fixed_rate_{q}_submit_over_floor']:.2f}" for q in ("p50", "p95", "p99"))
    )
    for kind, row in (("floor", floor_rate), ("submit", submit_rate)):
        if not row.sustained:
            lines.append(
                f"{kind} did NOT sustain {row.offered_rps:.0f} req/s: "
                f"{row.achieved_rps:.0f} req/s answered 2xx, "
                f"{row.unsent} requests never sent, p99 {row.p99_ms:.0f} ms from the intended time "
                f"(service time alone: p50 {row.service_p50_ms:.1f} ms, p99 {row.service_p99_ms:.1f} ms)"
            )
        if row.statuses.keys() - {"200"}:
            lines.append(f"{kind} statuses: {row.statuses}")
    lines.append(f"target: p99 <= {TARGET_P99_MS:.0f} ms at {RATE:.0f} req/s ({submit_rate.p99_ms:.1f} ms)")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
