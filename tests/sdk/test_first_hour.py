"""The agent developer's first hour, as a new user meets it: the real `flk-agent` script against a real
gunicorn, in a real terminal (a pty) where the output depends on one, through real pipes for `| head`.
"""

from __future__ import annotations

import argparse
import fcntl
import json
import os
import pty
import re
import select
import struct
import subprocess
import termios
import time
from pathlib import Path

import numpy as np
import pytest

from apps.policy.services import policy_activate, policy_create
from flk_agent.cli import build_parser
from flk_agent.outbox import Outbox
from tests.support.servers import ROOT, free_port, gunicorn

AGENT = str(ROOT / ".venv/bin/flk-agent")
RIGHT_KEY = "flk-test-hmac-secret"  # the test settings' PCS_HMAC_KEY, which the server verifies with


def agent(*args: str, cwd: Path, timeout: float = 60) -> subprocess.CompletedProcess:
    """Run the installed script with pipes (not a terminal), as a script or CI would."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("FLK_")}
    return subprocess.run([AGENT, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)


def in_terminal(args: list[str], cwd: Path, timeout: float = 60) -> tuple[int, str]:
    """Run the script with stdin, stdout and stderr on a pty; return its status and everything shown."""
    master, slave = pty.openpty()
    # A terminal of 40 rows and 160 columns: a new pty has none, and tqdm fits its bar to the width.
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 160, 0, 0))
    env = {k: v for k, v in os.environ.items() if not k.startswith("FLK_")}
    proc = subprocess.Popen([AGENT, *args], cwd=cwd, env=env, stdin=slave, stdout=slave, stderr=slave)
    os.close(slave)
    shown, deadline = b"", time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 0.2)
            if ready:
                try:
                    chunk = os.read(master, 65536)
                except OSError:  # EIO: the child closed the terminal
                    break
                if not chunk:
                    break
                shown += chunk
            elif proc.poll() is not None:
                break
        return proc.wait(timeout=10), shown.decode(errors="replace")
    finally:
        os.close(master)
        if proc.poll() is None:
            proc.kill()


def write_points(path: Path, seed: int = 7) -> None:
    rng = np.random.default_rng(seed)
    path.write_text("\n".join(f"{x},{y}" for x, y in rng.random((300, 2))) + "\n")


def compute(workdir: Path, key_file: Path, epoch: int, out: str) -> None:
    write_points(workdir / "points.csv", seed=epoch)
    (workdir / "data.bin").write_bytes(os.urandom(4096))
    done = agent(
        "compute", "--points", "points.csv", "--raw", "data.bin", "--shard", "first-hour",
        "--epoch", str(epoch), "--key-file", str(key_file), "--out", out, cwd=workdir,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    (tmp_path / "right.key").write_text(RIGHT_KEY + "\n")
    (tmp_path / "wrong.key").write_text("not-the-servers-key\n")
    return tmp_path


@pytest.mark.slow
def test_a_wrong_key_dead_letter_says_why_and_is_recovered_by_resigning(transactional_db, tenant, workdir):
    compute(workdir, workdir / "wrong.key", epoch=1, out="pcs.json")
    pcs_id = json.loads((workdir / "pcs.json").read_text())["pcs_id"]
    with gunicorn(workers=1) as server:
        sent = agent("submit", "pcs.json", "--url", server.url, cwd=workdir)
        assert sent.returncode == 4, sent.stderr
        # The dead letter's line says why, and what to do about a key.
        assert re.search(rf"dead\s+401\s+{pcs_id}\s+invalid_signature", sent.stdout), sent.stdout
        assert "retry-dead --resign --key-file" in sent.stdout

        moved = agent("outbox", "retry-dead", "--resign", "--key-file", "right.key", cwd=workdir)
        assert moved.returncode == 0, moved.stderr
        assert "1 dead-lettered PCS sent back to pending, re-signed" in moved.stdout

        again = agent("submit", "--url", server.url, "--json", cwd=workdir)  # no files: what is pending
        assert again.returncode == 0, again.stderr
        (result,) = json.loads(again.stdout)["results"]
        assert (result["pcs_id"], result["status"], result["outcome"]) == (pcs_id, 200, "acked")

        # A second dead letter, given up: purge-dead removes it, the dead-letter file keeps its history.
        compute(workdir, workdir / "wrong.key", epoch=2, out="pcs2.json")
        assert agent("submit", "pcs2.json", "--url", server.url, cwd=workdir).returncode == 4
    purged = agent("outbox", "purge-dead", cwd=workdir)
    assert purged.returncode == 0, purged.stderr
    assert re.search(r"purged\s+\w{64}\s+invalid_signature", purged.stdout), purged.stdout
    status = json.loads(agent("outbox", "status", "--json", cwd=workdir).stdout)
    assert (status["pending"], status["acked"], status["dead"]) == (0, 1, 0)
    lines = (workdir / "flk-outbox" / "dead-letter.jsonl").read_text().splitlines()
    assert len(lines) == 2


def test_submit_to_a_server_that_is_down_says_what_it_waits_for(workdir):
    compute(workdir, workdir / "right.key", epoch=1, out="pcs.json")
    down = f"http://127.0.0.1:{free_port()}"
    sent = agent(
        "submit", "pcs.json", "--url", down, "--max-attempts", "3", "--backoff-cap", "0.3", cwd=workdir
    )
    assert sent.returncode == 4
    waits = [line for line in sent.stderr.splitlines() if "waiting" in line]
    assert len(waits) == 2, sent.stderr  # before attempts 2 and 3
    for attempt, line in zip((2, 3), waits, strict=True):
        assert re.search(rf"attempt {attempt}/3 of \w{{16}}… at \d\d:\d\d:\d\d", line), line
        assert "last error: ConnectError: [Errno 111] Connection refused" in line, line
        assert down in line, line
    assert "retry_budget_exhausted" in sent.stdout


@pytest.mark.slow
def test_stream_in_a_terminal_shows_accepted_escalated_and_rejected(transactional_db, tenant, workdir):
    # Epoch 2 escalated and epoch 3 rejected by the tenant's policy; epochs 1 and 4 accepted.
    policy = policy_create(
        tenant=tenant,
        name="first hour",
        version="1.1.0",
        params={},
        rules=[
            {"name": "two", "expr": "pcs.epoch == 2", "action": "escalate", "message": "epoch two"},
            {"name": "three", "expr": "pcs.epoch == 3", "action": "reject", "message": "epoch three"},
        ],
        actor="test",
    )
    policy_activate(policy=policy, actor="test")
    rng = np.random.default_rng(1)
    events = [json.dumps({"point": [float(x), float(y)]}) for x, y in rng.random((40, 2))]
    (workdir / "events.jsonl").write_text("\n".join(events) + "\n")
    with gunicorn(workers=1) as server:
        code, shown = in_terminal(
            [
                "stream",
                "--input",
                "events.jsonl",
                "--shard",
                "tty",
                "--window-count",
                "10",
                "--url",
                server.url,
                "--key-file",
                "right.key",
            ],
            cwd=workdir,
        )
    assert code == 4, shown  # the rejected epoch is dead-lettered
    assert "accepted=2, escalated=1, rejected=1" in shown, shown
    assert "\r" in shown  # a live bar, redrawn in place


def test_stream_in_a_terminal_against_a_server_that_is_down_shows_its_waits(workdir):
    (workdir / "events.jsonl").write_text(json.dumps({"point": [0.1, 0.2]}) + "\n")
    down = f"http://127.0.0.1:{free_port()}"
    code, shown = in_terminal(
        [
            "stream",
            "--input",
            "events.jsonl",
            "--shard",
            "down",
            "--window-count",
            "1",
            "--url",
            down,
            "--key-file",
            "right.key",
            "--max-attempts",
            "2",
            "--backoff-cap",
            "0.2",
        ],
        cwd=workdir,
    )
    assert code == 4, shown
    assert re.search(r"waiting \d+\.\d s: attempt 2/2 of \w{16}… at \d\d:\d\d:\d\d; last error: Conn", shown)


def test_outbox_status_piped_into_head_ends_quietly(workdir):
    with Outbox(workdir / "flk-outbox") as outbox:
        outbox.put_many([{"pcs_id": f"{i:064x}", "epoch": i} for i in range(3000)])  # ~250 KB of status
    for extra in ("", " --json"):
        done = subprocess.run(
            ["bash", "-o", "pipefail", "-c", f"'{AGENT}' outbox status{extra} 2>err.txt | head -n 2"],
            cwd=workdir,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert len(done.stdout.splitlines()) == 2
        assert (workdir / "err.txt").read_text() == ""  # no BrokenPipeError traceback
        assert done.returncode == 141  # as a program stopped by SIGPIPE: `pipefail` scripts see it


def test_a_bad_csv_names_its_line(workdir):
    (workdir / "points.csv").write_text("x,y\n0.1,0.2\n0.3,0.4\n0.5,oops\n")
    (workdir / "data.bin").write_bytes(b"abc" * 100)
    done = agent(
        "compute", "--points", "points.csv", "--raw", "data.bin", "--shard", "s", "--epoch", "1",
        "--key-file", "right.key", cwd=workdir,
    )  # fmt: skip
    assert done.returncode == 2
    assert "points.csv: line 4: 'oops' is not a number" in done.stderr
    (workdir / "points.csv").write_text("0.1,0.2\n0.3\n")
    done = agent(
        "compute", "--points", "points.csv", "--raw", "data.bin", "--shard", "s", "--epoch", "1",
        "--key-file", "right.key", cwd=workdir,
    )  # fmt: skip
    assert done.returncode == 2 and "line 2: 1 value, but the rows before have 2" in done.stderr


def test_version_and_help_for_every_option(workdir):
    version = agent("--version", cwd=workdir)
    assert version.returncode == 0 and re.fullmatch(r"flk-agent \d+\.\d+\.\d+\n", version.stdout)

    def undocumented(parser: argparse.ArgumentParser, path: str) -> list[str]:
        missing = []
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for name, child in action.choices.items():
                    missing += undocumented(child, f"{path} {name}")
            elif not action.help:
                missing.append(f"{path} {'/'.join(action.option_strings) or action.dest}")
        return missing

    assert undocumented(build_parser(), "flk-agent") == []
    shown = agent("outbox", "--help", cwd=workdir).stdout
    assert "purge-dead" in shown and "--resign" in shown
