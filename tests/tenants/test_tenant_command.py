"""manage.py tenant: the same operations for teams that script."""

from __future__ import annotations

import json
from io import StringIO

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from apps.tenants.models import Tenant


def run(*args: str) -> list[dict]:
    out = StringIO()
    call_command("tenant", *args, stdout=out)
    return [json.loads(line) for line in out.getvalue().splitlines()]


def test_create_list_rotate_quota_token_deactivate(db):
    [created] = run("create", "umbrella", "--quota", "50", "--rate", "2", "--burst", "4")
    assert created["secret"] and created["key_id"].startswith("umbrella-")
    [rotated] = run("rotate-key", "umbrella", "--overlap-hours", "1")
    assert rotated["secret"] != created["secret"]
    assert run("set-quota", "umbrella", "--quota", "75")[0]["daily_quota"] == 75
    assert run("issue-token", "umbrella")[0]["token"].startswith("flk_")
    listed = {row["tenant"]: row for row in run("list")}
    assert listed["umbrella"]["daily_quota"] == 75
    run("deactivate", "umbrella")
    assert not Tenant.objects.get(slug="umbrella").active


def test_errors_are_clear(db):
    run("create", "dupe")
    with pytest.raises(CommandError, match="exists"):
        run("create", "dupe")
    with pytest.raises(CommandError, match="no tenant"):
        run("rotate-key", "ghost")
    with pytest.raises(CommandError, match="32 bytes"):
        run("create", "edgy", "--alg", "ed25519", "--public-key", "AAAA")
