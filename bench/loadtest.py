"""`make loadtest`: ramp to 100 concurrent agents and check the service-level gates.

Each agent is one keep-alive connection that sends a freshly signed PCS of its own shard (unique
pcs_id, current sent_at) every 1/AGENT_RATE seconds, one at a time, as an agent's outbox does. Agents
join evenly over RAMP seconds, then all of them run for HOLD seconds. A late answer makes the agent's
next PCS late; latency is measured from the moment the PCS was due, so a server that falls behind
shows it (no coordinated omission).

Gates, on the hold phase (all agents running): p95 < 200 ms and p99 < 500 ms; over the whole run:
errors < 1 %, where an error is any answer other than 200/202, a transport error or timeout, or a
PCS still unsent when the run ends. Exits 1 when a gate fails, after printing the figures and a
one-line verdict. Writes bench/results/loadtest-latest.{txt,json}.

The stack is started like the benchmarks' (bench/stack.py) unless FLK_LOADTEST_URL names a running
server (http only): then FLK_LOADTEST_HMAC_KEY is the tenant's HMAC secret and FLK_LOADTEST_TENANT,
when set, its X-Tenant-Id.
"""

from __future__ import annotations

import asyncio
import os
import sys
from collections import Counter
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from bench.loadgen import TRANSPORT_ERRORS, HttpConnection, percentile, prepare_request
from bench.stack import BenchTenant, PcsFactory, Stack, run_stamp, write_results
from flk_agent.signing import HmacSigner

AGENTS = int(os.environ.get("LOADTEST_AGENTS", "100"))
RAMP_S = float(os.environ.get("LOADTEST_RAMP", "20"))
HOLD_S = float(os.environ.get("LOADTEST_HOLD", "40"))
AGENT_RATE = float(os.environ.get("LOADTEST_AGENT_RATE", "5"))  # PCS per second per agent
TIMEOUT_S = float(os.environ.get("LOADTEST_TIMEOUT", "10"))
P95_MS = float(os.environ.get("LOADTEST_P95_MS", "200"))
P99_MS = float(os.environ.get("LOADTEST_P99_MS", "500"))
MAX_ERROR_RATE = float(os.environ.get("LOADTEST_MAX_ERRORS", "0.01"))
DB = "flk_bench_load"
PATH = "/v1/pcs/submit"
OK = {200, 202}


@dataclass
class Phase:
    """What one phase (ramp or hold) observed; latencies in seconds."""

    latencies: list[float] = field(default_factory=list)
    statuses: Counter[str] = field(default_factory=Counter)
    unsent: int = 0

    @property
    def sent(self) -> int:
        """Requests that got an answer or an error."""
        return sum(self.statuses.values())

    @property
    def errors(self) -> int:
        """Answers other than 200/202, transport errors, and PCS never sent."""
        return (
            sum(n for code, n in self.statuses.items() if not code.isdigit() or int(code) not in OK)
            + self.unsent
        )

    def summary(self, seconds: float) -> dict[str, Any]:
        """Figures for the report."""
        total = self.sent + self.unsent
        return {
            "requests": self.sent,
            "rate_rps": self.sent / seconds if seconds else 0.0,
            "p50_ms": percentile(self.latencies, 50) * 1000,
            "p95_ms": percentile(self.latencies, 95) * 1000,
            "p99_ms": percentile(self.latencies, 99) * 1000,
            "max_ms": max(self.latencies, default=float("nan")) * 1000,
            "errors": self.errors,
            "error_rate": self.errors / total if total else 0.0,
            "unsent": self.unsent,
            "statuses": dict(self.statuses),
        }


async def _agent(
    *,
    host: str,
    port: int,
    tenant: BenchTenant,
    factory: PcsFactory,
    start: float,
    hold: float,
    stop: float,
    phases: dict[str, Phase],
) -> None:
    loop = asyncio.get_running_loop()
    interval = 1.0 / AGENT_RATE
    hard_stop = stop + TIMEOUT_S  # a late agent may catch up for this long, then its backlog is unsent
    conn = HttpConnection(host, port)
    due = start
    try:
        while due < stop:
            phase = phases["ramp" if due < hold else "hold"]
            now = loop.time()
            if now > hard_stop:
                phase.unsent += 1
                due += interval
                continue
            if due > now:
                await asyncio.sleep(due - now)
            raw = prepare_request(host, port, PATH, factory.json().encode(), tenant.headers)
            try:
                status, _ = await asyncio.wait_for(conn.request(raw), TIMEOUT_S)
            except (TimeoutError, *TRANSPORT_ERRORS) as exc:
                conn.close()
                phase.statuses[type(exc).__name__] += 1
            else:
                phase.statuses[str(status)] += 1
                phase.latencies.append(loop.time() - due)
            due += interval
    finally:
        conn.close()


async def _run(host: str, port: int, tenant: BenchTenant) -> dict[str, Phase]:
    loop = asyncio.get_running_loop()
    base = PcsFactory(tenant.signer, shard_id="load")
    stamp = run_stamp()
    phases = {"ramp": Phase(), "hold": Phase()}
    t0 = loop.time() + 0.5
    hold, stop = t0 + RAMP_S, t0 + RAMP_S + HOLD_S
    await asyncio.gather(
        *(
            _agent(
                host=host,
                port=port,
                tenant=tenant,
                factory=base.for_shard(f"load-{stamp}-{k:03d}"),
                start=t0 + RAMP_S * k / AGENTS,
                hold=hold,
                stop=stop,
                phases=phases,
            )
            for k in range(AGENTS)
        )
    )
    return phases


def _against(url: str, tenant: BenchTenant) -> dict[str, Phase]:
    parts = urlsplit(url)
    if parts.scheme != "http" or not parts.hostname:
        raise SystemExit(f"FLK_LOADTEST_URL must be http://host:port, got {url!r}")
    return asyncio.run(_run(parts.hostname, parts.port or 80, tenant))


def main() -> int:
    """Run the load, print figures and the verdict, write bench/results/; 1 when a gate fails."""
    url = os.environ.get("FLK_LOADTEST_URL")
    if url:
        key = os.environ.get("FLK_LOADTEST_HMAC_KEY")
        if not key:
            raise SystemExit(
                "FLK_LOADTEST_URL needs FLK_LOADTEST_HMAC_KEY (and FLK_LOADTEST_TENANT if multi-tenant)"
            )
        tenant = BenchTenant(os.environ.get("FLK_LOADTEST_TENANT") or None, HmacSigner(key.encode()))
        phases = _against(url, tenant)
        config: dict[str, Any] = {"url": url}
    else:
        with Stack(db=DB) as stack:
            stack.start()
            phases = _against(stack.base_url, stack.default_tenant())
            config = stack.config
    config.update(agents=AGENTS, ramp_s=RAMP_S, hold_s=HOLD_S, agent_rate=AGENT_RATE, timeout_s=TIMEOUT_S)

    ramp, hold = phases["ramp"].summary(RAMP_S), phases["hold"].summary(HOLD_S)
    whole = Phase(
        latencies=phases["ramp"].latencies + phases["hold"].latencies,
        statuses=phases["ramp"].statuses + phases["hold"].statuses,
        unsent=phases["ramp"].unsent + phases["hold"].unsent,
    ).summary(RAMP_S + HOLD_S)
    gates = {
        f"p95 < {P95_MS:.0f} ms (hold)": hold["p95_ms"] < P95_MS,
        f"p99 < {P99_MS:.0f} ms (hold)": hold["p99_ms"] < P99_MS,
        f"errors < {MAX_ERROR_RATE:.0%} (run)": whole["error_rate"] < MAX_ERROR_RATE,
    }
    passed = all(gates.values())
    lines = [
        f"FLK load test, {run_stamp()}: {AGENTS} agents x {AGENT_RATE:g} PCS/s, ramp {RAMP_S:.0f}s + hold "
        f"{HOLD_S:.0f}s, latency from each PCS's due time",
        f"{'phase':<6}{'requests':>10}{'req/s':>8}{'p50 ms':>9}{'p95 ms':>9}{'p99 ms':>9}{'max ms':>9}"
        f"{'errors':>8}{'unsent':>8}  statuses",
    ]
    for name, row in (("ramp", ramp), ("hold", hold), ("run", whole)):
        lines.append(
            f"{name:<6}{row['requests']:>10}{row['rate_rps']:>8.0f}{row['p50_ms']:>9.1f}{row['p95_ms']:>9.1f}"
            f"{row['p99_ms']:>9.1f}{row['max_ms']:>9.0f}{row['errors']:>8}{row['unsent']:>8}"
            f"  {row['statuses']}"
        )
    verdict = (
        f"{'PASS' if passed else 'FAIL'}: p95 {hold['p95_ms']:.1f} ms, p99 {hold['p99_ms']:.1f} ms, "
        f"errors {whole['error_rate']:.2%}; "
        + ", ".join(f"{gate} {'ok' if ok else 'FAILED'}" for gate, ok in gates.items())
    )
    lines.append(verdict)
    text = "\n".join(lines)
    print(text)
    write_results(
        "loadtest",
        text,
        {"config": config, "ramp": ramp, "hold": hold, "run": whole, "gates": gates, "passed": passed},
    )
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main())
