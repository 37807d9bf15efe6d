"""The operator's admin is served and branded, and decisions in it are read-only."""

from __future__ import annotations

from django.contrib.auth.models import User


def test_admin_login_page_is_branded(client, db):
    page = client.get("/admin/login/")
    assert page.status_code == 200
    assert b"FLK verification layer" in page.content


def test_decisions_are_listed_read_only_for_staff(client, db, tenant):
    User.objects.create_superuser("ops", "ops@example.com", "pw-ops-1234")
    client.force_login(User.objects.get(username="ops"))
    listing = client.get("/admin/pcs/pcsrecord/")
    assert listing.status_code == 200
    assert client.get("/admin/pcs/pcsrecord/add/").status_code == 403
    assert client.get("/admin/audit/auditentry/add/").status_code == 403
