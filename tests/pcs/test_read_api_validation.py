"""Hostile parameters and denied access on the read, audit and policy APIs, through real HTTP.

Every refusal is a 4xx with the project's JSON error body, never a 5xx: a path id that cannot exist
is 404 like an unknown one, a bad query parameter or body field is 400 naming it. A denied request
(no token, a bad token, a read token where a policy token is needed, another tenant's token) changes
nothing.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass

import httpx
import pytest

from apps.audit.checkpoints import checkpoint_seal
from apps.audit.models import AuditEntry, Checkpoint
from apps.pcs.models import PcsRecord
from apps.policy.models import Policy
from apps.tenants.services import token_issue
from tests.conftest import TenantKit, submit
from tests.support.pcs_factory import make_pcs


@dataclass
class World:
    """acme with one decided PCS, a sealed checkpoint and a draft policy; globex with its own token."""

    http: httpx.Client
    acme: TenantKit
    globex: TenantKit
    policy_token: str
    pcs_id: str
    sealed_size: int

    def auth(self, who: str) -> dict[str, str]:
        tokens = {
            "read": self.acme.token,
            "policy": self.policy_token,
            "other": self.globex.token,
            "bogus": "flk_not-a-token",
        }
        return {"Authorization": f"Bearer {tokens[who]}"} if who in tokens else {}


@pytest.fixture
def world(http, tenant_a, tenant_b) -> World:
    pcs = make_pcs(tenant_a.signer, epoch=1)
    assert submit(http, pcs, **{"X-Tenant-Id": "acme"}).status_code == 200
    sealed = checkpoint_seal(tenant=tenant_a.tenant)
    _, policy_token = token_issue(tenant=tenant_a.tenant, name="admin", actor="test", scope="policy")
    draft = {"name": "draft", "version": "1.2.0", "params": {}, "rules": []}
    created = http.post("/v1/policies", json=draft, headers={"Authorization": f"Bearer {policy_token}"})
    assert created.status_code == 201, created.text
    return World(http, tenant_a, tenant_b, policy_token, pcs["pcs_id"], sealed.tree_size)


def b64(text: str | bytes) -> str:
    raw = text.encode() if isinstance(text, str) else text
    return base64.b64encode(raw).decode()


def assert_error_body(response: httpx.Response, status: int, error: str, field: str | None) -> None:
    assert response.status_code == status, response.text
    assert response.headers["Content-Type"].startswith("application/json")
    body = response.json()
    assert body["error"] == error and isinstance(body["detail"], str) and body["detail"]
    if field is not None:
        assert body["field"] == field


HEX = "0123456789abcdef" * 4

# (path with query, status, error code, field)
HOSTILE_READS = [
    # GET /v1/pcs/{pcs_id}: an id that cannot exist is 404, like one that does not
    ("/v1/pcs/abc%00def", 404, "not_found", "pcs_id"),
    ("/v1/pcs/" + HEX.upper(), 404, "not_found", "pcs_id"),
    ("/v1/pcs/" + HEX[:63], 404, "not_found", "pcs_id"),
    ("/v1/pcs/" + HEX + "0", 404, "not_found", "pcs_id"),
    ("/v1/pcs/" + HEX[:63] + "%00", 404, "not_found", "pcs_id"),
    ("/v1/pcs/%ED%A0%80", 404, "not_found", "pcs_id"),  # a UTF-8 encoded surrogate
    ("/v1/pcs/%F0%9F%98%80", 404, "not_found", "pcs_id"),
    ("/v1/pcs/'%20OR%201=1%20--", 404, "not_found", "pcs_id"),
    ("/v1/pcs/" + "a" * 200, 404, "not_found", "pcs_id"),
    # GET /v1/pcs?since=
    ("/v1/pcs?since=0000-01-01T00:00:00Z", 400, "invalid_parameter", "since"),
    ("/v1/pcs?since=2026-13-45T99:99:99Z", 400, "invalid_parameter", "since"),
    ("/v1/pcs?since=2026-01-01T00:00:00%2B99:99", 400, "invalid_parameter", "since"),
    ("/v1/pcs?since=0001-01-01T00:00:00%2B01:00", 400, "invalid_parameter", "since"),  # overflows to UTC
    ("/v1/pcs?since=9999-12-31T23:59:59-01:00", 400, "invalid_parameter", "since"),
    ("/v1/pcs?since=2026-01-01T00:00:00", 400, "invalid_parameter", "since"),  # no zone
    ("/v1/pcs?since=2026-01-01", 400, "invalid_parameter", "since"),
    ("/v1/pcs?since=2026-01-01T00:00:00Z%00", 400, "invalid_parameter", "since"),
    ("/v1/pcs?since=yesterday", 400, "invalid_parameter", "since"),
    # status=
    ("/v1/pcs?status=nope", 400, "invalid_parameter", "status"),
    ("/v1/pcs?status=accepted%00", 400, "invalid_parameter", "status"),
    ("/v1/pcs?status=ACCEPTED", 400, "invalid_parameter", "status"),
    # limit=
    ("/v1/pcs?limit=0", 400, "invalid_parameter", "limit"),
    ("/v1/pcs?limit=-1", 400, "invalid_parameter", "limit"),
    ("/v1/pcs?limit=1001", 400, "invalid_parameter", "limit"),
    ("/v1/pcs?limit=1.5", 400, "invalid_parameter", "limit"),
    ("/v1/pcs?limit=abc", 400, "invalid_parameter", "limit"),
    ("/v1/pcs?limit=%00", 400, "invalid_parameter", "limit"),
    ("/v1/pcs?limit=" + "9" * 30, 400, "invalid_parameter", "limit"),
    ("/v1/pcs?limit=%D9%A5", 400, "invalid_parameter", "limit"),  # an Arabic-Indic 5
    # cursor=
    ("/v1/pcs?cursor=" + b64("p=abc"), 400, "invalid_cursor", "cursor"),
    ("/v1/pcs?cursor=" + b64("p=1%00"), 400, "invalid_cursor", "cursor"),
    ("/v1/pcs?cursor=" + b64("p=" + "9" * 20), 400, "invalid_cursor", "cursor"),
    ("/v1/pcs?cursor=" + b64("p=-1"), 400, "invalid_cursor", "cursor"),
    ("/v1/pcs?cursor=" + b64("o=-1"), 400, "invalid_cursor", "cursor"),
    ("/v1/pcs?cursor=" + b64("o=abc"), 400, "invalid_cursor", "cursor"),
    ("/v1/pcs?cursor=" + b64("o=100000"), 400, "invalid_cursor", "cursor"),
    ("/v1/pcs?cursor=" + b64("r=2"), 400, "invalid_cursor", "cursor"),
    ("/v1/pcs?cursor=" + b64("x=1"), 400, "invalid_cursor", "cursor"),
    ("/v1/pcs?cursor=" + b64("p=1&p=2"), 400, "invalid_cursor", "cursor"),
    ("/v1/pcs?cursor=" + b64("garbage"), 400, "invalid_cursor", "cursor"),
    ("/v1/pcs?cursor=" + b64(b"\xff\xfe"), 400, "invalid_cursor", "cursor"),
    ("/v1/pcs?cursor=!!!", 400, "invalid_cursor", "cursor"),
    ("/v1/pcs?cursor=%00", 400, "invalid_cursor", "cursor"),
    ("/v1/pcs?cursor=%C3%A9", 400, "invalid_cursor", "cursor"),
    ("/v1/pcs?cursor=cD0x", 200, None, None),  # p=1: a well-formed cursor, for contrast
    # the audit log: indexes and sizes are integers within bigint; proofs the log cannot give are 400
    ("/v1/audit/acme/proof/inclusion", 400, "invalid_parameter", "index"),
    ("/v1/audit/acme/proof/inclusion?index=-1", 400, "invalid_parameter", "index"),
    ("/v1/audit/acme/proof/inclusion?index=abc", 400, "invalid_parameter", "index"),
    ("/v1/audit/acme/proof/inclusion?index=1e3", 400, "invalid_parameter", "index"),
    ("/v1/audit/acme/proof/inclusion?index=%00", 400, "invalid_parameter", "index"),
    ("/v1/audit/acme/proof/inclusion?index=" + "9" * 20, 400, "invalid_parameter", "index"),
    ("/v1/audit/acme/proof/inclusion?index=0&tree_size=0", 400, "invalid_parameter", "tree_size"),
    ("/v1/audit/acme/proof/inclusion?index=0&tree_size=x", 400, "invalid_parameter", "tree_size"),
    ("/v1/audit/acme/proof/inclusion?index=50&tree_size=3", 400, "invalid_proof_request", "index"),
    ("/v1/audit/acme/proof/inclusion?index=0&tree_size=999", 400, "invalid_proof_request", "tree_size"),
    ("/v1/audit/acme/proof/inclusion?index=9223372036854775806", 400, "invalid_proof_request", "index"),
    ("/v1/audit/acme/proof/consistency?second=1", 400, "invalid_parameter", "first"),
    ("/v1/audit/acme/proof/consistency?first=1", 400, "invalid_parameter", "second"),
    ("/v1/audit/acme/proof/consistency?first=0&second=1", 400, "invalid_parameter", "first"),
    ("/v1/audit/acme/proof/consistency?first=3&second=2", 400, "invalid_proof_request", "first"),
    ("/v1/audit/acme/proof/consistency?first=998&second=999", 400, "invalid_proof_request", "first"),
    ("/v1/audit/acme/proof/consistency?first=1&second=" + "9" * 19, 400, "invalid_parameter", "second"),
    ("/v1/audit/globex/checkpoint", 404, "not_found", "tenant"),  # exists, but not this token's
    ("/v1/audit/nobody/proof/inclusion?index=0", 404, "not_found", "tenant"),
    # policies: a version no policy can have is 404 like an unknown one
    ("/v1/policies/1.2.0%00", 404, "not_found", "version"),
    ("/v1/policies/not-semver", 404, "not_found", "version"),
    ("/v1/policies/1.2.0-" + "a" * 64, 404, "not_found", "version"),
    ("/v1/policies/9.9.9", 404, "not_found", "version"),
]


@pytest.mark.parametrize(("path", "status", "error", "field"), HOSTILE_READS, ids=lambda v: str(v)[:60])
def test_a_hostile_read_parameter_is_refused_with_the_json_error(world, path, status, error, field):
    response = world.http.get(path, headers=world.auth("read"))
    if error is None:
        assert response.status_code == status, response.text
    else:
        assert_error_body(response, status, error, field)


def test_a_first_page_cursor_link_still_works(world):
    for epoch in (2, 3):
        assert submit(
            world.http, make_pcs(world.acme.signer, epoch=epoch), **{"X-Tenant-Id": "acme"}
        ).is_success
    first = world.http.get("/v1/pcs?limit=2", headers=world.auth("read")).json()
    second = world.http.get(first["next"], headers=world.auth("read")).json()
    assert len(first["results"]) == 2 and [r["pcs_id"] for r in second["results"]] == [world.pcs_id]
    back = world.http.get(second["previous"], headers=world.auth("read")).json()
    assert back["results"] == first["results"]


@pytest.mark.parametrize("query", ["since=", "status=", "limit=", "cursor="])
def test_an_empty_parameter_counts_as_absent(world, query):
    response = world.http.get(f"/v1/pcs?{query}", headers=world.auth("read"))
    assert response.status_code == 200 and [r["pcs_id"] for r in response.json()["results"]] == [world.pcs_id]


def test_a_valid_since_in_any_zone_filters(world):
    assert world.http.get("/v1/pcs?since=2000-01-01T00:00:00%2B14:00", headers=world.auth("read")).json()[
        "results"
    ]
    later = world.http.get("/v1/pcs?since=9999-12-31T23:59:59Z", headers=world.auth("read"))
    assert later.status_code == 200 and later.json()["results"] == []


def test_a_proof_of_a_sealed_size_still_answers(world):
    size = world.sealed_size
    inclusion = world.http.get(f"/v1/audit/acme/proof/inclusion?index={size - 1}", headers=world.auth("read"))
    consistency = world.http.get(
        f"/v1/audit/acme/proof/consistency?first={size}&second={size}", headers=world.auth("read")
    )
    assert inclusion.status_code == 200 and inclusion.json()["tree_size"] == size
    assert consistency.status_code == 200 and consistency.json()["hashes"] == []


def test_the_checkpoint_answers_whatever_the_client_accepts(world):
    for accept in ("text/plain", "application/json", "*/*", "image/png"):
        note = world.http.get("/v1/audit/acme/checkpoint", headers={**world.auth("read"), "Accept": accept})
        assert note.status_code == 200 and note.headers["Content-Type"].startswith("text/plain")
    missing = world.http.get(
        "/v1/audit/globex/checkpoint", headers={**world.auth("read"), "Accept": "text/plain"}
    )
    assert_error_body(missing, 404, "not_found", "tenant")


# -- policy bodies -------------------------------------------------------------------------------

NUL_RULE = {"name": "nul", "expr": '"\u0000" == ""', "action": "escalate", "message": "m"}

# (method, path, body: JSON value or (content type, raw bytes), status, error, field)
HOSTILE_BODIES = [
    ("post", "/v1/policies", {"name": "a\u0000b", "version": "1.3.0"}, 400, "policy_invalid", "name"),
    ("post", "/v1/policies", {"name": "n" * 101, "version": "1.3.0"}, 400, "policy_invalid", "name"),
    ("post", "/v1/policies", {"name": "n", "version": "1.3.0-" + "a" * 64}, 400, "policy_invalid", "version"),
    ("post", "/v1/policies", {"name": "n", "version": "1.3.0\u0000"}, 400, "policy_invalid", "version"),
    ("post", "/v1/policies", {"name": "\ud800", "version": "1.3.0"}, 400, "policy_invalid", "name"),
    (
        "post",
        "/v1/policies",
        {"version": "1.3.0", "rules": [NUL_RULE]},
        400,
        "policy_invalid",
        "rules[0].expr",
    ),
    ("post", "/v1/policies", {"version": "1.3.0", "params": {"a\u0000": 1}}, 400, "policy_invalid", "params"),
    (
        "post",
        "/v1/policies",
        ("application/json", b'{"version": "1.3.0", "params": {"d_hat_tolerance": 1e999}}'),
        400,
        "policy_invalid",
        "params.d_hat_tolerance",
    ),
    (
        "post",
        "/v1/policies",
        ("application/json", b'{"version": "1.3.0", "params": {"d_hat_tolerance": 1' + b"0" * 400 + b"}}"),
        400,
        "policy_invalid",
        "params.d_hat_tolerance",
    ),
    ("post", "/v1/policies", ("application/json", b"[" * 100_000), 400, "malformed_json", ""),
    ("post", "/v1/policies", ("application/json", b'{"version": NaN}'), 400, "malformed_json", ""),
    ("post", "/v1/policies", ("application/json", b"{not json"), 400, "malformed_json", ""),
    ("post", "/v1/policies", ("application/json", b"\xff\xfe"), 400, "malformed_json", ""),
    ("post", "/v1/policies", ("text/plain", b"version=1.3.0"), 415, "unsupported_media_type", None),
    ("post", "/v1/policies", ("multipart/form-data; boundary=", b"--x"), 400, "parse_error", ""),
    ("put", "/v1/policies/1.2.0", {"name": "x\u0000"}, 400, "policy_invalid", "name"),
    ("put", "/v1/policies/1.2.0", {"rules": [NUL_RULE]}, 400, "policy_invalid", "rules[0].expr"),
    ("put", "/v1/policies/1.2.0%00", {"name": "x"}, 404, "not_found", "version"),
    ("post", "/v1/policies/1.2.0/canary", {"share": "abc"}, 400, "invalid_request", "share"),
    ("post", "/v1/policies/1.2.0/canary", {"share": "\u0000"}, 400, "invalid_request", "share"),
    ("post", "/v1/policies/1.2.0/canary", {}, 400, "invalid_request", "share"),
    ("post", "/v1/policies/1.2.0/canary", {"share": 2}, 400, "policy_invalid", "canary_share"),
    ("post", "/v1/policies/x%00/canary", {"share": 0.5}, 404, "not_found", "version"),
    ("post", "/v1/policies/x%00/activate", None, 404, "not_found", "version"),
]


@pytest.mark.parametrize(
    ("method", "path", "body", "status", "error", "field"), HOSTILE_BODIES, ids=lambda v: str(v)[:50]
)
def test_a_hostile_policy_body_is_refused_and_stores_nothing(world, method, path, body, status, error, field):
    before = list(Policy.objects.values_list("version", "name", "status", "params", "rules"))
    entries = AuditEntry.objects.count()
    if isinstance(body, tuple):
        content_type, raw = body
    else:
        content_type, raw = "application/json", json.dumps(body).encode() if body is not None else b""
    headers = {**world.auth("policy"), "Content-Type": content_type}
    response = world.http.request(method.upper(), path, content=raw, headers=headers)
    assert_error_body(response, status, error, field)
    assert list(Policy.objects.values_list("version", "name", "status", "params", "rules")) == before
    assert AuditEntry.objects.count() == entries


# -- denied access -------------------------------------------------------------------------------

OPERATIONS = [
    ("get", "/v1/pcs/{pcs_id}"),
    ("get", "/v1/pcs"),
    ("get", "/v1/tenants/me/usage"),
    ("get", "/v1/audit/acme/checkpoint"),
    ("get", "/v1/audit/acme/proof/inclusion?index=0"),
    ("get", "/v1/audit/acme/proof/consistency?first=1&second=1"),
    ("get", "/v1/policies"),
    ("post", "/v1/policies"),
    ("get", "/v1/policies/1.2.0"),
    ("put", "/v1/policies/1.2.0"),
    ("post", "/v1/policies/1.2.0/activate"),
    ("post", "/v1/policies/1.2.0/canary"),
    ("post", "/v1/policies/canary/promote"),
    ("post", "/v1/policies/canary/rollback"),
]
CHANGE_BODY = {
    "name": "changed",
    "version": "2.0.0",
    "params": {"d_hat_tolerance": 0.3},
    "rules": [],
    "share": 0.5,
}


def _snapshot() -> tuple:
    return (
        list(
            Policy.objects.order_by("pk").values_list("version", "name", "status", "params", "canary_share")
        ),
        AuditEntry.objects.count(),
        PcsRecord.objects.count(),
        Checkpoint.objects.count(),
    )


@pytest.mark.parametrize(
    ("who", "status", "error"), [("none", 401, "not_authenticated"), ("bogus", 401, "authentication_failed")]
)
@pytest.mark.parametrize(("method", "path"), OPERATIONS)
def test_a_request_without_a_valid_token_is_401_and_changes_nothing(world, method, path, who, status, error):
    before = _snapshot()
    response = world.http.request(
        method.upper(),
        path.format(pcs_id=world.pcs_id),
        json=CHANGE_BODY if method != "get" else None,
        headers=world.auth(who),
    )
    assert_error_body(response, status, error, None)
    assert response.headers["WWW-Authenticate"] == 'Bearer realm="flk"'
    assert _snapshot() == before


@pytest.mark.parametrize(("method", "path"), [op for op in OPERATIONS if op[0] != "get"])
def test_a_read_token_cannot_change_policies(world, method, path):
    before = _snapshot()
    response = world.http.request(method.upper(), path, json=CHANGE_BODY, headers=world.auth("read"))
    assert_error_body(response, 403, "permission_denied", None)
    assert "scope 'policy'" in response.json()["detail"]
    assert _snapshot() == before


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("get", "/v1/pcs/{pcs_id}"),
        ("get", "/v1/audit/acme/checkpoint"),
        ("get", "/v1/audit/acme/proof/inclusion?index=0"),
        ("get", "/v1/audit/acme/proof/consistency?first=1&second=1"),
        ("get", "/v1/policies/1.2.0"),
    ],
)
def test_another_tenants_token_sees_nothing_of_acme(world, method, path):
    before = _snapshot()
    response = world.http.request(
        method.upper(), path.format(pcs_id=world.pcs_id), headers=world.auth("other")
    )
    assert_error_body(response, 404, "not_found", None)
    assert _snapshot() == before


def test_another_tenants_policy_token_changes_nothing_of_acme(world):
    _, globex_admin = token_issue(tenant=world.globex.tenant, name="admin", actor="test", scope="policy")
    before = _snapshot()
    headers = {"Authorization": f"Bearer {globex_admin}"}
    for path in ("/v1/policies/1.2.0/activate", "/v1/policies/1.2.0/canary"):
        assert_error_body(
            world.http.post(path, json={"share": 0.5}, headers=headers), 404, "not_found", "version"
        )
    assert_error_body(
        world.http.put("/v1/policies/1.2.0", json=CHANGE_BODY, headers=headers), 404, "not_found", "version"
    )
    assert world.http.get("/v1/policies", headers=headers).json() == []
    assert _snapshot() == before


@pytest.mark.parametrize(
    ("method", "path", "headers", "status", "error"),
    [
        ("delete", "/v1/pcs", {}, 405, "method_not_allowed"),
        ("post", "/v1/pcs/{pcs_id}", {}, 405, "method_not_allowed"),
        ("patch", "/v1/policies/1.2.0", {}, 405, "method_not_allowed"),
        ("delete", "/v1/audit/acme/checkpoint", {}, 405, "method_not_allowed"),
        ("get", "/v1/pcs", {"Accept": "text/html"}, 406, "not_acceptable"),
        ("get", "/v1/tenants/me/usage", {"Accept": "application/xml"}, 406, "not_acceptable"),
    ],
)
def test_drf_refusals_use_the_json_error_body(world, method, path, headers, status, error):
    before = _snapshot()
    response = world.http.request(
        method.upper(), path.format(pcs_id=world.pcs_id), headers={**world.auth("policy"), **headers}
    )
    assert_error_body(response, status, error, None)
    assert _snapshot() == before
