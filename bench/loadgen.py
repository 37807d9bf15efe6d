"""Load generation for the benchmarks: keep-alive HTTP/1.1 on asyncio, and an open-loop generator.

Why our own generator: Debian (bookworm) ships wrk, hey and siege, and npm offers autocannon; all of
them are closed-loop (a connection sends its next request only after the previous answer, ``hey -q``
and ``autocannon -R`` merely cap the pace), so when the server stalls they stop sending and the stall
is never measured (coordinated omission). wrk2, vegeta and k6, the open-loop tools, are not packaged
for Debian or npm. ``open_loop`` schedules request *i* at ``t0 + i / rate`` whatever the answers do,
and measures each latency from that intended time, as wrk2 does: time spent waiting for a free
connection, in the server's queue, or behind a slow answer all counts.

The client is a few hundred bytes of HTTP/1.1 per request on asyncio streams (requests are prepared
as bytes before the clock starts), so at 1,000 req/s it uses a small share of one core; it runs on
the same machine as the server, and the floor run of the same benchmark pays the same cost.
"""

from __future__ import annotations

import asyncio
import json
import math
import os
import subprocess
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

READ_LIMIT = 1 << 16  # asyncio's own default line limit; our headers are far smaller


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (q in [0, 100]) of unsorted values; NaN when there are none."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]


def prepare_request(host: str, port: int, path: str, body: bytes, headers: Mapping[str, str]) -> bytes:
    """A complete HTTP/1.1 POST of a JSON body, as bytes ready to write."""
    head = [
        f"POST {path} HTTP/1.1",
        f"Host: {host}:{port}",
        "Content-Type: application/json",
        f"Content-Length: {len(body)}",
        *(f"{name}: {value}" for name, value in headers.items()),
    ]
    return ("\r\n".join(head) + "\r\n\r\n").encode("ascii") + body


class HttpConnection:
    """One keep-alive HTTP/1.1 connection: write a prepared request, read the whole answer."""

    def __init__(self, host: str, port: int) -> None:
        self.host = host
        self.port = port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    @property
    def usable(self) -> bool:
        """Whether the connection can carry another request: open, and not closed by the server.

        gunicorn closes a keep-alive connection idle for ``keepalive`` seconds (5); reusing it would
        fail the next request, which is the client's fault, not the server's.
        """
        return (
            self.writer is not None
            and not self.writer.is_closing()
            and self.reader is not None
            and not self.reader.at_eof()
        )

    async def request(self, raw: bytes) -> tuple[int, bytes]:
        """Send ``raw`` and return (status, body); opens the connection on first use."""
        if self.reader is None or self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port, limit=READ_LIMIT)
        self.writer.write(raw)
        await self.writer.drain()
        head = await self.reader.readuntil(b"\r\n\r\n")
        lines = head.split(b"\r\n")
        status = int(lines[0].split(b" ", 2)[1])
        length, chunked, close = None, False, False
        for line in lines[1:]:
            name, _, value = line.partition(b":")
            name, value = name.strip().lower(), value.strip().lower()
            if name == b"content-length":
                length = int(value)
            elif name == b"transfer-encoding":
                chunked = b"chunked" in value
            elif name == b"connection":
                close = value == b"close"
        if chunked:
            body = await self._read_chunked()
        elif length is not None:
            body = await self.reader.readexactly(length)
        else:
            body, close = await self.reader.read(), True
        if close:
            self.close()
        return status, body

    async def _read_chunked(self) -> bytes:
        assert self.reader is not None
        parts = []
        while True:
            size = int((await self.reader.readuntil(b"\r\n")).split(b";")[0], 16)
            chunk = await self.reader.readexactly(size + 2)  # the chunk and its CRLF
            if size == 0:
                return b"".join(parts)
            parts.append(chunk[:-2])

    def close(self) -> None:
        """Close the socket; the next ``request`` opens a new one."""
        if self.writer is not None:
            self.writer.close()
        self.reader = self.writer = None


TRANSPORT_ERRORS = (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError, IndexError)


@dataclass
class OpenLoopReport:
    """What one open-loop window measured; latencies in milliseconds.

    ``p*_ms`` run from each request's intended send time to its full answer (coordinated omission
    counted); ``service_p*_ms`` from the moment it was written, for comparison; ``send_lag_p99_ms``
    is how late requests left the client (large when they waited for a connection, or when the
    client itself could not keep the pace).
    """

    offered_rps: float
    window_s: float
    scheduled: int
    answered: int
    achieved_rps: float
    statuses: dict[str, int]
    errors: int
    transport_errors: int
    unsent: int
    p50_ms: float
    p95_ms: float
    p99_ms: float
    max_ms: float
    service_p50_ms: float
    service_p99_ms: float
    send_lag_p99_ms: float
    connections_opened: int

    @property
    def sustained(self) -> bool:
        """Whether the server kept up: ≥ 98 % of the offered rate answered 2xx, nothing left unsent."""
        return self.achieved_rps >= 0.98 * self.offered_rps and self.unsent == 0

    def as_dict(self) -> dict[str, Any]:
        """Plain values for the JSON report."""
        return {**asdict(self), "sustained": self.sustained}


async def open_loop(
    *,
    host: str,
    port: int,
    path: str,
    bodies: Sequence[bytes],
    headers: Mapping[str, str],
    rate: float,
    duration_s: float,
    max_connections: int = 256,
    timeout_s: float = 10.0,
) -> OpenLoopReport:
    """Offer ``rate`` requests per second for ``duration_s`` and measure every answer.

    Body *i* (cycling) goes with request *i*: give ``rate * duration_s`` distinct bodies where the
    server refuses repeats. At most ``max_connections`` requests are in flight; one that finds them
    all busy waits, and its wait counts. When the window closes, requests still waiting for a
    connection are counted as ``unsent`` (the client-side backlog of a server that did not keep up),
    and those in flight get up to ``timeout_s`` to finish; the achieved rate counts only the 2xx
    answers that arrived inside the window.
    """
    if not bodies:
        raise ValueError("open_loop needs at least one body")
    loop = asyncio.get_running_loop()
    requests = [prepare_request(host, port, path, body, headers) for body in bodies]
    total = math.ceil(rate * duration_s)
    slots = asyncio.Semaphore(max_connections)
    idle: list[HttpConnection] = []
    t0 = loop.time() + 0.1
    end = t0 + duration_s
    closed = False
    latencies: list[float] = []
    service: list[float] = []
    send_lag: list[float] = []
    statuses: Counter[str] = Counter()
    counts: Counter[str] = Counter()

    async def one(index: int, intended: float) -> None:
        async with slots:
            if closed:
                counts["unsent"] += 1
                return
            sent = loop.time()
            while idle and not idle[-1].usable:
                idle.pop().close()
            if idle:
                conn = idle.pop()
            else:
                conn = HttpConnection(host, port)
                counts["opened"] += 1
            try:
                status, _ = await asyncio.wait_for(conn.request(requests[index % len(requests)]), timeout_s)
            except (TimeoutError, *TRANSPORT_ERRORS):
                conn.close()
                counts["transport_errors"] += 1
                return
            done = loop.time()
            if conn.usable:
                idle.append(conn)
        statuses[str(status)] += 1
        latencies.append(done - intended)
        service.append(done - sent)
        send_lag.append(sent - intended)
        if 200 <= status < 300 and done <= end:
            counts["ok_in_window"] += 1

    tasks = []
    for index in range(total):
        intended = t0 + index / rate
        delay = intended - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(loop.create_task(one(index, intended)))
    # Tasks created above that found a free connection have started by now; the rest are the backlog.
    await asyncio.sleep(max(0.0, end - loop.time()))
    closed = True
    await asyncio.gather(*tasks)
    for conn in idle:
        conn.close()

    non_2xx = sum(n for code, n in statuses.items() if not code.startswith("2"))
    return OpenLoopReport(
        offered_rps=rate,
        window_s=duration_s,
        scheduled=total,
        answered=len(latencies),
        achieved_rps=counts["ok_in_window"] / duration_s,
        statuses=dict(statuses),
        errors=non_2xx + counts["transport_errors"],
        transport_errors=counts["transport_errors"],
        unsent=counts["unsent"],
        p50_ms=percentile(latencies, 50) * 1000,
        p95_ms=percentile(latencies, 95) * 1000,
        p99_ms=percentile(latencies, 99) * 1000,
        max_ms=max(latencies, default=math.nan) * 1000,
        service_p50_ms=percentile(service, 50) * 1000,
        service_p99_ms=percentile(service, 99) * 1000,
        send_lag_p99_ms=percentile(send_lag, 99) * 1000,
        connections_opened=counts["opened"],
    )


async def at_rate(
    *,
    host: str,
    port: int,
    path: str,
    bodies: Sequence[bytes],
    headers: Mapping[str, str],
    rate: float,
    duration_s: float,
    warmup_s: float,
    max_connections: int = 256,
) -> OpenLoopReport:
    """A warm-up window (its report dropped: connections opened, caches filled), then the measured one.

    The warm-up takes the first ``rate * warmup_s`` bodies and the window the rest; the warm-up's
    backlog is dropped, so a server that cannot keep up starts the window with its queue of
    in-flight requests only, and the window's latencies show how fast that queue grows.
    """
    split = math.ceil(rate * warmup_s)
    common = {"host": host, "port": port, "path": path, "headers": headers, "rate": rate}
    await open_loop(**common, bodies=bodies[:split], duration_s=warmup_s, max_connections=max_connections)
    return await open_loop(
        **common, bodies=bodies[split:] or bodies, duration_s=duration_s, max_connections=max_connections
    )


WRK_SCRIPT = Path(__file__).resolve().parent / "wrk_bodies.lua"


def wrk_post(
    wrk: str,
    url: str,
    bodies: Path,
    *,
    seconds: int,
    connections: int,
    tenant: str | None = None,
) -> dict[str, Any]:
    """Closed-loop throughput: wrk (one thread) posts the bodies of ``bodies`` (one JSON per line).

    Returns wrk's request count, latency percentiles (µs), socket errors, status counts and req/s.
    """
    env = {**os.environ, "FLK_BENCH_BODIES": str(bodies), "FLK_BENCH_THREADS": "1"}
    if tenant:
        env["FLK_BENCH_TENANT"] = tenant
    done = subprocess.run(
        [
            wrk,
            "-t1",
            f"-c{connections}",
            f"-d{seconds}s",
            "--timeout",
            "5s",
            "--latency",
            "-s",
            str(WRK_SCRIPT),
            url,
        ],
        env=env,
        capture_output=True,
        text=True,
        check=True,
        timeout=seconds + 60,
    )
    line = next(ln for ln in done.stdout.splitlines() if ln.startswith("FLK_RESULT "))
    result = json.loads(line.removeprefix("FLK_RESULT "))
    result["rps"] = result["requests"] / (result["duration_us"] / 1e6)
    return result
