"""The seed's configuration names (docs/configuration.md, "Seed names"): each one changes what a server
started with it does, and ours win over them with a warning."""

from __future__ import annotations

import base64
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import redis
from django.db import connection

from apps.audit.models import AuditEntry
from apps.pcs.models import PcsRecord
from apps.tenants.models import Tenant
from flk_agent.signing import Ed25519Signer, HmacSigner
from flk_project.env import apply_seed_aliases
from tests.support.make_run import RUN_SH, make_run_env, stop_group
from tests.support.pcs_factory import make_pcs
from tests.support.servers import ROOT, free_port, gunicorn, run_manage, server_env


@pytest.mark.parametrize(
    ("seed", "ours"),
    [
        ({"REDIS_ADDR": "cache:6379"}, {"REDIS_URL": "redis://cache:6379/0"}),
        (
            {"POSTGRES_CONN": "host=db port=5433 user=flk password='p w' dbname=flk sslmode=require"},
            {"DATABASE_URL": "postgres://flk:p%20w@db:5433/flk?sslmode=require"},
        ),
        ({"POSTGRES_CONN": "postgresql://u@db/flk"}, {"DATABASE_URL": "postgresql://u@db/flk"}),
        ({"PCS_HMAC_KEYS": "new,old1,old2"}, {"PCS_HMAC_KEY": "new", "PCS_HMAC_KEY_PREVIOUS": "old1,old2"}),
        ({"TOKEN_RATE": "50"}, {"RATE_LIMIT_RATE": "50", "RATE_LIMIT_BURST": "100"}),
        ({"PII_SCAN_MODE": "block"}, {"TENANT_PII_MODE": "block"}),
        ({"POLICY_VERSION": "2.0.0"}, {"POLICY_BUILTIN_VERSION": "2.0.0"}),
        ({"AUDIT_WORM_DIR": "/srv/worm"}, {"AUDIT_ANCHOR_DIR": "/srv/worm"}),
        ({"TENANTS": "a:hmac:k"}, {"MULTI_TENANT": "true"}),
    ],
)
def test_each_seed_name_sets_ours(monkeypatch, seed, ours):
    names = {*seed, *ours, "RATE_LIMIT_BURST", "MULTI_TENANT"}
    for name in names:
        monkeypatch.delenv(name, raising=False)
    for name, value in seed.items():
        monkeypatch.setenv(name, value)
    assert apply_seed_aliases() == []
    assert {name: os.environ.get(name) for name in ours} == ours


def test_ours_wins_and_a_warning_says_so(monkeypatch, caplog):
    monkeypatch.setenv("REDIS_URL", "redis://ours:6379/1")
    monkeypatch.setenv("REDIS_ADDR", "seed:6379")
    (warning,) = apply_seed_aliases()
    assert os.environ["REDIS_URL"] == "redis://ours:6379/1"
    assert (
        warning
        == "both REDIS_ADDR (the seed's name) and REDIS_URL are set: REDIS_URL wins, REDIS_ADDR is ignored"
    )
    assert warning in caplog.text
    # And in a real process, on its stderr at start.
    env = server_env(REDIS_ADDR="127.0.0.1:1")
    done = subprocess.run(
        [
            sys.executable,
            "manage.py",
            "shell",
            "-c",
            "from django.conf import settings; print(settings.REDIS_URL)",
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.stdout.strip().splitlines()[-1] == env["REDIS_URL"], done.stderr
    assert "REDIS_URL wins, REDIS_ADDR is ignored" in done.stderr


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[int]:
    """A Redis of this test's own (REDIS_ADDR has no database number: the seed's servers used db 0)."""
    port = free_port()
    proc = subprocess.Popen(
        ["redis-server", "--port", str(port), "--save", "", "--appendonly", "no", "--dir", str(tmp_path)],
        stdout=subprocess.DEVNULL,
    )
    try:
        client = redis.Redis(port=port)
        for _ in range(50):
            try:
                client.ping()
                break
            except redis.ConnectionError:
                time.sleep(0.1)
        yield port
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def _post(url: str, pcs: dict, **headers: str) -> httpx.Response:
    return httpx.post(f"{url}/v1/pcs/submit", json=pcs, headers=headers, timeout=10)


@pytest.mark.slow
def test_a_server_started_with_the_seeds_names_behaves_accordingly(transactional_db, private_redis, tmp_path):
    db = connection.settings_dict
    worm = tmp_path / "worm"
    env = {
        # Ours unset (empty), the seed's set.
        "DATABASE_URL": "",
        "POSTGRES_CONN": f"host={db['HOST']} port={db['PORT']} user={db['USER']} dbname={db['NAME']}",
        "REDIS_URL": "",
        "REDIS_ADDR": f"127.0.0.1:{private_redis}",
        "PCS_HMAC_KEY": "",
        "PCS_HMAC_KEYS": "new-key,old-key",
        "PII_SCAN_MODE": "block",
        "TOKEN_RATE": "0.01",
        "RATE_LIMIT_BURST": "2",  # ours: two requests, then one every 100 s
        "POLICY_VERSION": "2.3.4",
        "AUDIT_WORM_DIR": str(worm),
    }
    run_manage("flk_init", env=server_env(**env))  # what make run does at start: the default tenant
    tenant = Tenant.objects.get(slug="default")
    assert (tenant.pii_mode, tenant.rate_per_second, tenant.burst) == ("block", 0.01, 2)
    old, new = HmacSigner(b"old-key"), HmacSigner(b"new-key")
    with gunicorn(workers=1, **env) as server:
        accepted = _post(server.url, make_pcs(old, epoch=1))  # PCS_HMAC_KEYS: the old key verifies
        assert accepted.status_code == 200, accepted.text
        assert accepted.json()["policy_version"] == "2.3.4"  # POLICY_VERSION
        # The new key verifies too; PII_SCAN_MODE=block refuses an e-mail address in shard_id.
        pii = _post(server.url, make_pcs(new, epoch=2, shard_id="ops@example.com"))
        assert pii.status_code == 400, pii.text
        assert _post(server.url, make_pcs(HmacSigner(b"other"), epoch=3)).status_code == 401
        throttled = _post(server.url, make_pcs(new, epoch=4))  # TOKEN_RATE: the bucket is empty
        assert throttled.status_code == 429 and int(throttled.headers["Retry-After"]) > 1
    # POSTGRES_CONN: the decision is in this test's database; REDIS_ADDR: the dedup entry in that Redis.
    assert PcsRecord.objects.get(tenant=tenant, epoch=1).status_code == 200
    assert redis.Redis(port=private_redis).dbsize() > 0
    # AUDIT_WORM_DIR: a sealed checkpoint is anchored there.
    run_manage(
        "shell",
        "-c",
        "from apps.audit.anchoring import checkpoint_anchor;"
        "from apps.audit.checkpoints import checkpoint_seal;"
        "from apps.tenants.models import Tenant;"
        "checkpoint_anchor(checkpoint=checkpoint_seal(tenant=Tenant.objects.get(slug='default')))",
        env=server_env(**env),
    )
    assert [p for p in worm.rglob("*") if p.is_file()], "no anchor in AUDIT_WORM_DIR"


@pytest.mark.slow
def test_tenants_are_created_at_start_updated_idempotently_and_audited(transactional_db):
    edkey = Ed25519Signer.from_seed(bytes(range(32)))
    public = base64.b64encode(edkey.public_key_bytes()).decode()
    env = server_env(TENANTS=f"acme:hmac:acme-secret,edco:ed25519:{public}", MULTI_TENANT="")
    out = run_manage("flk_init", env=env)
    assert "tenant acme: created (hmac)" in out and "tenant edco: created (ed25519)" in out
    entries = AuditEntry.objects.count()
    assert AuditEntry.objects.filter(actor="TENANTS", kind="tenant_created").count() == 2
    assert "every tenant is up to date" in run_manage("flk_init", env=env)
    assert AuditEntry.objects.count() == entries  # the same value again: nothing changed, nothing audited

    rotated = server_env(TENANTS=f"acme:hmac:acme-new,edco:ed25519:{public}", MULTI_TENANT="")
    assert "tenant acme: key rotated" in run_manage("flk_init", env=rotated)
    assert AuditEntry.objects.filter(actor="TENANTS", kind="key_rotated").count() == 1
    with gunicorn(workers=1, TENANTS=rotated["TENANTS"], MULTI_TENANT="") as server:  # MULTI_TENANT follows
        for signer, slug, epoch in (
            (HmacSigner(b"acme-new"), "acme", 1),
            (HmacSigner(b"acme-secret"), "acme", 2),  # the old key, within its overlap
            (edkey, "edco", 1),
        ):
            answer = _post(server.url, make_pcs(signer, epoch=epoch), **{"X-Tenant-Id": slug})
            assert answer.status_code == 200, (slug, epoch, answer.text)
        assert _post(server.url, make_pcs(HmacSigner(b"acme-new"), epoch=3)).status_code == 401  # no tenant


@pytest.mark.slow
def test_make_run_binds_port_unless_flk_bind_is_set(tmp_path):
    port = free_port()
    env = make_run_env(var_dir=tmp_path / "var", bind="", env={"PORT": str(port)})  # FLK_BIND empty: unset
    proc = subprocess.Popen(
        [str(RUN_SH)], cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        start_new_session=True,
    )  # fmt: skip
    try:
        deadline, lines = time.monotonic() + 180, []
        while proc.stdout and time.monotonic() < deadline:
            line = proc.stdout.readline()
            lines.append(line)
            if "FLK is running" in line or not line:
                break
        assert any(f"FLK is running at http://127.0.0.1:{port}/" in line for line in lines), "".join(lines)
        assert httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=5).status_code == 200
        # Both set: FLK_BIND wins, said at once; it names the busy address, so this run stops there.
        both = make_run_env(
            var_dir=tmp_path / "var2", bind=f"127.0.0.1:{port}", env={"PORT": str(free_port())}
        )
        done = subprocess.run([str(RUN_SH)], cwd=ROOT, env=both, capture_output=True, text=True, timeout=60)
        assert "both PORT and FLK_BIND are set: FLK_BIND wins" in done.stdout, done.stdout + done.stderr
        assert done.returncode != 0 and f"127.0.0.1:{port}" in done.stdout + done.stderr
    finally:
        stop_group(proc)
