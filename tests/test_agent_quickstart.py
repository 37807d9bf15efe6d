"""docs/agent.md's quick start, run exactly as written against a real `make run`.

The commands are the fenced block marked ``sh quickstart``. They run from a directory laid out like a
checkout (``.venv`` and ``var/`` where the doc expects them), so the only change made to the text is
the server's address: the test's server listens on a free port instead of 8000.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path

import pytest

from tests.support.make_run import make_run
from tests.support.servers import ROOT

AGENT_DOC = ROOT / "docs" / "agent.md"
DOC_URL = "http://127.0.0.1:8000"
QUICKSTART = re.compile(r"^```sh quickstart\n(.*?)^```$", re.S | re.M)


def quickstart_commands() -> str:
    """The shell text of the quick start block (there must be exactly one)."""
    blocks = QUICKSTART.findall(AGENT_DOC.read_text(encoding="utf-8"))
    assert len(blocks) == 1, f"docs/agent.md must hold one ```sh quickstart block, found {len(blocks)}"
    return blocks[0]


def _agent(*args: str, cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(ROOT / ".venv/bin/flk-agent"), *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_the_quick_start_block_talks_to_make_runs_default_address():
    commands = quickstart_commands()
    assert DOC_URL in commands
    assert "var/keys/hmac.key" in commands  # the key make run created, not a fresh one


@pytest.mark.slow
def test_agent_quickstart_as_written_gets_a_pcs_accepted(tmp_path):
    checkout = tmp_path / "checkout"
    checkout.mkdir()
    (checkout / ".venv").symlink_to(ROOT / ".venv")
    # A shell of a newcomer: no variable of this test process (database, keys, FLK_URL...).
    env = {"PATH": os.environ["PATH"], "HOME": str(tmp_path), "LANG": "C.UTF-8"}

    with make_run(var_dir=checkout / "var") as run:
        script = quickstart_commands().replace(DOC_URL, run.url)
        done = subprocess.run(
            ["bash", "-e", "-o", "pipefail", "-c", script],
            cwd=checkout,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode == 0, f"quick start failed:\n{done.stdout}\n{done.stderr}"
        assert "0 pending, 1 acked, 0 dead" in done.stdout, done.stdout

        workdir = checkout / "flk-quickstart"
        status = _agent("outbox", "status", "--json", cwd=workdir, env=env)
        assert status.returncode == 0, status.stderr
        counts = json.loads(status.stdout)
        assert (counts["pending"], counts["acked"], counts["dead"]) == (0, 1, 0), counts

        # Accepted, not merely decided: sending it again replays the stored answer, a 200.
        again = _agent("submit", "pcs.json", "--json", "--url", run.url, cwd=workdir, env=env)
        assert again.returncode == 0, again.stderr
        (result,) = json.loads(again.stdout)["results"]
        assert (result["status"], result["outcome"]) == (200, "replayed"), result
