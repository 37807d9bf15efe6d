"""The list's columns on the cold index: the record's warm id (order, cursor) and its status (filter).

Rows demoted before these columns existed are filled here without reading a cold object: the warm id
from their batch's ``entries`` (every entry names the warm pk it was copied from), the status from the
PCS's decision entry in the audit log (the latest one of that pcs_id: a decision is only ever written
again after the previous record is gone, so the latest is the cold record's own).
"""

from django.db import migrations, models

# One hash join over the decision entries of the PCS in the cold index (the audit log has no
# (tenant, pcs_id) index, and a correlated lookup per row would scan a tenant's log each time).
PG_STATUS_BACKFILL = """
UPDATE tiering_coldrecord c SET status_code = d.status
FROM (
  SELECT DISTINCT ON (a.tenant_id, a.pcs_id) a.tenant_id, a.pcs_id, a.status
  FROM audit_auditentry a
  JOIN tiering_coldrecord r ON r.tenant_id = a.tenant_id AND r.pcs_id = a.pcs_id
  WHERE a.kind = 'decision' AND r.status_code IS NULL
  ORDER BY a.tenant_id, a.pcs_id, a.seq DESC
) d
WHERE c.tenant_id = d.tenant_id AND c.pcs_id = d.pcs_id AND c.status_code IS NULL
"""


def backfill(apps, schema_editor):
    ColdRecord = apps.get_model("tiering", "ColdRecord")
    DemotionBatch = apps.get_model("tiering", "DemotionBatch")
    AuditEntry = apps.get_model("audit", "AuditEntry")
    pending = ColdRecord.objects.filter(record_id__isnull=True)
    for batch in DemotionBatch.objects.filter(pk__in=pending.values("batch_id")).iterator():
        warm_ids = {entry[1]: entry[0] for entry in batch.entries}  # [warm pk, pcs_id, ...]
        rows = list(pending.filter(batch=batch))
        for row in rows:
            row.record_id = warm_ids[row.pcs_id]
        ColdRecord.objects.bulk_update(rows, ["record_id"], batch_size=1000)
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(PG_STATUS_BACKFILL)
        return
    latest = AuditEntry.objects.filter(
        tenant_id=models.OuterRef("tenant_id"), pcs_id=models.OuterRef("pcs_id"), kind="decision"
    ).order_by("-seq")
    ColdRecord.objects.filter(status_code__isnull=True).update(
        status_code=models.Subquery(latest.values("status")[:1])
    )


class Migration(migrations.Migration):
    dependencies = [
        ("audit", "0005_entry_details"),
        ("tenants", "0006_auth_failure_day"),
        ("tiering", "0001_initial"),
    ]

    operations = [
        migrations.AddField(
            model_name="coldrecord",
            name="record_id",
            field=models.BigIntegerField(
                null=True, help_text="the record's id while it was warm (PcsRecord.id)"
            ),
        ),
        migrations.AddField(
            model_name="coldrecord",
            name="status_code",
            field=models.PositiveSmallIntegerField(
                help_text="the decision's status; null only when a backfill found no decision entry",
                null=True,
            ),
        ),
        # NOT NULL and the index come in 0003: PostgreSQL refuses to alter a table with row changes
        # of this transaction still pending their foreign key checks.
        migrations.RunPython(backfill, migrations.RunPython.noop),
    ]
