"""End to end: submit PCS, seal a checkpoint, download it and a proof, verify offline; then tamper."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest
from django.db import connection, transaction

from apps.audit.checkpoints import checkpoint_seal, log_origin
from apps.audit.models import AuditEntry, Checkpoint
from flk_agent.cli import main as flk_agent
from tasks.audit import seal_checkpoints
from tests.conftest import submit
from tests.support.pcs_factory import make_pcs


@pytest.fixture
def logged(http, tenant_a):
    """Five decisions in acme's log, then a sealed checkpoint."""
    answers = [submit(http, make_pcs(tenant_a.signer, epoch=i), **{"X-Tenant-Id": "acme"}) for i in range(5)]
    assert [a.status_code for a in answers] == [200] * 5
    assert checkpoint_seal(tenant=tenant_a.tenant) is not None
    return answers


def _download(http, tenant_a, tmp_path: Path, index: int) -> tuple[list[str], str]:
    auth = {"Authorization": f"Bearer {tenant_a.token}"}
    key = http.get("/v1/audit/public-key").json()["public_key_b64"]
    note = http.get("/v1/audit/acme/checkpoint", headers=auth)
    assert note.status_code == 200 and note.headers["X-Log-Origin"] == log_origin(tenant_a.tenant)
    proof = http.get(f"/v1/audit/acme/proof/inclusion?index={index}", headers=auth)
    assert proof.status_code == 200, proof.text
    (tmp_path / "cp.txt").write_text(note.text)
    (tmp_path / "proof.json").write_text(proof.text)
    args = [
        "audit",
        "verify-inclusion",
        "--log-name",
        log_origin(tenant_a.tenant),
        "--public-key",
        key,
        "--checkpoint",
        str(tmp_path / "cp.txt"),
        "--proof",
        str(tmp_path / "proof.json"),
    ]
    return args, proof.text


def test_a_decision_is_provably_in_the_signed_log_and_an_edit_is_caught(http, tenant_a, logged, tmp_path):
    index = logged[2].json()["audit_index"]
    args, proof = _download(http, tenant_a, tmp_path, index)
    assert json.loads(proof)["entry"]["content"]["pcs_id"] == logged[2].json()["pcs_id"]
    assert flk_agent(args) == 0  # offline: only the files and the public key
    # A superuser edits the decision's audit entry behind the triggers.
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("ALTER TABLE audit_auditentry DISABLE TRIGGER audit_entry_append_only")
        cursor.execute(
            "UPDATE audit_auditentry SET status = 202 WHERE tenant_id = %s AND seq = %s",
            [tenant_a.tenant.pk, index],
        )
        cursor.execute("ALTER TABLE audit_auditentry ENABLE TRIGGER audit_entry_append_only")
    args, _ = _download(http, tenant_a, tmp_path, index)
    assert flk_agent(args) == 6


def test_a_later_checkpoint_is_consistent_with_an_earlier_one(http, tenant_a, logged, tmp_path):
    first = Checkpoint.objects.get(tenant=tenant_a.tenant)
    submit(http, make_pcs(tenant_a.signer, epoch=99), **{"X-Tenant-Id": "acme"})
    second = checkpoint_seal(tenant=tenant_a.tenant)
    auth = {"Authorization": f"Bearer {tenant_a.token}"}
    proof = http.get(
        f"/v1/audit/acme/proof/consistency?first={first.tree_size}&second={second.tree_size}", headers=auth
    )
    (tmp_path / "old.txt").write_text(first.note)
    (tmp_path / "new.txt").write_text(second.note)
    (tmp_path / "p.json").write_text(proof.text)
    key = http.get("/v1/audit/public-key").json()["public_key_b64"]
    assert (
        flk_agent(
            [
                "audit",
                "verify-consistency",
                "--log-name",
                log_origin(tenant_a.tenant),
                "--public-key",
                key,
                "--old",
                str(tmp_path / "old.txt"),
                "--new",
                str(tmp_path / "new.txt"),
                "--proof",
                str(tmp_path / "p.json"),
            ]
        )
        == 0
    )


def test_sealing_twice_changes_nothing(tenant_a, logged):
    assert seal_checkpoints() == {"sealed": 0}  # nothing grew since the fixture sealed
    assert Checkpoint.objects.filter(tenant=tenant_a.tenant).count() == 1


def test_a_token_sees_only_its_own_log(http, tenant_a, tenant_b, logged):
    as_b = {"Authorization": f"Bearer {tenant_b.token}"}
    assert http.get("/v1/audit/acme/checkpoint", headers=as_b).status_code == 404
    assert http.get("/v1/audit/acme/proof/inclusion?index=0", headers=as_b).status_code == 404
    assert http.get("/v1/audit/acme/checkpoint").status_code in (401, 403)


def test_checkpoint_signature_is_the_servers_key(http, tenant_a, logged):
    note = Checkpoint.objects.get(tenant=tenant_a.tenant).note
    key = base64.b64decode(http.get("/v1/audit/public-key").json()["public_key_b64"])
    from flk_agent.checkpoint import open_checkpoint

    checkpoint = open_checkpoint(note, name=log_origin(tenant_a.tenant), public_key=key)
    assert checkpoint.size == AuditEntry.objects.filter(tenant=tenant_a.tenant).count()
