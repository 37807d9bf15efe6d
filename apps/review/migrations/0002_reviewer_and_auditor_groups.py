"""The two staff roles of the review queue, as Django groups.

``reviewers`` see the queue, the PCS and the audit log, and may claim and decide items. ``auditors``
see the same and change nothing. Membership is given in the admin (Users → groups).
"""

from __future__ import annotations

from django.contrib.auth.management import create_permissions
from django.db import migrations

VIEW_EVIDENCE = [
    ("review", "reviewitem", "view_reviewitem"),
    ("pcs", "pcsrecord", "view_pcsrecord"),
    ("audit", "auditentry", "view_auditentry"),
    ("audit", "checkpoint", "view_checkpoint"),
    ("audit", "anchor", "view_anchor"),
]
GROUPS = {
    "reviewers": [
        *VIEW_EVIDENCE,
        ("review", "reviewitem", "claim_reviewitem"),
        ("review", "reviewitem", "decide_reviewitem"),
    ],
    "auditors": VIEW_EVIDENCE,
}


def create_groups(apps, schema_editor) -> None:
    # Permissions are normally created after migrate finishes; these groups need them now.
    for app_config in apps.get_app_configs():
        app_config.models_module = True
        create_permissions(app_config, apps=apps, verbosity=0)
        app_config.models_module = None
    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    for name, wanted in GROUPS.items():
        group, _ = Group.objects.get_or_create(name=name)
        for app_label, model, codename in wanted:
            group.permissions.add(
                Permission.objects.get(
                    content_type__app_label=app_label, content_type__model=model, codename=codename
                )
            )


def remove_groups(apps, schema_editor) -> None:
    apps.get_model("auth", "Group").objects.filter(name__in=list(GROUPS)).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("review", "0001_initial"),
        ("auth", "0012_alter_user_first_name_max_length"),
        ("contenttypes", "0002_remove_content_type_name"),
        ("pcs", "0003_decision_inputs_claim_owner_quarantine"),
        ("audit", "0005_entry_details"),
    ]

    operations = [migrations.RunPython(create_groups, remove_groups)]
