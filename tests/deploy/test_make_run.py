"""`make run` (deployments/local/run.sh) from the outside: a busy address, the front, a clean stop."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time
from pathlib import Path

import httpx
import pytest

from flk_agent.signing import HmacSigner
from tests.support.make_run import RUN_SH, job_processes, make_run, make_run_env, process_table
from tests.support.pcs_factory import make_pcs
from tests.support.servers import ROOT, free_port

pytestmark = pytest.mark.slow


def _tree_under(path: Path) -> list[str]:
    return sorted(str(p.relative_to(path)) for p in path.rglob("*"))


def test_busy_address_is_refused_before_anything_changes(tmp_path):
    var_dir = tmp_path / "var"
    (var_dir / "prometheus").mkdir(parents=True)
    (var_dir / "prometheus" / "counter_123.db").write_bytes(b"metrics of the running instance")
    before = _tree_under(var_dir)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        bind = f"127.0.0.1:{taken.getsockname()[1]}"
        started = time.monotonic()
        done = subprocess.run(
            [str(RUN_SH)],
            cwd=ROOT,
            env=make_run_env(var_dir=var_dir, bind=bind),
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=60,
        )
        elapsed = time.monotonic() - started
    output = done.stdout + done.stderr
    print(f"\nmake run on a busy address exited {done.returncode} after {elapsed:.2f} s:\n{output}")
    assert done.returncode != 0
    assert f"FLK cannot listen on {bind}: the address is already in use" in output
    assert f"FLK_BIND=127.0.0.1:{int(bind.rsplit(':', 1)[1]) + 1} make run" in output
    assert "FLK is running" not in output
    # Nothing touched: the metrics of the instance already there, no database, no WAL, no lock.
    assert _tree_under(var_dir) == before
    assert (var_dir / "prometheus" / "counter_123.db").read_bytes() == b"metrics of the running instance"


@pytest.mark.parametrize("stop", ["ctrl-c", "sigterm"])
def test_make_run_serves_through_nginx_and_leaves_nothing_running(tmp_path, stop):
    var_dir = tmp_path / "var"
    with make_run(var_dir=var_dir) as run:
        health = httpx.get(f"{run.url}/healthz", timeout=10)
        assert health.status_code == 200
        assert health.headers["server"] == "nginx"
        assert f"nginx on {run.bind} reads each request whole" in run.output
        # A PCS signed with the key `make run` created is decided through the front.
        secret = (var_dir / "keys" / "hmac.key").read_text().strip()
        pcs = make_pcs(HmacSigner(secret.encode()), epoch=1)
        answer = httpx.post(
            f"{run.url}/v1/pcs/submit",
            content=json.dumps(pcs),
            headers={"Content-Type": "application/json"},
            timeout=10,
        )
        assert answer.status_code == 200, answer.text
        assert answer.json()["accepted"] is True

        running = job_processes(root=run.proc.pid, var_dir=var_dir)
        assert any("nginx: master" in cmd for cmd in running.values()), running
        assert any("nginx: worker" in cmd for cmd in running.values()), running
        assert any("gunicorn" in cmd for cmd in running.values()), running
        assert any("celery" in cmd and " beat" in cmd for cmd in running.values()), running
        printed = len(run.output)
        if stop == "ctrl-c":
            os.killpg(run.proc.pid, signal.SIGINT)  # what a terminal sends to the foreground job
        else:
            run.proc.send_signal(signal.SIGTERM)  # to run.sh alone
        started = time.monotonic()
        run.proc.wait(timeout=60)
        elapsed = time.monotonic() - started
        alive = process_table()
        left = {key: cmd for key, cmd in running.items() if key in alive}
        left.update(job_processes(root=run.proc.pid, var_dir=var_dir))
        print(f"\n{stop}: make run stopped in {elapsed:.1f} s; left running: {left}")
        print(run.output[printed:])
        assert left == {}
        with pytest.raises(httpx.TransportError):
            httpx.get(f"{run.url}/healthz", timeout=2)
        assert not (var_dir / "run" / "gunicorn.sock").exists()


def test_make_run_without_nginx_says_so_and_serves_directly(tmp_path):
    with make_run(var_dir=tmp_path / "var", env={"FLK_NGINX": "off"}) as run:
        health = httpx.get(f"{run.url}/healthz", timeout=10)
        assert health.status_code == 200
        assert health.headers["server"] == "gunicorn"
        assert (
            f"FLK_NGINX=off: gunicorn serves {run.bind} alone, and a dozen slow clients can hold all its "
            "threads; install nginx (sudo apt-get install nginx)"
        ) in run.output


def test_second_make_run_on_the_same_var_dir_is_refused(tmp_path):
    var_dir = tmp_path / "var"
    with make_run(var_dir=var_dir) as run:
        done = subprocess.run(
            [str(RUN_SH)],
            cwd=ROOT,
            env=make_run_env(var_dir=var_dir, bind=f"127.0.0.1:{free_port()}"),
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode != 0
        assert f"another make run is using {var_dir}" in done.stdout + done.stderr
        # The first one is still whole: its metrics directory was not emptied, it still answers.
        assert any((var_dir / "prometheus").iterdir())
        assert httpx.get(f"{run.url}/healthz", timeout=10).status_code == 200
