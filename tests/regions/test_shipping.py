"""Shipping and replay between two regions: chunks replayed once, re-shipping a no-op, a name holding
other bytes refused, a corrupted chunk detected and never replayed."""

from __future__ import annotations

import json
import threading
import time

from django.utils import timezone

from apps.pcs import wal
from apps.pcs.services import pcs_submit
from apps.regions import storage
from apps.regions.models import ShipTarget
from apps.regions.shipping import crr_ship


def _submit(pcs_factory, epochs: range) -> list[str]:
    ids = []
    for epoch in epochs:
        pcs = pcs_factory(epoch=epoch)
        result = pcs_submit(body=json.dumps(pcs).encode(), tenant_header=None, received_at=timezone.now())
        assert result.status in (200, 202), result.body
        ids.append(pcs["pcs_id"])
    return ids


def _submit_batch(pcs_factory, epochs: range) -> list[str]:
    items = [pcs_factory(epoch=epoch) for epoch in epochs]
    body = json.dumps({"items": items}).encode()
    result = pcs_submit(body=body, tenant_header=None, received_at=timezone.now(), batch=True)
    assert result.status == 200
    return [pcs["pcs_id"] for pcs in items]


def _keys(s3, bucket: str, prefix: str) -> list[str]:
    return [o["Key"] for o in s3.list_objects_v2(Bucket=bucket, Prefix=prefix).get("Contents", [])]


def test_shipped_chunks_are_replayed_once_in_b_and_reshipping_is_a_no_op(
    regions, tenant, pcs_factory, s3_regions
):
    a, b = regions
    s3 = s3_regions
    sent = _submit(pcs_factory, range(1, 6))
    first = crr_ship()
    assert (first.chunks, first.requests, first.diverged, first.failed) == (1, 5, [], [])
    assert crr_ship().chunks == 0  # nothing new: shipping again writes nothing
    sent += _submit_batch(pcs_factory, range(6, 10))
    assert crr_ship().chunks == 1
    assert len(_keys(s3, b.bucket, "wal/a/chunks/")) == 2
    assert len(_keys(s3, b.bucket, "wal/a/manifest/")) == 2

    pulled = b.crr("pull")
    assert (pulled["chunks"], pulled["stopped"], pulled["controls_applied"]) == (2, [], 1)
    assert b.decided() == a.decided() and set(b.decided()) == set(sent)
    assert b.crr("pull")["chunks"] == 0  # pulled again: nothing replayed twice
    assert max(b.records_per_pcs().values()) == 1
    (source,) = b.crr("status")["sources"]
    assert (source["source"], source["state"], source["manifest_seq"]) == ("a", "ok", 2)
    assert source["lag_seconds"] is not None
    print(f"\nsteady pull: lag after catching up {source['lag_seconds']:.2f} s")


def test_a_chunk_name_holding_other_bytes_is_refused_and_never_overwritten(
    regions, tenant, pcs_factory, s3_regions
):
    a, b = regions
    s3 = s3_regions
    _submit(pcs_factory, range(1, 3))
    segment = wal.get_writer().active_segment
    data = wal.read_frames(a.wal_dir / segment, 0, 1 << 20)
    key = storage.chunk_key("a", segment, 0, len(data))
    s3.put_object(Bucket=b.bucket, Key=key, Body=b"another region's bytes under our name")

    report = crr_ship()
    assert report.diverged == [b.bucket] and report.chunks == 0
    target = ShipTarget.objects.get(bucket=b.bucket)
    assert target.state == "diverged" and "other content" in target.error
    assert s3.get_object(Bucket=b.bucket, Key=key)["Body"].read() == b"another region's bytes under our name"
    assert crr_ship().diverged == [b.bucket]  # stays refused until an operator resolves it
    assert _keys(s3, b.bucket, "wal/a/manifest/") == []


def test_a_corrupted_chunk_stops_the_source_and_is_never_replayed(regions, tenant, pcs_factory, s3_regions):
    _, b = regions
    s3 = s3_regions
    sent = _submit(pcs_factory, range(1, 4))
    crr_ship()
    sent += _submit(pcs_factory, range(4, 7))
    crr_ship()
    key = sorted(_keys(s3, b.bucket, "wal/a/chunks/"))[0]
    original = s3.get_object(Bucket=b.bucket, Key=key)
    good = original["Body"].read()
    flipped = bytearray(good)
    flipped[len(flipped) // 2] ^= 0x01  # one bit of one byte, as bit rot would
    s3.put_object(Bucket=b.bucket, Key=key, Body=bytes(flipped), Metadata=original["Metadata"])

    pulled = b.crr("pull")
    assert pulled["stopped"] == ["a"] and pulled["chunks"] == 0
    assert b.decided() == {}  # neither the bad chunk nor the good one after it
    (source,) = b.crr("status")["sources"]
    assert source["state"] == "stopped" and "SHA-256" in source["error"] and key in source["error"]
    assert b.crr("pull")["stopped"] == ["a"]  # stays stopped: never skipped silently

    # The operator restores the object (docs/runbooks/geo-failover.md) and resumes.
    s3.put_object(Bucket=b.bucket, Key=key, Body=good, Metadata=original["Metadata"])
    b.crr("resume", "a")
    assert b.crr("pull")["chunks"] == 2
    assert set(b.decided()) == set(sent)


def test_a_run_ships_a_growing_segment_as_one_chunk_and_the_rest_next_run(regions, tenant, pcs_factory):
    """Under load the active segment grows while a run ships it: what arrives after the run looked
    waits for the next run, instead of a train of tiny chunks that each cost the reader two S3 reads."""
    _, b = regions
    sent = _submit(pcs_factory, range(1, 4))
    writer = wal.get_writer()
    stop = threading.Event()

    def agents() -> None:  # requests keep arriving into the WAL (undecided in A: B decides them)
        for epoch in range(100, 100_000):
            if stop.is_set():
                break
            pcs = pcs_factory(epoch=epoch)
            writer.append_request(
                body=json.dumps(pcs).encode(), tenant_header=None, received_at=timezone.now()
            )
            sent.append(pcs["pcs_id"])
            time.sleep(0.002)

    thread = threading.Thread(target=agents)
    thread.start()
    try:
        time.sleep(0.1)
        runs = [crr_ship() for _ in range(3)]
    finally:
        stop.set()
        thread.join()
    assert [run.chunks for run in runs] == [1, 1, 1]  # one segment, one chunk per run
    crr_ship()
    assert b.crr("pull")["stopped"] == []
    assert set(b.decided()) == set(sent)
