"""The flk-agent command line: keys, compute from each input format, submit, stream, outbox."""

from __future__ import annotations

import json
import stat

import numpy as np
import pytest
from django.conf import settings

from apps.pcs.models import PcsRecord
from flk_agent.cli import main
from flk_agent.pcs import payload_digest
from flk_agent.signing import Ed25519Signer, verify_signature


def run(capsys, *argv: str) -> tuple[int, dict | list | str]:
    code = main(list(argv))
    out = capsys.readouterr().out
    try:
        return code, json.loads(out)
    except ValueError:
        return code, out


def test_keygen_writes_private_files_0600_and_refuses_to_overwrite(tmp_path, capsys):
    code, info = run(capsys, "keygen", "--alg", "ed25519", "--out", str(tmp_path / "agent"), "--json")
    assert code == 0
    key, pub = tmp_path / "agent.key", tmp_path / "agent.pub"
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    signer = Ed25519Signer.from_seed(bytes.fromhex(key.read_text().strip()))
    assert info["public_key_b64"] == pub.read_text().strip()
    import base64

    assert base64.b64decode(info["public_key_b64"]) == signer.public_key_bytes()
    code, _ = run(capsys, "keygen", "--alg", "hmac", "--out", str(tmp_path / "h.key"))
    assert code == 0 and stat.S_IMODE((tmp_path / "h.key").stat().st_mode) == 0o600
    assert main(["keygen", "--alg", "hmac", "--out", str(tmp_path / "h.key")]) == 2


@pytest.mark.parametrize("fmt", ["csv", "npy", "jsonl"])
def test_compute_reads_every_point_format_and_signs(tmp_path, capsys, fmt):
    points = np.random.default_rng(3).random((300, 2))
    path = tmp_path / f"points.{fmt}"
    if fmt == "csv":
        path.write_text("x,y\n" + "\n".join(f"{float(x)!r},{float(y)!r}" for x, y in points))
    elif fmt == "npy":
        np.save(path, points)
    else:
        path.write_text("\n".join(json.dumps({"point": [float(v) for v in p]}) for p in points))
    (tmp_path / "raw.bin").write_bytes(b"abc" * 500)
    (tmp_path / "key").write_text(settings.PCS_HMAC_KEY)
    code, pcs = run(
        capsys,
        "compute",
        "--points",
        str(path),
        "--raw",
        str(tmp_path / "raw.bin"),
        "--shard",
        "cli",
        "--epoch",
        "3",
        "--key-file",
        str(tmp_path / "key"),
    )
    assert code == 0
    assert pcs["epoch"] == 3 and pcs["N_j"]["2"] == 4
    assert verify_signature("hmac", settings.PCS_HMAC_KEY.encode(), payload_digest(pcs), pcs["sig"])


def test_compute_refuses_unreadable_input_with_exit_2(tmp_path, capsys):
    (tmp_path / "p.txt").write_text("1,2")
    assert (
        main(
            [
                "compute",
                "--points",
                str(tmp_path / "p.txt"),
                "--raw",
                str(tmp_path / "p.txt"),
                "--shard",
                "s",
                "--epoch",
                "1",
                "--key-file",
                str(tmp_path / "p.txt"),
            ]
        )
        == 2
    )
    assert "unknown point format" in capsys.readouterr().err


def test_submit_a_directory_then_status(live_server, transactional_db, tenant, pcs_factory, tmp_path, capsys):
    folder = tmp_path / "pcs"
    folder.mkdir()
    for epoch in (1, 2):
        (folder / f"{epoch}.json").write_text(json.dumps(pcs_factory(epoch=epoch)))
    bad = pcs_factory(epoch=3)
    bad["r"] = 0.5  # after signing
    (folder / "3.json").write_text(json.dumps(bad))
    outbox = str(tmp_path / "outbox")
    code, report = run(capsys, "submit", str(folder), "--url", live_server.url, "--outbox", outbox, "--json")
    assert code == 4  # one was dead-lettered
    assert (report["acked"], report["dead"]) == (2, 1)
    assert PcsRecord.objects.count() == 2
    code, status = run(capsys, "outbox", "status", "--outbox", outbox, "--json")
    assert (status["pending"], status["acked"], status["dead"]) == (0, 2, 1)
    assert status["records"][0]["reason"] == "invalid_signature"


def test_submit_batch_delivers_a_directory_in_batches(
    live_server, transactional_db, tenant, pcs_factory, tmp_path, capsys
):
    folder = tmp_path / "pcs"
    folder.mkdir()
    for epoch in range(1, 121):
        (folder / f"{epoch:03}.json").write_text(json.dumps(pcs_factory(epoch=epoch)))
    bad = pcs_factory(epoch=121)
    bad["r"] = 0.5  # after signing
    (folder / "121.json").write_text(json.dumps(bad))
    outbox = str(tmp_path / "outbox")
    argv = ["submit", str(folder), "--url", live_server.url, "--outbox", outbox, "--batch", "50", "--json"]
    code, report = run(capsys, *argv)
    assert code == 4  # the tampered one was dead-lettered, the others all decided
    assert (report["acked"], report["dead"], report["requests"]) == (120, 1, 3)
    assert report["outbox"] == {"pending": 0, "acked": 120, "dead": 1}
    assert PcsRecord.objects.count() == 120
    dead = [r for r in report["results"] if r["outcome"] == "dead"]
    assert dead == [
        {
            "pcs_id": bad["pcs_id"],
            "status": 401,
            "outcome": "dead",
            "reason": "invalid_signature",
            "detail": "the signature does not verify",
        }
    ]
    code, text = run(capsys, "submit", str(folder / "001.json"), "--url", live_server.url, "--outbox", outbox)
    assert code == 0 and "replayed" in text and "in 1 request;" in text


def test_submit_batch_must_be_a_positive_count(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["submit", str(tmp_path), "--batch", "0"])
    assert exit_.value.code == 2 and "--batch is at least 1" in capsys.readouterr().err


def test_stream_batch_sends_full_batches_then_the_rest_at_the_end(
    live_server, transactional_db, tenant, tmp_path, capsys
):
    events = tmp_path / "events.jsonl"
    events.write_text("\n".join(json.dumps({"point": [i % 7, i % 5]}) for i in range(100)))
    (tmp_path / "key").write_text(settings.PCS_HMAC_KEY)
    args = ["stream", "--input", str(events), "--shard", "batched", "--window-count", "10", "--batch", "4"]
    args += [
        "--url",
        live_server.url,
        "--outbox",
        str(tmp_path / "outbox"),
        "--key-file",
        str(tmp_path / "key"),
    ]
    code, report = run(capsys, *args, "--json")
    assert code == 0
    assert (report["acked"], report["attempts"], report["requests"]) == (10, 10, 3)  # 4 + 4 + 2
    assert sorted(PcsRecord.objects.values_list("epoch", flat=True)) == list(range(1, 11))


def test_stream_by_time_windows_uses_event_timestamps(
    live_server, transactional_db, tenant, tmp_path, capsys, monkeypatch
):
    events = tmp_path / "events.jsonl"
    events.write_text(
        "\n".join(json.dumps({"ts": 100 + i * 0.5, "point": [i % 7, i % 5]}) for i in range(40))
    )
    (tmp_path / "key").write_text(settings.PCS_HMAC_KEY)
    args = [
        "stream",
        "--input",
        str(events),
        "--shard",
        "timed",
        "--window-seconds",
        "5",
        "--url",
        live_server.url,
        "--outbox",
        str(tmp_path / "outbox"),
        "--key-file",
        str(tmp_path / "key"),
        "--json",
    ]
    code, report = run(capsys, *args)
    assert code == 0 and report["acked"] == 4  # ts 100..119.5 in 5 s buckets: epochs 20..23
    assert sorted(PcsRecord.objects.values_list("epoch", flat=True)) == [20, 21, 22, 23]
    code, again = run(capsys, *args)  # a restart skips what is already in the outbox
    assert code == 0 and again["attempts"] == 0


def test_a_vrf_tenant_receives_a_stream_whose_seeds_come_from_the_vrf(
    live_server, transactional_db, tenant, tmp_path, capsys
):
    from apps.tenants.services import tenant_set_vrf
    from flk_agent import vrf

    code, info = run(capsys, "keygen", "--alg", "vrf", "--out", str(tmp_path / "vrf"), "--json")
    assert code == 0 and stat.S_IMODE((tmp_path / "vrf.key").stat().st_mode) == 0o600
    tenant_set_vrf(tenant=tenant, public_key_hex=info["public_key"], required=True, actor="test")
    events = tmp_path / "events.jsonl"
    events.write_text("\n".join(json.dumps({"point": [i % 7, i % 5, i % 3]}) for i in range(60)))
    (tmp_path / "key").write_text(settings.PCS_HMAC_KEY)
    stream = ["stream", "--input", str(events), "--shard", "vrf", "--window-count", "20"]
    stream += ["--url", live_server.url, "--key-file", str(tmp_path / "key"), "--json"]
    code, refused = run(capsys, *stream, "--outbox", str(tmp_path / "plain"))
    assert code == 4 and refused["dead"] == 3  # 401 vrf_missing: dead-lettered
    code, report = run(
        capsys, *stream, "--outbox", str(tmp_path / "o"), "--vrf-key-file", str(tmp_path / "vrf.key")
    )
    assert code == 0 and report["acked"] == 3
    for record in PcsRecord.objects.all():
        pcs = record.pcs
        beta = vrf.verify(
            bytes.fromhex(info["public_key"]),
            vrf.pcs_alpha(pcs["merkle_root"], pcs["epoch"], pcs["shard_id"]),
            bytes.fromhex(pcs["vrf_proof"]),
        )
        assert pcs["seed"] == vrf.seed_from_beta(beta)


def test_demo_gets_the_answer_a_correct_server_gives_for_every_case(
    live_server, transactional_db, tenant, tmp_path, capsys
):
    (tmp_path / "key").write_text(settings.PCS_HMAC_KEY)
    code, rows = run(capsys, "demo", "--url", live_server.url, "--key-file", str(tmp_path / "key"), "--json")
    assert [(row["case"], row["status"]) for row in rows if not row["as_expected"]] == []
    assert code == 0 and len(rows) == 9
    (tmp_path / "wrong").write_text("not the server's key")
    code, rows = run(
        capsys, "demo", "--url", live_server.url, "--key-file", str(tmp_path / "wrong"), "--json"
    )
    assert code == 1 and rows[0]["status"] == 401 and not rows[0]["as_expected"]
