"""Hash-chain the audit log, add signed checkpoints, and make entries immutable.

Existing entries (from before this migration) are chained in id order per tenant, then the database is
told to refuse UPDATE and DELETE on the table.
"""

import django.db.models.deletion
from django.db import migrations, models


def chain_existing_entries(apps, schema_editor):
    from apps.audit.chain import GENESIS_HASH, content_hash, entry_content, link_hash

    entry_model = apps.get_model("audit", "AuditEntry")
    head_model = apps.get_model("audit", "AuditLogHead")
    heads = {}
    for entry in entry_model.objects.order_by("id"):
        size, prev, _ = heads.get(entry.tenant_id, (0, GENESIS_HASH, GENESIS_HASH))
        content = entry_content(
            tenant_id=entry.tenant_id,
            kind=entry.kind,
            actor=entry.actor,
            created_at=entry.created_at,
            pcs_id=entry.pcs_id,
            status=entry.status,
            reason=entry.reason,
            policy_version=entry.policy_version,
            request_digest=entry.request_digest,
        )
        digest = link_hash(prev, content_hash(content))
        entry_model.objects.filter(pk=entry.pk).update(seq=size, prev_hash=prev, entry_hash=digest)
        heads[entry.tenant_id] = (size + 1, digest, prev)
    for tenant_id, (size, last, prev) in heads.items():
        head_model.objects.create(tenant_id=tenant_id, size=size, last_hash=last, prev_hash=prev)


POSTGRES_TRIGGERS = """
CREATE OR REPLACE FUNCTION flk_audit_append_only() RETURNS trigger AS $$
BEGIN
    RAISE EXCEPTION 'audit entries are append-only: % refused', TG_OP;
END;
$$ LANGUAGE plpgsql;
CREATE TRIGGER audit_entry_append_only BEFORE UPDATE OR DELETE ON audit_auditentry
    FOR EACH ROW EXECUTE FUNCTION flk_audit_append_only();
"""
POSTGRES_DROP = """
DROP TRIGGER IF EXISTS audit_entry_append_only ON audit_auditentry;
DROP FUNCTION IF EXISTS flk_audit_append_only();
"""
SQLITE_TRIGGERS = [
    """CREATE TRIGGER audit_entry_no_update BEFORE UPDATE ON audit_auditentry
       BEGIN SELECT RAISE(ABORT, 'audit entries are append-only: UPDATE refused'); END;""",
    """CREATE TRIGGER audit_entry_no_delete BEFORE DELETE ON audit_auditentry
       BEGIN SELECT RAISE(ABORT, 'audit entries are append-only: DELETE refused'); END;""",
]


def install_triggers(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(POSTGRES_TRIGGERS, params=None)
    elif schema_editor.connection.vendor == "sqlite":
        for statement in SQLITE_TRIGGERS:
            schema_editor.execute(statement)


def drop_triggers(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(POSTGRES_DROP)
    elif schema_editor.connection.vendor == "sqlite":
        schema_editor.execute("DROP TRIGGER IF EXISTS audit_entry_no_update")
        schema_editor.execute("DROP TRIGGER IF EXISTS audit_entry_no_delete")


class Migration(migrations.Migration):
    dependencies = [
        ("audit", "0001_initial"),
        ("tenants", "0002_keys_tokens_tenant_settings"),
    ]

    operations = [
        migrations.AddField("auditentry", "seq", models.BigIntegerField(null=True)),
        migrations.AddField("auditentry", "prev_hash", models.CharField(max_length=64, default="")),
        migrations.AddField("auditentry", "entry_hash", models.CharField(max_length=64, default="")),
        migrations.CreateModel(
            name="AuditLogHead",
            fields=[
                (
                    "tenant",
                    models.OneToOneField(
                        on_delete=django.db.models.deletion.PROTECT,
                        primary_key=True,
                        related_name="audit_head",
                        serialize=False,
                        to="tenants.tenant",
                    ),
                ),
                ("size", models.BigIntegerField(default=0)),
                ("last_hash", models.CharField(max_length=64)),
                (
                    "prev_hash",
                    models.CharField(max_length=64, help_text="the previous hash of the last entry"),
                ),
            ],
        ),
        migrations.CreateModel(
            name="Checkpoint",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                ("tree_size", models.BigIntegerField()),
                ("root_hash", models.CharField(max_length=64)),
                ("note", models.TextField(help_text="the signed note, exactly as served")),
                (
                    "edge",
                    models.JSONField(
                        default=list, help_text="hex roots of the tree's perfect subtrees, largest first"
                    ),
                ),
                ("sealed_at", models.DateTimeField(auto_now_add=True)),
                (
                    "tenant",
                    models.ForeignKey(
                        db_index=False,
                        on_delete=django.db.models.deletion.PROTECT,
                        related_name="checkpoints",
                        to="tenants.tenant",
                    ),
                ),
            ],
            options={
                "ordering": ["tenant", "-tree_size"],
                "constraints": [
                    models.UniqueConstraint(
                        fields=("tenant", "tree_size"), name="checkpoint_tenant_size_uniq"
                    )
                ],
            },
        ),
        migrations.RunPython(chain_existing_entries, migrations.RunPython.noop),
        migrations.AlterField(
            "auditentry", "seq", models.BigIntegerField(help_text="index in the tenant's log, from 0")
        ),
        migrations.AlterField("auditentry", "prev_hash", models.CharField(max_length=64)),
        migrations.AlterField("auditentry", "entry_hash", models.CharField(max_length=64)),
        migrations.AlterField("auditentry", "created_at", models.DateTimeField()),
        migrations.RemoveIndex("auditentry", "audit_audit_tenant__eac163_idx"),
        migrations.AddConstraint(
            "auditentry",
            models.UniqueConstraint(fields=["tenant", "seq"], name="audit_entry_tenant_seq_uniq"),
        ),
        migrations.RunPython(install_triggers, drop_triggers),
    ]
