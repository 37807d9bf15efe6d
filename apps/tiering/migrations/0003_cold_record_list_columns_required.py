"""The cold index's record id is always known (0002 filled it), and the list reads it by tenant."""

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("tiering", "0002_cold_record_list_columns"),
    ]

    operations = [
        migrations.AlterField(
            model_name="coldrecord",
            name="record_id",
            field=models.BigIntegerField(help_text="the record's id while it was warm (PcsRecord.id)"),
        ),
        migrations.AddIndex(
            model_name="coldrecord",
            index=models.Index(fields=["tenant", "record_id"], name="cold_record_tenant_id_idx"),
        ),
    ]
