"""The embedded default end to end: `make run`'s own arrangement, with nothing but a var directory.

deployments/local/run.sh starts with SQLite in var/, kombu's filesystem broker in var/broker/ and the
WAL in var/wal. Through its front, signed PCS are decided, a repeat is replayed and a malformed body is
refused; the WAL holds every request with its answer. Stopped and started again on the same var
directory, it has lost nothing: the earlier PCS are replays of their stored answers. Then Celery beat
and the worker, talking through the filesystem broker, seal a signed checkpoint that proves the
decisions of both runs are in the audit log. (Beat keeps its schedule in var/ across the restart, so the
first 60 s sealing interval runs on during the second start.)
"""

from __future__ import annotations

import base64
import json
import subprocess
import time
from pathlib import Path

import httpx
import pytest

from apps.pcs import wal
from flk_agent.checkpoint import check_inclusion, open_checkpoint
from flk_agent.signing import HmacSigner
from tests.support.make_run import MakeRun, make_run, make_run_env
from tests.support.pcs_factory import make_pcs
from tests.support.servers import ROOT

pytestmark = pytest.mark.slow

TENANT = "default"
# Beat (tasks/schedule.py) seals checkpoints every 60 s, the first time 60 s after it starts.
SEAL_WAIT_SECONDS = 90.0


def _submit(run: MakeRun, body: bytes) -> httpx.Response:
    return httpx.post(
        f"{run.url}/v1/pcs/submit",
        content=body,
        headers={"Content-Type": "application/json"},
        timeout=10,
    )


def _manage(run: MakeRun, *args: str) -> str:
    """``manage.py`` in the environment run.sh gave its own processes (the same var directory)."""
    done = subprocess.run(
        [str(ROOT / ".venv/bin/python"), "manage.py", *args],
        cwd=ROOT,
        env=make_run_env(var_dir=run.var_dir, bind=run.bind),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def _sealed_checkpoint(run: MakeRun, token: str, *, covering: int) -> httpx.Response:
    """Wait, within SEAL_WAIT_SECONDS, for beat and the worker to seal a checkpoint of more than
    ``covering`` entries; return the answer of ``GET /v1/audit/<tenant>/checkpoint``."""
    deadline = time.monotonic() + SEAL_WAIT_SECONDS
    while True:
        answer = httpx.get(
            f"{run.url}/v1/audit/{TENANT}/checkpoint",
            headers={"Authorization": f"Bearer {token}"},
            timeout=10,
        )
        if answer.status_code == 200 and int(answer.text.splitlines()[1]) > covering:
            return answer
        assert answer.status_code in (200, 404), answer.text  # 404: none sealed yet
        if time.monotonic() > deadline:
            raise AssertionError(
                f"no checkpoint covering entry {covering} within {SEAL_WAIT_SECONDS:.0f} s "
                f"(last answer {answer.status_code}: {answer.text!r}):\n{run.output[-4000:]}"
            )
        time.sleep(1)


def _wal_records(wal_dir: Path) -> tuple[dict[bytes, list[wal.WalRef]], dict[wal.WalRef, int]]:
    """Every request body in the WAL with where it is, and every outcome marker's status."""
    requests: dict[bytes, list[wal.WalRef]] = {}
    outcomes: dict[wal.WalRef, int] = {}
    for path in wal.list_segments(wal_dir, include_done=True):
        for record in wal.scan_segment(path).records:
            if isinstance(record, wal.WalRequest):
                requests.setdefault(record.body, []).append(record.ref)
            else:
                outcomes[record.ref] = record.status
    return requests, outcomes


def test_embedded_default_decides_keeps_its_wal_seals_and_loses_nothing_across_a_restart(tmp_path):
    var_dir = tmp_path / "var"
    with make_run(var_dir=var_dir) as run:
        # The key `make run` created for the default tenant, as an agent would be given it.
        signer = HmacSigner((var_dir / "keys" / "hmac.key").read_text().strip().encode())
        pcs = [make_pcs(signer, epoch=epoch, shard_id="shard-embedded") for epoch in (1, 2, 3)]
        bodies = [json.dumps(p).encode() for p in pcs]
        first = []
        for body in bodies:
            answer = _submit(run, body)
            assert answer.status_code == 200, answer.text
            assert "Idempotent-Replayed" not in answer.headers
            data = answer.json()
            assert (data["accepted"], data["escalated"], data["reason"]) == (True, False, ""), data
            first.append(data)

        # The same PCS again, as an agent's retry sends it (another attempt, another sent_at).
        retry = json.dumps(make_pcs(signer, epoch=1, shard_id="shard-embedded", attempt=2)).encode()
        assert retry != bodies[0]
        replay = _submit(run, retry)
        assert replay.status_code == 200, replay.text
        assert replay.headers["Idempotent-Replayed"] == "true"
        assert replay.json() == first[0]

        malformed = b'{"pcs_id": '
        refused = _submit(run, malformed)
        assert refused.status_code == 400, refused.text
        assert refused.json()["error"] == "malformed_json"

        # The WAL holds every request as it arrived, each marked with the status it was answered.
        requests, outcomes = _wal_records(var_dir / "wal")
        sent = {**{body: 200 for body in bodies}, retry: 200, malformed: 400}
        for body, status in sent.items():
            assert body in requests, f"not in the WAL: {body[:80]!r}"
            assert [outcomes.get(ref) for ref in requests[body]] == [status]

        token = json.loads(_manage(run, "tenant", "issue-token", TENANT, "--scope", "read"))["token"]

    # Stopped; started again on the same var directory: the WAL had nothing undecided, and every
    # earlier PCS is a replay of its stored answer.
    with make_run(var_dir=var_dir) as again:
        summary = next(
            json.loads(line) for line in again.output.splitlines() if line.startswith('{"segments"')
        )
        assert (summary["replayed"], summary["quarantined"], summary["still_pending"]) == (0, 0, 0), summary
        for body, data in zip(bodies, first, strict=True):
            answer = _submit(again, body)
            assert answer.status_code == 200, answer.text
            assert answer.headers["Idempotent-Replayed"] == "true"
            assert answer.json() == data
        fresh = make_pcs(signer, epoch=4, shard_id="shard-embedded")
        answer = _submit(again, json.dumps(fresh).encode())
        assert answer.status_code == 200, answer.text
        assert "Idempotent-Replayed" not in answer.headers
        logged = {d["audit_index"]: p["pcs_id"] for p, d in zip(pcs, first, strict=True)}
        logged[answer.json()["audit_index"]] = fresh["pcs_id"]
        last = max(logged)
        assert last == answer.json()["audit_index"]

        # Beat and the worker, talking through the filesystem broker, seal a checkpoint (the token
        # issued before the restart still reads it). It verifies with the server's public key, and
        # proves the decisions of both runs are in the log.
        assert any((var_dir / "broker").iterdir())
        checkpoint_answer = _sealed_checkpoint(again, token, covering=last)
        public_key = base64.b64decode(
            httpx.get(f"{again.url}/v1/audit/public-key", timeout=10).json()["public_key_b64"]
        )
        origin = checkpoint_answer.headers["X-Log-Origin"]
        checkpoint = open_checkpoint(checkpoint_answer.text, name=origin, public_key=public_key)
        assert checkpoint.size > last
        for index, pcs_id in logged.items():
            proof = httpx.get(
                f"{again.url}/v1/audit/{TENANT}/proof/inclusion",
                params={"index": index, "tree_size": checkpoint.size},
                headers={"Authorization": f"Bearer {token}"},
                timeout=10,
            )
            assert proof.status_code == 200, proof.text
            check_inclusion(checkpoint, proof.json())
            assert proof.json()["entry"]["content"]["pcs_id"] == pcs_id
        assert "Task tasks.audit.seal_checkpoints" in again.output
