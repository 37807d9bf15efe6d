"""flk_agent.verify_webhook: what a receiver relies on to trust a delivery, and every way it refuses one."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import pytest

from flk_agent import WebhookVerificationError, verify_webhook
from flk_agent.webhooks import compute_signature, signature_header

SECRET = "whsec_current"
OLD = "whsec_previous"
NOW = 1_800_000_000
BODY = json.dumps({"id": "evt_1", "type": "pcs.escalated", "data": {"status": 202}}).encode()


def test_a_signed_body_verifies_and_returns_the_event():
    header = signature_header(BODY, [SECRET], NOW)
    assert header == f"t={NOW},v1={compute_signature(BODY, SECRET, NOW)}"
    event = verify_webhook(BODY, header, SECRET, now=NOW + 10)
    assert event["id"] == "evt_1" and event["data"] == {"status": 202}


def test_during_a_rotation_either_secret_verifies():
    header = signature_header(BODY, [SECRET, OLD], NOW)
    assert verify_webhook(BODY, header, OLD, now=NOW)["id"] == "evt_1"
    assert verify_webhook(BODY, header, SECRET, now=NOW)["id"] == "evt_1"
    # A receiver that already holds both secrets accepts a header signed with only the new one.
    only_new = signature_header(BODY, [SECRET], NOW)
    assert verify_webhook(BODY, only_new, [OLD, SECRET], now=NOW)["id"] == "evt_1"


def _tampered(header: str) -> tuple[bytes, str, str]:
    return BODY.replace(b"202", b"200"), header, SECRET


def _wrong_secret(header: str) -> tuple[bytes, str, str]:
    return BODY, header, "whsec_guess"


def _signature_of_another_timestamp(header: str) -> tuple[bytes, str, str]:
    # The signature is moved onto a fresh timestamp: it covers "t.body", so it no longer matches.
    return BODY, header.replace(f"t={NOW}", f"t={NOW + 1}"), SECRET


@pytest.mark.parametrize("change", [_tampered, _wrong_secret, _signature_of_another_timestamp])
def test_a_changed_body_a_wrong_secret_or_a_moved_signature_is_a_mismatch(change):
    body, header, secret = change(signature_header(BODY, [SECRET], NOW))
    with pytest.raises(WebhookVerificationError) as err:
        verify_webhook(body, header, secret, now=NOW)
    assert err.value.code == "signature_mismatch"


@pytest.mark.parametrize("age", [301, -301, 86_400])
def test_a_timestamp_outside_the_tolerance_is_refused_even_with_a_valid_signature(age):
    header = signature_header(BODY, [SECRET], NOW)
    with pytest.raises(WebhookVerificationError) as err:
        verify_webhook(BODY, header, SECRET, now=NOW + age)
    assert err.value.code == "timestamp_outside_tolerance"
    assert verify_webhook(BODY, header, SECRET, now=NOW + age, tolerance_seconds=0)["id"] == "evt_1"


@pytest.mark.parametrize(
    "header",
    [
        None,
        "",
        "v1=abc",
        f"t={NOW}",
        "t=soon,v1=abc",
        f"t={NOW},t={NOW},v1=abc",
        "garbage",
        f"t={NOW},v0=ab",
    ],
)
def test_a_malformed_header_is_its_own_error(header):
    with pytest.raises(WebhookVerificationError) as err:
        verify_webhook(BODY, header, SECRET, now=NOW)
    assert err.value.code == "malformed_header"


def test_unknown_schemes_beside_v1_are_ignored():
    header = f"t={NOW},v0=deadbeef,{signature_header(BODY, [SECRET], NOW).split(',', 1)[1]},v2=cafe"
    assert verify_webhook(BODY, header, SECRET, now=NOW)["id"] == "evt_1"


def test_a_signed_body_that_is_not_a_json_object_is_refused():
    for body in (b"[1, 2]", b"\xff\xfe", b"not json"):
        with pytest.raises(WebhookVerificationError) as err:
            verify_webhook(body, signature_header(body, [SECRET], NOW), SECRET, now=NOW)
        assert err.value.code == "malformed_payload"


def test_the_helper_works_without_django():
    # Receivers are often not Django applications: importing the helper must not pull Django in.
    code = "import sys, flk_agent.webhooks; assert 'django' not in sys.modules; print('ok')"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=30)
    assert done.stdout.strip() == "ok", done.stderr


def test_the_receiver_example_in_the_docs_runs_as_written():
    # docs/webhooks.md promises a receiver in about ten lines: run that block, as a reader would copy it.
    from pathlib import Path

    text = (Path(__file__).resolve().parents[2] / "docs/webhooks.md").read_text()
    block = text.split("## Check the signature", 1)[1].split("```python\n", 1)[1].split("```", 1)[0]
    assert len([line for line in block.splitlines() if line.strip()]) <= 15
    namespace: dict = {}
    exec(block.replace('["whsec_…"]', repr([OLD, SECRET])), namespace)
    body = json.dumps({"id": "evt_2", "type": "pcs.escalated", "pcs_id": "ab", "data": {}}).encode()
    signed = signature_header(body, [SECRET], int(time.time()))
    assert namespace["handle"](body, {"FLK-Signature": signed}) == 200
    assert namespace["handle"](body, {"FLK-Signature": signed}) == 200  # a repeat is acknowledged, not redone
    assert namespace["seen"] == {"evt_2"}
    assert namespace["handle"](body + b" ", {"FLK-Signature": signed}) == 400
    assert namespace["handle"](body, {}) == 400
