"""The agent's outbox: durable before sending, torn lines dropped, one process at a time, compaction."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from flk_agent.outbox import ACKED, DEAD, LOG_NAME, PENDING, Outbox, OutboxLocked
from tests.support.servers import ROOT


def _pcs(i: int) -> dict:
    return {"pcs_id": f"{i:064x}", "epoch": i}


def test_a_put_survives_reopening_and_stays_pending_until_acked(tmp_path):
    with Outbox(tmp_path) as outbox:
        first = outbox.put(_pcs(1))
        outbox.put(_pcs(2))
        outbox.ack(first, 200)
    with Outbox(tmp_path) as outbox:
        assert [r.pcs["epoch"] for r in outbox.pending()] == [2]
        assert outbox.records[1].state == ACKED
        assert outbox.put(_pcs(3)).seq == 3


def test_a_torn_last_line_is_dropped_and_cut(tmp_path):
    with Outbox(tmp_path) as outbox:
        outbox.put(_pcs(1))
    log = tmp_path / LOG_NAME
    whole = log.stat().st_size
    with open(log, "ab") as fh:
        fh.write(b'0badc0de {"op":"put","seq":2,"at":1,"pcs":{"pcs_id"')
    with Outbox(tmp_path) as outbox:
        assert list(outbox.records) == [1]
    assert log.stat().st_size == whole


def test_a_second_process_is_refused_clearly(tmp_path):
    with Outbox(tmp_path):
        other = subprocess.run(
            [sys.executable, "-m", "flk_agent.cli", "outbox", "status", "--outbox", str(tmp_path)],
            capture_output=True,
            text=True,
            cwd=ROOT,
        )
        with pytest.raises(OutboxLocked):
            Outbox(tmp_path)
    assert other.returncode == 5
    assert "in use by another process" in other.stderr


def test_dead_letters_carry_the_reason_and_can_be_retried(tmp_path):
    with Outbox(tmp_path) as outbox:
        record = outbox.put(_pcs(1))
        outbox.dead_letter(record, "invalid_signature", status=401, detail="the signature does not verify")
        assert outbox.counts() == {PENDING: 0, ACKED: 0, DEAD: 1}
        letter = json.loads((tmp_path / "dead-letter.jsonl").read_text())
        assert (letter["reason"], letter["status"], letter["pcs_id"]) == (
            "invalid_signature",
            401,
            _pcs(1)["pcs_id"],
        )
        assert outbox.retry_dead() == 1
    with Outbox(tmp_path) as outbox:
        assert [r.seq for r in outbox.pending()] == [1]


def test_compaction_drops_only_acked_records_past_the_horizon(tmp_path):
    now = [1000.0]
    with Outbox(tmp_path, clock=lambda: now[0]) as outbox:
        old, recent, pending, dead = (outbox.put(_pcs(i)) for i in range(1, 5))
        outbox.ack(old, 200)
        now[0] = 5000.0
        outbox.ack(recent, 202)
        outbox.dead_letter(dead, "pcs_id_conflict", status=422)
        size_before = (tmp_path / LOG_NAME).stat().st_size
        assert outbox.compact(horizon_seconds=3600) == 1
        assert (tmp_path / LOG_NAME).stat().st_size < size_before
        outbox.put(_pcs(5))  # the log is writable after the swap
    with Outbox(tmp_path) as outbox:
        assert {s: r.state for s, r in outbox.records.items()} == {
            recent.seq: ACKED,
            pending.seq: PENDING,
            dead.seq: DEAD,
            5: PENDING,
        }
