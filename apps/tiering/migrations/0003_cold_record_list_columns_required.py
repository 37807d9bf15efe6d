"""The cold index's record id is always known (0002 filled it), and the list reads it by tenant.

SQLite alters a column by rebuilding the table under a new name, which it refuses while the insert
trigger on ``pcs_pcsrecord`` (0001) names ``tiering_coldrecord``: the trigger is set aside around it.
"""

from importlib import import_module

from django.db import migrations, models

_initial = import_module("apps.tiering.migrations.0001_initial")


def sqlite_trigger_drop(apps, schema_editor):
    if schema_editor.connection.vendor == "sqlite":
        schema_editor.execute(_initial.SQLITE_DROP)


def sqlite_trigger_create(apps, schema_editor):
    if schema_editor.connection.vendor == "sqlite":
        schema_editor.execute(_initial.SQLITE_TRIGGER)


class Migration(migrations.Migration):
    dependencies = [
        ("tiering", "0002_cold_record_list_columns"),
    ]

    operations = [
        migrations.RunPython(sqlite_trigger_drop, sqlite_trigger_create),
        migrations.AlterField(
            model_name="coldrecord",
            name="record_id",
            field=models.BigIntegerField(help_text="the record's id while it was warm (PcsRecord.id)"),
        ),
        migrations.AddIndex(
            model_name="coldrecord",
            index=models.Index(fields=["tenant", "record_id"], name="cold_record_tenant_id_idx"),
        ),
        migrations.RunPython(sqlite_trigger_create, sqlite_trigger_drop),
    ]
