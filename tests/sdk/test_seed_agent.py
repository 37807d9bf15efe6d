"""The original FLK README's agent example, as docs/agent.md shows it, run against a real gunicorn."""

from __future__ import annotations

import re
import subprocess
import sys

import numpy as np
import pytest
from django.conf import settings

from apps.pcs.models import PcsRecord
from flk_agent.outbox import DEAD, Outbox
from flk_agent.seed import PCSAgent
from flk_agent.signals import box_counts
from tests.support.servers import ROOT, gunicorn

pytestmark = pytest.mark.slow

DOC_URL = "http://127.0.0.1:8000"
PYTHON_BLOCKS = re.compile(r"^```python\n(.*?)^```$", re.S | re.M)


def seed_example() -> str:
    """The one Python block of docs/agent.md that uses PCSAgent."""
    blocks = [b for b in PYTHON_BLOCKS.findall((ROOT / "docs/agent.md").read_text()) if "PCSAgent(" in b]
    assert len(blocks) == 1, f"expected one PCSAgent example in docs/agent.md, found {len(blocks)}"
    return blocks[0]


def test_the_documented_seed_example_gets_its_pcs_accepted(transactional_db, tenant, tmp_path):
    # Laid out as the doc expects: run from a checkout whose var/keys/hmac.key is the server's key.
    (tmp_path / "var/keys").mkdir(parents=True)
    (tmp_path / "var/keys/hmac.key").write_text(settings.PCS_HMAC_KEY + "\n")
    with gunicorn(workers=1) as server:
        done = subprocess.run(
            [sys.executable, "-c", seed_example().replace(DOC_URL, server.url)],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "Submitted: True"
    record = PcsRecord.objects.get(tenant=tenant, shard_id="dev-001", epoch=1)
    assert record.status_code == 200 and record.accepted
    # D̂ of the N_j the example gave: the Theil–Sen slope of log2 (3, 5, 9) over log2 (2, 4, 8).
    assert record.d_hat == pytest.approx(np.log2(3) / 2, abs=1e-6)
    with Outbox(tmp_path / "flk-outbox") as outbox:
        assert outbox.counts() == {"pending": 0, "acked": 1, "dead": 0}


def test_a_wrong_key_returns_false_and_the_pcs_is_in_the_dead_letter_file(transactional_db, tenant, tmp_path):
    with (
        gunicorn(workers=1) as server,
        PCSAgent(
            "dev-002", f"{server.url}/v1/pcs/submit", "hmac", "not-the-key", outbox_path=tmp_path / "ob"
        ) as agent,
    ):
        points = np.random.default_rng(0).random((200, 2))
        pcs = agent.compute_pcs(
            epoch=1, scales=[2, 4, 8, 16], N_j=None, points=points, raw_data=b"x" * 3000, seed=1
        )
        assert agent.submit_pcs(pcs) is False
        assert agent.last_status == 401
        (dead,) = [r for r in agent.outbox.records.values() if r.state == DEAD]
        assert dead.dead_reason == "invalid_signature"
    # N_j=None: counted from the points, as the agent's own box counting does.
    assert pcs["N_j"] == box_counts(points, [2, 4, 8, 16])
