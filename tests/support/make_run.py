"""The real `make run` job (deployments/local/run.sh) for tests: started, reached, stopped.

    with make_run(var_dir=tmp_path / "var") as run:
        httpx.get(f"{run.url}/healthz")

run.sh is started directly (the venv exists already), in its own process group, on a free loopback
port, with the embedded defaults it ships with: SQLite, the filesystem broker and directories under
``var_dir``. The test's own PostgreSQL database, Redis and WAL are never handed to it.
"""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from tests.support.servers import ROOT, free_port

RUN_SH = ROOT / "deployments/local/run.sh"
# Migrations of a fresh SQLite file, collectstatic and four processes booting; about 10 s here.
START_TIMEOUT_SECONDS = 180.0
# run.sh gives its children 20 s to stop before it kills them.
STOP_TIMEOUT_SECONDS = 30.0

# What the test settings and fixtures put in this process's environment: handed to run.sh they
# would point it at the test database, the test Redis or the test's WAL.
TEST_ONLY_ENV = (
    "DATABASE_URL",
    "REDIS_URL",
    "CELERY_BROKER_URL",
    "PCS_HMAC_KEY",
    "METRICS_PASS",
    "DB_CONN_MAX_AGE",
    "WAL_DIR",
    "PROMETHEUS_MULTIPROC_DIR",
    "FLK_VAR_DIR",
    "FLK_BIND",
    "DJANGO_SETTINGS_MODULE",
)


@dataclass
class MakeRun:
    """A running `make run`: where it answers, its process (the group leader) and what it printed."""

    url: str
    bind: str
    var_dir: Path
    proc: subprocess.Popen
    _lines: list[str] = field(default_factory=list, repr=False)

    @property
    def output(self) -> str:
        """Everything run.sh and its processes printed so far (stdout and stderr together)."""
        return "".join(self._lines)


def make_run_env(*, var_dir: Path, bind: str, env: dict[str, str] | None = None) -> dict[str, str]:
    """The environment run.sh gets: this one without the test-only settings, plus ``env``."""
    out = {name: value for name, value in os.environ.items() if name not in TEST_ONLY_ENV}
    out.update(
        {
            "DJANGO_SETTINGS_MODULE": "flk_project.settings.base",
            "FLK_VAR_DIR": str(var_dir),
            "FLK_BIND": bind,
            "PYTHONUNBUFFERED": "1",
        }
    )
    out.update(env or {})
    return out


def process_table() -> dict[tuple[int, str], tuple[int, str, bytes]]:
    """Live processes by (pid, start time): parent pid, command line, environment."""
    table = {}
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            # The fields after the command name, which is in parentheses and may hold spaces.
            fields = (proc / "stat").read_text().rpartition(")")[2].split()
            if fields[0] == "Z":
                continue
            cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            environ = (proc / "environ").read_bytes()
        except (FileNotFoundError, ProcessLookupError, PermissionError):
            continue
        table[(int(proc.name), fields[19])] = (int(fields[1]), cmdline, environ)
    return table


def job_processes(*, root: int, var_dir: Path) -> dict[tuple[int, str], str]:
    """The processes of a `make run`, by (pid, start time): ``root``'s descendants and any process
    of ``var_dir``, with their command lines.

    The second part finds a process that outlived run.sh (re-parented, so no longer a descendant):
    by FLK_VAR_DIR in its environment or, for nginx, whose title overwrites its environment, by
    the var directory in its command line.
    """
    table = process_table()
    env_marker = f"FLK_VAR_DIR={var_dir}".encode()
    path_marker = f"{var_dir}/"
    found = {
        key: cmdline
        for key, (_, cmdline, environ) in table.items()
        if key[0] != os.getpid() and (env_marker in environ.split(b"\0") or path_marker in cmdline)
    }
    while True:
        parents = {root} | {pid for pid, _ in found}
        children = {key: row[1] for key, row in table.items() if row[0] in parents and key not in found}
        if not children:
            return found
        found.update(children)


def _kill_leftovers(known: dict[tuple[int, str], str], var_dir: Path) -> None:
    """SIGKILL, by pid, whatever of the job is still alive (run.sh's children run in their own groups)."""
    alive = process_table()
    leftovers = {key for key in known if key in alive}
    leftovers.update(job_processes(root=-1, var_dir=var_dir))
    for pid, _ in leftovers:
        with suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def _collect(stream, lines: list[str]) -> None:
    for line in iter(stream.readline, ""):
        lines.append(line)
    stream.close()


def stop_group(
    proc: subprocess.Popen, sig: int = signal.SIGTERM, timeout: float = STOP_TIMEOUT_SECONDS
) -> None:
    """Signal the job's process group, then SIGKILL the group if it has not ended within ``timeout``."""
    if proc.poll() is None:
        with suppress(ProcessLookupError):
            os.killpg(proc.pid, sig)
    with suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=timeout)
    # Even once run.sh itself has exited, a process of its group may remain: none may outlive the test.
    with suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=10)


@contextmanager
def make_run(*, var_dir: Path, env: dict[str, str] | None = None) -> Iterator[MakeRun]:
    """Start deployments/local/run.sh with ``FLK_VAR_DIR=var_dir``; yield it once /healthz answers.

    ``env`` adds to (or overrides) the environment, FLK_BIND included. Fails with the job's output if
    it exits, or does not answer within START_TIMEOUT_SECONDS. At exit run.sh's process group gets
    SIGTERM (run.sh stops its children), SIGKILL after STOP_TIMEOUT_SECONDS; then any process of the
    job still alive is killed by its pid.
    """
    var_dir = var_dir.resolve()
    bind = (env or {}).get("FLK_BIND") or f"127.0.0.1:{free_port()}"
    proc = subprocess.Popen(
        [str(RUN_SH)],
        cwd=ROOT,
        env=make_run_env(var_dir=var_dir, bind=bind, env=env),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    run = MakeRun(url=f"http://{bind}", bind=bind, var_dir=var_dir, proc=proc)
    reader = threading.Thread(target=_collect, args=(proc.stdout, run._lines), daemon=True)
    reader.start()
    try:
        deadline = time.monotonic() + START_TIMEOUT_SECONDS
        while "FLK is running" not in run.output:
            if proc.poll() is not None:
                reader.join(timeout=5)
                raise AssertionError(f"make run exited with {proc.returncode}:\n{run.output}")
            if time.monotonic() > deadline:
                raise AssertionError(f"make run did not answer within the bound:\n{run.output}")
            time.sleep(0.2)
        # run.sh prints its banner only after /healthz answered; this checks it from the outside.
        httpx.get(f"{run.url}/healthz", timeout=5).raise_for_status()
        yield run
    finally:
        known = job_processes(root=proc.pid, var_dir=var_dir)
        stop_group(proc)
        _kill_leftovers(known, var_dir)
        reader.join(timeout=5)
