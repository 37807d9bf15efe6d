"""Where a single submission's time goes: py-spy on the gunicorn workers under the bench's load.

The bench stack (bench/stack.py) takes wrk's 64 connections on /v1/pcs/submit, as in ingest_bench,
while py-spy samples every worker thread twice in a row:

1. wall clock (``--idle``): every request thread, whether it runs, waits for the GIL, for fsync,
   PostgreSQL or Redis. Restricted to stacks inside a request, this is where a submission's time goes.
2. CPU (``--gil``): only the thread holding the GIL, that is what the two workers' Python computes.

Each gives a table by own time (the innermost Python frame; a C call such as ``os.fdatasync`` or a
socket read is charged to the Python line that made it) and by cumulative time (any frame on the
stack; the project's functions in the text, all of them in the JSON), by call site (the innermost
project frame and the library call it made, e.g. the SQL statement's execute or the commit), and by
resource (fdatasync, PostgreSQL, Redis, JSON…). Writes bench/results/profile-latest.txt (the tables),
profile-latest.json, and profile-wall-latest.speedscope.json / profile-cpu-latest.speedscope.json
(open them at https://www.speedscope.app).

py-spy is a development dependency, pinned in requirements-dev.txt.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from collections import Counter
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from bench.loadgen import WRK_SCRIPT, wrk_post
from bench.stack import RESULTS, PcsFactory, Stack, ensure_debian_tool, run_stamp, write_results

DB = "flk_bench_profile"
CONNECTIONS = int(os.environ.get("BENCH_CONNECTIONS", "64"))
SAMPLE_S = int(os.environ.get("PROFILE_DURATION", "20"))
RATE_HZ = int(os.environ.get("PROFILE_RATE", "100"))
TOP = int(os.environ.get("PROFILE_TOP", "25"))
BODIES_PER_SECOND = 3000
# A frame that marks a thread as serving a request (gunicorn's gthread worker hands it the connection).
REQUEST_FRAME = "handle (gunicorn/workers/gthread.py"
ROOT = Path(__file__).resolve().parent.parent
# Frames of the project's own code. py-spy shortens a path: relative to the server's working
# directory (the repository) or to the sys.path entry it was imported from; absolute otherwise.
PROJECT = re.compile(r"\((?:" + re.escape(f"{ROOT}/") + r")?(?:sdk/python/)?(apps|flk_project|flk_agent)/")


def _file(pattern: str) -> re.Pattern[str]:
    """A frame whose file path starts with ``pattern`` or has it after a slash: ``name (path:line)``."""
    return re.compile(r"\((?:[^()]*/)?(?:" + pattern + ")")


# Resources, tested on each frame from the innermost outwards; the first frame that matches decides.
RESOURCES: list[tuple[str, re.Pattern[str]]] = [
    ("WAL fdatasync (own or a peer's, waited for)", re.compile(r"sync_upto \((?:[^()]*/)?apps/pcs/wal\.py")),
    ("WAL write and framing", _file(r"apps/pcs/wal\.py")),
    ("PostgreSQL (driver, round trips, Django's SQL layer)", _file(r"psycopg/|django/db/")),
    ("Redis (client and round trips)", _file(r"redis/")),
    (
        "canonical JSON (RFC 8785), digests, signature",
        _file(r"rfc8785/|flk_agent/(signing|pcs)\.py|hmac\.py|cryptography/"),
    ),
    ("JSON decode/encode", _file(r"json/|apps/pcs/errors\.py")),
    (
        "policy, PII scan, sanity checks, recomputation",
        _file(r"apps/policy/|flk_agent/signals\.py|celpy/|phonenumbers/"),
    ),
    ("strict parse", _file(r"apps/pcs/parsing\.py")),
    ("metrics (prometheus_client)", _file(r"prometheus_client/")),
    ("logging", _file(r"logging/")),
    # A follower of the group commit waits for the leader's transaction (the leader's own time is SQL).
    ("group commit: waiting for the leader's transaction", re.compile(r"GroupCommitter\.submit \(")),
    ("other FLK code", PROJECT),
    ("Django, DRF, gunicorn", _file(r"django/|rest_framework/|gunicorn/|whitenoise/|axes/|asgiref/")),
]


def _py_spy() -> str:
    found = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    if not Path(found).exists():
        raise SystemExit("py-spy is missing: make venv (it is pinned in requirements-dev.txt)")
    return found


def _record(py_spy: str, pid: int, out: Path, *, mode: str) -> None:
    """py-spy record of the master and its workers, collapsed stacks (one line per stack and count)."""
    flag = "--idle" if mode == "wall" else "--gil"
    subprocess.run(
        [
            py_spy,
            "record",
            "--pid",
            str(pid),
            "--subprocesses",
            flag,
            "--rate",
            str(RATE_HZ),
            "--duration",
            str(SAMPLE_S),
            "--format",
            "raw",
            "--output",
            str(out),
        ],
        check=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        timeout=SAMPLE_S + 60,
    )


def _stacks(path: Path) -> list[tuple[list[str], int]]:
    """(frames root first, count) per line of py-spy's raw output."""
    out = []
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if stack and count.isdigit():
            out.append((stack.split(";"), int(count)))
    return out


_LINE = re.compile(r":\d+\)$")


def _function(frame: str) -> str:
    """``name (file:line)`` → ``name (file)`` with the site-packages or repository prefix cut."""
    frame = _LINE.sub(")", frame)
    frame = re.sub(r"\(.*?site-packages/", "(", frame)
    return frame.replace(f"({Path.cwd()}/", "(").replace(f"({Path(__file__).resolve().parent.parent}/", "(")


def _site(frames: list[str]) -> str:
    """The innermost project frame and what it called: the call site a sample's time is spent under."""
    for i in range(len(frames) - 1, -1, -1):
        if PROJECT.search(frames[i]):
            callee = _function(frames[i + 1]) if i + 1 < len(frames) else "(its own code)"
            return f"{_function(frames[i])} -> {callee}"
    return "(outside project code)"


def _resource(frames: list[str]) -> str:
    for frame in reversed(frames):
        for name, pattern in RESOURCES:
            if pattern.search(frame):
                return name
    return "other"


def _analyse(stacks: list[tuple[list[str], int]], *, only_requests: bool) -> dict[str, Any]:
    """Own, cumulative and resource tables, as shares of the samples considered."""
    chosen = [(f, n) for f, n in stacks if not only_requests or any(REQUEST_FRAME in fr for fr in f)]
    total = sum(n for _, n in chosen)
    own: Counter[str] = Counter()
    cumulative: Counter[str] = Counter()
    project: Counter[str] = Counter()
    sites: Counter[str] = Counter()
    resources: Counter[str] = Counter()
    processes: Counter[str] = Counter()
    for frames, n in chosen:
        # With --subprocesses each process is a frame ("process <pid>:…"), a worker's under the master's.
        process = [f for f in frames if f.startswith("process ")]
        processes[process[-1].split(":", 1)[0] if process else "?"] += n
        names = [_function(f) for f in frames]
        own[names[-1]] += n
        for name in set(names):
            cumulative[name] += n
        for name in {_function(f) for f in frames if PROJECT.search(f)}:
            project[name] += n
        sites[_site(frames)] += n
        resources[_resource(frames)] += n

    def table(counter: Counter[str], limit: int) -> list[dict[str, Any]]:
        return [{"function": k, "samples": v, "share": v / total} for k, v in counter.most_common(limit)]

    return {
        "samples": total,
        "all_samples": sum(n for _, n in stacks),
        "processes": table(processes, 10),
        "resources": table(resources, len(RESOURCES) + 1),
        "sites": table(sites, TOP),
        "own": table(own, TOP),
        "project_cumulative": table(project, TOP),
        "cumulative": table(cumulative, 2 * TOP),
    }


def _speedscope(stacks: list[tuple[list[str], int]], name: str) -> dict[str, Any]:
    """The collapsed stacks as one speedscope "sampled" profile."""
    index: dict[str, int] = {}
    samples, weights = [], []
    for frames, n in stacks:
        samples.append([index.setdefault(_function(f), len(index)) for f in frames])
        weights.append(n)
    return {
        "$schema": "https://www.speedscope.app/file-format-schema.json",
        "name": name,
        "exporter": "bench/profile_ingest.py",
        "shared": {"frames": [{"name": frame} for frame in index]},
        "profiles": [
            {
                "type": "sampled",
                "name": name,
                "unit": "none",
                "startValue": 0,
                "endValue": sum(weights),
                "samples": samples,
                "weights": weights,
            }
        ],
    }


def _lines(title: str, result: dict[str, Any]) -> Iterable[str]:
    yield f"{title}: {result['samples']} samples ({result['all_samples']} on all threads)"
    headings = (
        ("processes", "by process (gunicorn workers: how evenly the connections are spread)"),
        ("resources", "by resource (innermost frame that names one)"),
        ("sites", "by call site (innermost project frame -> what it called)"),
        ("own", "by own time (innermost Python frame)"),
        ("project_cumulative", "by cumulative time, project functions"),
    )
    for key, heading in headings:
        yield f"  {heading}:"
        for row in result[key]:
            yield f"    {row['share']:>6.1%}  {row['function']}"


def main() -> int:
    """Load the server, sample it twice, write the tables and the speedscope files."""
    py_spy = _py_spy()
    wrk = ensure_debian_tool("wrk", "wrk")
    load_s = 2 * SAMPLE_S + 8
    with Stack(db=DB) as stack:
        tenant = stack.default_tenant()
        factory = PcsFactory(tenant.signer, shard_id=f"profile-{run_stamp()}")
        warm, load = stack.tmp / "warm.jsonl", stack.tmp / "load.jsonl"
        warm.write_text("\n".join(factory.bodies(3 * BODIES_PER_SECOND)) + "\n")
        load.write_text("\n".join(factory.bodies(load_s * BODIES_PER_SECOND)) + "\n")
        stack.start()
        assert stack.process is not None
        wrk_post(wrk, f"{stack.base_url}/v1/pcs/submit", warm, seconds=3, connections=CONNECTIONS)
        env = {**os.environ, "FLK_BENCH_BODIES": str(load), "FLK_BENCH_THREADS": "1"}
        loader = subprocess.Popen(
            [
                wrk,
                "-t1",
                f"-c{CONNECTIONS}",
                f"-d{load_s}s",
                "-s",
                str(WRK_SCRIPT),
                f"{stack.base_url}/v1/pcs/submit",
            ],
            env=env,
            stdout=subprocess.PIPE,
            text=True,
        )
        raw = {mode: stack.tmp / f"{mode}.txt" for mode in ("wall", "cpu")}
        try:
            for mode, path in raw.items():
                print(f"[profile] py-spy {mode} for {SAMPLE_S}s under {CONNECTIONS} connections", flush=True)
                _record(py_spy, stack.process.pid, path, mode=mode)
        finally:
            wrk_out, _ = loader.communicate(timeout=load_s + 60)
        result_line = next(
            (ln for ln in wrk_out.splitlines() if ln.startswith("FLK_RESULT ")), "FLK_RESULT {}"
        )
        load_result = json.loads(result_line.removeprefix("FLK_RESULT "))
        stacks = {mode: _stacks(path) for mode, path in raw.items()}
        config = stack.config

    rps = load_result.get("requests", 0) / (load_result.get("duration_us", 1) / 1e6)
    wall = _analyse(stacks["wall"], only_requests=True)
    cpu = _analyse(stacks["cpu"], only_requests=False)
    for mode in ("wall", "cpu"):
        path = RESULTS / f"profile-{mode}-latest.speedscope.json"
        path.write_text(json.dumps(_speedscope(stacks[mode], f"FLK submit, {mode}")) + "\n")
    header = [
        f"FLK ingest profile, {run_stamp()}: py-spy {RATE_HZ} Hz, {SAMPLE_S}s each, "
        f"wrk {CONNECTIONS} connections "
        f"on /v1/pcs/submit ({rps:.0f} req/s while sampled, statuses {load_result.get('statuses')})",
        "shares of the samples; own time is the innermost Python frame (C calls are charged to their caller)",
        "",
    ]
    text = "\n".join(
        [
            *header,
            *_lines("1. wall clock inside requests (request threads, --idle)", wall),
            "",
            *_lines("2. CPU: the thread holding the GIL (--gil), whole worker processes", cpu),
        ]
    )
    print(text)
    write_results("profile", text, {"config": config, "load": load_result, "wall": wall, "cpu": cpu})
    return 0


if __name__ == "__main__":
    sys.exit(main())
