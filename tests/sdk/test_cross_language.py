"""Python, TypeScript and Go produce the same bytes; the TS and Go clients work against gunicorn.

The property test signs 1,200 random PCS (ties at the 9th decimal, integer-valued floats, exponent-form
boundaries, negative zero, non-ASCII and escaped shard ids, extreme epochs, random HMAC secrets and
Ed25519 seeds, Merkle trees of random leaves) with each SDK: TypeScript and Go through one long-lived
process each (sdk/ts/tools/pcs-jsonl.ts, sdk/go/cmd/flk-pcs-jsonl), one JSON line per PCS.
"""

from __future__ import annotations

import base64
import json
import math
import os
import random
import subprocess
from pathlib import Path
from typing import Any

import pytest

from apps.tenants.services import tenant_create
from flk_agent.merkle import merkle_root
from flk_agent.pcs import compute_pcs_id, payload_digest, signing_payload
from flk_agent.signing import Ed25519Signer, HmacSigner
from tests.sdk.test_go_sdk import SDK_GO, go, go_binary, go_env
from tests.sdk.test_ts_sdk import doc_example, run, temp_dir, ts_build, ts_consumer_project
from tests.support.servers import gunicorn

ROOT = Path(__file__).resolve().parents[2]
VECTORS = json.loads((ROOT / "sdk/testdata/golden/vectors.json").read_text("utf-8"))
CASES = 1200
SEED = int(os.environ.get("FLK_CROSS_SEED", "20260101"))

# -- random PCS ------------------------------------------------------------------------------------

BOUNDARY_FLOATS = [
    0.0, -0.0, 1.0, 2.0, 1e21, 1e21 * (1 - 2**-52), 1e21 * (1 + 2**-52), 9.999999999999999e20, 1e20, 1e22,
    1.5e21, 123456789012345680000.0, 1e-6, 1e-7, 1.5e-7, 9.99e-8, 1e-9, 5e-10, 4.999999999e-10, 1.5e-9,
    2.5e-9, 0.0000000015, 1e16, 9007199254740993.0, 1.7976931348623157e308, 5e-324, 0.1 + 0.2, 1 / 3,
    977 / 1024, 3 / 1024, 0.9999999995, 2.9999999995, 0.0000000005,
]  # fmt: skip

SHARD_PARTS = [
    "shard-001", "s", "шард", "東京", "🛰", "é", "e\u0301", '"', "\\", "\n", "\t", "\r", "\b", "\f", "\x00",
    "\x01", "\x1f", "\x7f", "\u2028", "\u2029", "</script>", "&<>", "\ufeff", "\U0001f600", "\ufb33", " ",
    "/", "\ud7ff", "\ue000", "\uffff", "\U0010ffff",
]  # fmt: skip


def random_float(rng: random.Random) -> float:
    kind = rng.randrange(8)
    sign = -1.0 if rng.random() < 0.15 else 1.0
    if kind == 0:  # a binary tie at the 10th decimal: odd k / 1024, with an integer part
        return sign * (rng.randrange(0, 10_000) + (2 * rng.randrange(512) + 1) / 1024)
    if kind == 1:  # integer-valued
        return sign * float(rng.choice([0, 1, 2, 10, rng.randrange(10**6), rng.randrange(2**53)]))
    if kind == 2:
        return sign * rng.choice(BOUNDARY_FLOATS)
    if kind == 3:  # anywhere in magnitude, exponent forms included
        return sign * 10 ** rng.uniform(-12, 25)
    if kind == 4:  # looks like a decimal tie, is not a binary one
        return sign * (rng.randrange(10**10) * 10 + 5) / 10**11
    if kind == 5:  # close to a rounding boundary
        return sign * (rng.randrange(10**9) + 0.5) / 10**9 + rng.choice([-1, 1]) * rng.random() * 1e-16
    return rng.uniform(0, 64) if kind == 6 else rng.random()


def random_shard(rng: random.Random) -> str:
    if rng.random() < 0.3:
        return f"shard-{rng.randrange(10**6)}"
    return "".join(rng.choice(SHARD_PARTS) for _ in range(rng.randrange(1, 8)))


def random_epoch(rng: random.Random) -> int:
    return rng.choice([0, 1, 2**31, 2**32, 2**53 - 2, 2**53 - 1, rng.randrange(2**53), rng.randrange(1000)])


def random_case(rng: random.Random, index: int) -> dict[str, Any]:
    alg = rng.choice(["hmac", "ed25519"])
    key = rng.randbytes(32) if alg == "ed25519" else rng.randbytes(rng.randrange(1, 65))
    leaves = [rng.randbytes(rng.randrange(0, 40)) for _ in range(rng.randrange(0, 10))]
    root = merkle_root(leaves).hex() if rng.random() < 0.5 else rng.randbytes(32).hex()
    case = {
        "id": index,
        "alg": alg,
        "key_hex": key.hex(),
        "leaves_hex": [leaf.hex() for leaf in leaves],
        "input": {
            "merkle_root": root,
            "epoch": random_epoch(rng),
            "shard_id": random_shard(rng),
            "D_hat": random_float(rng),
            "coh_star": random_float(rng),
            "r": random_float(rng),
            "budget": random_float(rng),
        },
    }
    return case


def python_answer(case: dict[str, Any]) -> dict[str, Any]:
    fields = dict(case["input"])
    pcs = {"pcs_id": compute_pcs_id(fields["merkle_root"], fields["epoch"], fields["shard_id"]), **fields}
    key = bytes.fromhex(case["key_hex"])
    signer = HmacSigner(key) if case["alg"] == "hmac" else Ed25519Signer.from_seed(key)
    digest = payload_digest(pcs)
    return {
        "id": case["id"],
        "pcs_id": pcs["pcs_id"],
        "payload_hex": signing_payload(pcs).hex(),
        "digest_hex": digest.hex(),
        "sig": signer.sign(digest),
        "merkle_root": merkle_root(bytes.fromhex(h) for h in case["leaves_hex"]).hex(),
    }


def run_batch(cmd: list[str], cases: list[dict[str, Any]], cwd: Path) -> list[dict[str, Any]]:
    """One process for the whole batch: JSON lines in, JSON lines out."""
    stdin = "".join(json.dumps(case, ensure_ascii=False) + "\n" for case in cases)
    done = subprocess.run(cmd, input=stdin, capture_output=True, text=True, cwd=cwd, timeout=120, check=False)
    assert done.returncode == 0, f"{cmd} exited {done.returncode}:\n{done.stderr}"
    return [json.loads(line) for line in done.stdout.splitlines()]


def golden_cases() -> list[dict[str, Any]]:
    """The golden vectors in the drivers' format, with their published answers."""
    out = []
    for i, vector in enumerate(VECTORS["cases"]):
        key = (
            VECTORS["hmac_secret_utf8"].encode()
            if vector["alg"] == "hmac"
            else bytes.fromhex(VECTORS["ed25519_seed_hex"])
        )
        out.append(
            {"id": f"golden-{i}", "alg": vector["alg"], "key_hex": key.hex(), "input": vector["input"]}
        )
    return out


def test_python_typescript_and_go_sign_1200_random_pcs_identically():
    rng = random.Random(SEED)
    cases = [random_case(rng, i) for i in range(CASES)]
    floats = [case["input"][k] for case in cases for k in ("D_hat", "coh_star", "r", "budget")]
    # The generator covers what it promises.
    assert sum(1 for x in floats if (x * 1024) % 2 == 1 and abs(x) < 2**40) > 100  # binary ties
    assert any(math.copysign(1, x) < 0 and x == 0 for x in floats)
    assert any(abs(x) >= 1e21 for x in floats) and any(0 < abs(x) < 1e-7 for x in floats)
    assert any(case["input"]["epoch"] == 2**53 - 1 for case in cases)
    expected = [python_answer(case) for case in cases]

    dist = ts_build()
    answers = {
        "typescript": run_batch(["node", str(dist / "tools/pcs-jsonl.js")], cases, ROOT),
        "go": run_batch([str(go_binary("flk-pcs-jsonl"))], cases, ROOT),
    }
    for language, got in answers.items():
        assert len(got) == len(cases), language
        mismatches = [
            (case, want, have) for case, want, have in zip(cases, expected, got, strict=True) if have != want
        ]
        report = "\n".join(f"{c!r}\n  python: {w}\n  {language}: {h}" for c, w, h in mismatches[:5])
        assert not mismatches, (
            f"{len(mismatches)} of {len(cases)} differ from Python in {language}:\n{report}"
        )


def test_every_golden_vector_through_the_cross_language_drivers():
    cases = golden_cases()
    dist = ts_build()
    for cmd in (["node", str(dist / "tools/pcs-jsonl.js")], [str(go_binary("flk-pcs-jsonl"))]):
        got = run_batch(cmd, cases, ROOT)
        for vector, answer in zip(VECTORS["cases"], got, strict=True):
            assert answer["payload_hex"] == vector["payload_hex"], (cmd, vector["name"])
            assert answer["digest_hex"] == vector["digest_hex"], (cmd, vector["name"])
            assert answer["sig"] == vector["sig"], (cmd, vector["name"])
            assert answer["pcs_id"] == vector["input"]["pcs_id"], (cmd, vector["name"])


def test_an_epoch_above_2_53_is_refused_by_every_sdk():
    case = {
        "id": 0,
        "alg": "hmac",
        "key_hex": "00",
        "input": {**VECTORS["cases"][0]["input"], "epoch": 2**53},
    }
    case["input"].pop("pcs_id")
    with pytest.raises(ValueError, match="exceeds safe integer"):
        signing_payload({"pcs_id": "x", **case["input"]})
    dist = ts_build()
    for cmd in (["node", str(dist / "tools/pcs-jsonl.js")], [str(go_binary("flk-pcs-jsonl"))]):
        (answer,) = run_batch(cmd, [case], ROOT)
        assert "error" in answer and "2^53" in answer["error"], (cmd, answer)


# -- the clients against a real server -------------------------------------------------------------

ED25519_SEED_HEX = VECTORS["ed25519_seed_hex"]


def _driver(language: str) -> list[str]:
    if language == "ts":
        return ["node", str(ts_build() / "tools/e2e.js")]
    return [str(go_binary("flk-e2e"))]


def drive(language: str, scenario: str, *, url: str, tenant: str, key: str, alg: str) -> dict[str, Any]:
    env = {
        **os.environ,
        "FLK_URL": url,
        "FLK_TENANT": tenant,
        "FLK_KEY": key,
        "FLK_ALG": alg,
        "FLK_EPOCH": "1",
    }
    done = run([*_driver(language), scenario], ROOT, timeout=120, env=env)
    return json.loads(done.stdout)


def run_doc_example(language: str, *, url: str, tenant: str, key: str) -> str:
    """Run the example of docs/sdk-typescript.md or docs/sdk-go.md, as written there."""
    env = {**os.environ, "FLK_URL": url, "FLK_TENANT": tenant, "FLK_KEY": key}
    if language == "ts":
        return run(["node", "out/readme_example.js"], ts_consumer_project(), env=env).stdout
    module = temp_dir("flk-go-example-")
    (module / "go.mod").write_text(
        f"module example\n\ngo 1.19\n\nrequire flk v0.0.0\n\nreplace flk => {SDK_GO}\n"
    )
    (module / "main.go").write_text(doc_example(ROOT / "docs/sdk-go.md", "go"))
    return run([go(), "run", "."], module, env={**go_env(), **env}).stdout


@pytest.mark.slow
@pytest.mark.parametrize("language", ["ts", "go"])
def test_client_against_gunicorn(language, transactional_db, settings):
    settings.MULTI_TENANT = True
    _, acme = tenant_create(slug="acme", name="ACME", actor="test")
    _, slow = tenant_create(slug="slow", name="Slow", actor="test", rate_per_second=1.0, burst=1)
    public = base64.b64encode(
        Ed25519Signer.from_seed(bytes.fromhex(ED25519_SEED_HEX)).public_key_bytes()
    ).decode()
    tenant_create(slug="edco", name="EdCo", actor="test", sign_alg="ed25519", public_key_b64=public)
    with gunicorn(workers=1, MULTI_TENANT="true") as server:
        hmac_run = drive(language, "basic", url=server.url, tenant="acme", key=acme.secret, alg="hmac")
        ed_run = drive(language, "basic", url=server.url, tenant="edco", key=ED25519_SEED_HEX, alg="ed25519")
        limited = drive(language, "ratelimit", url=server.url, tenant="slow", key=slow.secret, alg="hmac")
        example = run_doc_example(language, url=server.url, tenant="acme", key=acme.secret)

    for outcome in (hmac_run, ed_run):
        assert outcome["accepted"]["status"] == 200 and outcome["accepted"]["accepted"] is True, outcome
        assert outcome["accepted"]["replayed"] is False and outcome["accepted"]["attempts"] == 1
        assert math.isclose(outcome["accepted"]["recomputedDHat"], outcome["accepted"]["dHat"], abs_tol=1e-9)
        assert outcome["replayed"] == {"status": 200, "replayed": True, "body_equal": True}, outcome
        assert outcome["escalated"]["status"] == 202 and outcome["escalated"]["escalated"] is True
        assert "d_hat_out_of_tolerance" in outcome["escalated"]["reason"], outcome
        tampered = outcome["tampered"]
        assert tampered["status"] == 401 and tampered["code"] == "invalid_signature", tampered
        assert tampered["attempts"] == 1 and tampered["error"] in ("SignatureError", "ErrSignature"), tampered

    submissions = limited["submissions"]
    assert [s["status"] for s in submissions] == [200, 200, 200], submissions
    waited = [r for s in submissions for r in s["retries"]]
    assert waited, f"the rate limit never answered 429: {submissions}"
    for retry in waited:
        assert retry["status"] == 429 and retry["code"] == "rate_limited", retry
        assert retry["retryAfterMs"] >= 1000 and retry["delayMs"] >= retry["retryAfterMs"], retry
    for s in submissions:
        if s["retries"]:
            assert s["attempts"] == len(s["retries"]) + 1
            assert s["elapsedMs"] >= sum(r["retryAfterMs"] for r in s["retries"]), s

    assert "accepted=true escalated=false" in example, example
