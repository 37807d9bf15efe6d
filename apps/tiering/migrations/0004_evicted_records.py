"""Tombstones of evicted PCS, and the decision entry each cold index row will leave to its tombstone.

First write wins after eviction too: the trigger of 0001, which makes a ``PcsRecord`` insert of a cold
PCS fail like a duplicate, now also refuses one of an evicted PCS (docs/tiering.md). Index rows demoted
before ``audit_entry_id`` existed get the id of their PCS's latest decision entry (as 0002 did for the
status), without reading S3.
"""

import django.db.models.deletion
from django.db import migrations, models

_PG_FUNCTION = """
CREATE OR REPLACE FUNCTION tiering_pcs_record_not_cold() RETURNS trigger AS $$
BEGIN
  IF EXISTS (SELECT 1 FROM tiering_coldrecord c WHERE c.tenant_id = NEW.tenant_id AND c.pcs_id = NEW.pcs_id)
  {evicted}THEN
    RAISE EXCEPTION 'duplicate key value violates unique constraint "pcs_record_tenant_pcs_id_uniq"'
      USING ERRCODE = 'unique_violation', DETAIL = 'the PCS is in the cold tier';
  END IF;
  RETURN NULL;
END
$$ LANGUAGE plpgsql;
"""
_PG_EVICTED = """OR EXISTS (
    SELECT 1 FROM tiering_evictedrecord e WHERE e.tenant_id = NEW.tenant_id AND e.pcs_id = NEW.pcs_id
  )
  """
_SQLITE_TRIGGER = """
CREATE TRIGGER tiering_pcs_record_not_cold BEFORE INSERT ON pcs_pcsrecord
WHEN EXISTS (SELECT 1 FROM tiering_coldrecord c WHERE c.tenant_id = NEW.tenant_id AND c.pcs_id = NEW.pcs_id)
{evicted}BEGIN SELECT RAISE(ABORT, 'UNIQUE constraint failed: pcs_pcsrecord.tenant_id, pcs_pcsrecord.pcs_id'); END
"""
_SQLITE_EVICTED = """OR EXISTS (
  SELECT 1 FROM tiering_evictedrecord e WHERE e.tenant_id = NEW.tenant_id AND e.pcs_id = NEW.pcs_id
)
"""

PG_AUDIT_ENTRY_BACKFILL = """
UPDATE tiering_coldrecord c SET audit_entry_id = d.id
FROM (
  SELECT DISTINCT ON (a.tenant_id, a.pcs_id) a.tenant_id, a.pcs_id, a.id
  FROM audit_auditentry a
  JOIN tiering_coldrecord r ON r.tenant_id = a.tenant_id AND r.pcs_id = a.pcs_id
  WHERE a.kind = 'decision' AND r.audit_entry_id IS NULL
  ORDER BY a.tenant_id, a.pcs_id, a.seq DESC
) d
WHERE c.tenant_id = d.tenant_id AND c.pcs_id = d.pcs_id AND c.audit_entry_id IS NULL
"""


def _trigger(schema_editor, with_evicted: bool) -> None:
    vendor = schema_editor.connection.vendor
    if vendor == "postgresql":
        schema_editor.execute(_PG_FUNCTION.format(evicted=_PG_EVICTED if with_evicted else ""))
    elif vendor == "sqlite":
        schema_editor.execute("DROP TRIGGER IF EXISTS tiering_pcs_record_not_cold")
        schema_editor.execute(_SQLITE_TRIGGER.format(evicted=_SQLITE_EVICTED if with_evicted else ""))


def trigger_with_evicted(apps, schema_editor):
    _trigger(schema_editor, with_evicted=True)


def trigger_cold_only(apps, schema_editor):
    _trigger(schema_editor, with_evicted=False)


def backfill(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(PG_AUDIT_ENTRY_BACKFILL)
        return
    ColdRecord = apps.get_model("tiering", "ColdRecord")
    AuditEntry = apps.get_model("audit", "AuditEntry")
    latest = AuditEntry.objects.filter(
        tenant_id=models.OuterRef("tenant_id"), pcs_id=models.OuterRef("pcs_id"), kind="decision"
    ).order_by("-seq")
    ColdRecord.objects.filter(audit_entry_id__isnull=True).update(
        audit_entry_id=models.Subquery(latest.values("id")[:1])
    )


class Migration(migrations.Migration):
    dependencies = [
        ("audit", "0005_entry_details"),
        ("tenants", "0006_auth_failure_day"),
        ("tiering", "0003_cold_record_list_columns_required"),
    ]

    operations = [
        migrations.AddField(
            model_name="coldrecord",
            name="audit_entry_id",
            field=models.BigIntegerField(help_text="id of the decision's audit entry", null=True),
        ),
        migrations.CreateModel(
            name="EvictedRecord",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                ("pcs_id", models.CharField(max_length=64)),
                (
                    "audit_entry_id",
                    models.BigIntegerField(help_text="id of the decision's audit entry", null=True),
                ),
                ("decided_at", models.DateTimeField()),
                ("evicted_at", models.DateTimeField(auto_now_add=True)),
                (
                    "tenant",
                    models.ForeignKey(
                        db_index=False, on_delete=django.db.models.deletion.PROTECT, to="tenants.tenant"
                    ),
                ),
            ],
            options={
                "constraints": [
                    models.UniqueConstraint(
                        fields=("tenant", "pcs_id"), name="evicted_record_tenant_pcs_id_uniq"
                    )
                ],
            },
        ),
        migrations.RunPython(trigger_with_evicted, trigger_cold_only),
        # Last: rows changed here must not precede an ALTER TABLE in this transaction.
        migrations.RunPython(backfill, migrations.RunPython.noop),
    ]
