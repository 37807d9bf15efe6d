"""The audit log cannot be changed in place, and a change made around the triggers is found."""

from __future__ import annotations

import itertools
import json
from io import StringIO

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import DatabaseError, connection, transaction
from django.utils import timezone

from apps.audit.chain import edge_root
from apps.audit.checkpoints import checkpoint_seal
from apps.audit.models import AuditEntry, AuditLogHead
from apps.audit.selectors import audit_chain_verify
from apps.audit.services import audit_append
from apps.pcs.services import pcs_ingest
from flk_agent import merkle


@pytest.fixture
def decided(transactional_db, tenant, pcs_factory):
    for epoch in range(1, 6):
        result = pcs_ingest(
            body=json.dumps(pcs_factory(epoch=epoch)).encode(), tenant_header=None, received_at=timezone.now()
        )
        assert result.status == 200
    return list(AuditEntry.objects.filter(tenant=tenant, kind="decision").order_by("seq"))


def _sql(statement: str, params: list | None = None) -> None:
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(statement, params)


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE audit_auditentry SET reason = 'edited' WHERE id = %s",
        "DELETE FROM audit_auditentry WHERE id = %s",
    ],
)
def test_update_and_delete_are_refused_by_the_database(decided, statement):
    with pytest.raises(DatabaseError, match="append-only"):
        _sql(statement, [decided[2].id])
    assert AuditEntry.objects.get(pk=decided[2].id).reason == decided[2].reason


def test_the_chain_links_and_the_merkle_root_hold(decided, tenant):
    report = audit_chain_verify(tenant_id=tenant.pk)
    assert report.ok and report.entries == AuditEntry.objects.filter(tenant=tenant).count()
    entries = list(AuditEntry.objects.filter(tenant=tenant).order_by("seq"))
    assert [e.seq for e in entries] == list(range(len(entries)))
    assert all(b.prev_hash == a.entry_hash for a, b in itertools.pairwise(entries))
    head = AuditLogHead.objects.get(tenant=tenant)
    assert (head.size, head.last_hash) == (len(entries), entries[-1].entry_hash)
    checkpoint = checkpoint_seal(tenant=tenant)
    leaves = [merkle.leaf_hash(bytes.fromhex(e.entry_hash)) for e in entries]
    assert edge_root(checkpoint.edge) == merkle.root_from_leaf_hashes(leaves)
    assert checkpoint.root_hash == merkle.root_from_leaf_hashes(leaves).hex()


def _drop_trigger_and(statement: str, params: list) -> None:
    # What a database superuser could do: switch the guard off, edit, switch it back on.
    _sql("ALTER TABLE audit_auditentry DISABLE TRIGGER audit_entry_append_only")
    _sql(statement, params)
    _sql("ALTER TABLE audit_auditentry ENABLE TRIGGER audit_entry_append_only")


def test_audit_verify_names_an_entry_edited_behind_the_triggers(decided, tenant):
    _drop_trigger_and("UPDATE audit_auditentry SET status = 202 WHERE id = %s", [decided[2].id])
    report = audit_chain_verify(tenant_id=tenant.pk)
    assert not report.ok
    assert f"id={decided[2].id} seq={decided[2].seq}" in report.problems[0]
    assert "edited" in report.problems[0]
    out = StringIO()
    with pytest.raises(CommandError, match="broken for: default"):
        call_command("audit", "verify", "--tenant", "default", stdout=out)
    assert f"seq={decided[2].seq}" in out.getvalue()


def test_audit_verify_finds_a_deleted_entry(decided, tenant):
    _drop_trigger_and("DELETE FROM audit_auditentry WHERE id = %s", [decided[1].id])
    report = audit_chain_verify(tenant_id=tenant.pk)
    assert not report.ok and "missing" in report.problems[0]


def test_audit_verify_passes_a_clean_log(decided):
    out = StringIO()
    call_command("audit", "verify", stdout=out)
    assert "default: " in out.getvalue() and "ok" in out.getvalue()


def test_tenants_chains_are_independent(db, tenant):
    from apps.tenants.services import tenant_create

    other, _ = tenant_create(slug="other", name="Other", actor="test")
    a = audit_append(tenant_id=tenant.pk, kind="note", actor="t")
    b = audit_append(tenant_id=other.pk, kind="note", actor="t")
    assert b.seq == AuditEntry.objects.filter(tenant=other).count() - 1
    assert a.entry_hash != b.entry_hash
    assert audit_chain_verify(tenant_id=tenant.pk).ok and audit_chain_verify(tenant_id=other.pk).ok
