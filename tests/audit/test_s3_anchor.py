"""Anchoring checkpoints to S3 with Object Lock, against a real S3 API (moto's server mode)."""

from __future__ import annotations

import json
import uuid
from datetime import timedelta

import pytest
from botocore.exceptions import ClientError
from django.utils import timezone

from apps.audit.anchoring import AnchorConflict, AnchorStoreMisconfigured, checkpoint_anchor
from apps.audit.checkpoints import checkpoint_seal
from apps.audit.models import Anchor
from apps.pcs.services import pcs_ingest
from tasks.audit import anchor_checkpoints
from tests.support.s3 import S3_REGION


def _bucket(s3, *, object_lock: bool) -> str:
    name = f"flk-anchors-{uuid.uuid4().hex[:12]}"
    s3.create_bucket(Bucket=name, ObjectLockEnabledForBucket=object_lock)
    return name


@pytest.fixture
def s3_settings(settings, s3, s3_endpoint):
    settings.AUDIT_ANCHOR_S3_ENDPOINT_URL = s3_endpoint
    settings.AUDIT_ANCHOR_S3_REGION = S3_REGION
    settings.AUDIT_ANCHOR_S3_PREFIX = "checkpoints/"
    settings.AUDIT_ANCHOR_LOCK_MODE = "COMPLIANCE"
    settings.AUDIT_ANCHOR_RETENTION_DAYS = 30
    return settings


@pytest.fixture
def sealed(db, tenant, pcs_factory):
    pcs_ingest(body=json.dumps(pcs_factory(epoch=1)).encode(), tenant_header=None, received_at=timezone.now())
    return checkpoint_seal(tenant=tenant)


def test_a_checkpoint_is_put_under_compliance_retention_and_cannot_be_deleted(s3_settings, s3, sealed):
    bucket = s3_settings.AUDIT_ANCHOR_S3_BUCKET = _bucket(s3, object_lock=True)
    assert anchor_checkpoints() == {"anchored": 1}
    anchor = Anchor.objects.get(checkpoint=sealed)
    key = f"checkpoints/default/{sealed.tree_size}.note"
    head = s3.head_object(Bucket=bucket, Key=key)
    assert anchor.backend == "s3"
    assert anchor.reference == f"s3://{bucket}/{key}?versionId={head['VersionId']}"
    assert s3.get_object(Bucket=bucket, Key=key)["Body"].read().decode() == sealed.note
    assert head["ObjectLockMode"] == "COMPLIANCE"
    expected_until = timezone.now() + timedelta(days=30)
    assert abs(head["ObjectLockRetainUntilDate"] - expected_until) < timedelta(minutes=1)
    assert anchor.retain_until == head["ObjectLockRetainUntilDate"]
    with pytest.raises(ClientError, match="AccessDenied"):
        s3.delete_object(Bucket=bucket, Key=key, VersionId=head["VersionId"])
    assert anchor_checkpoints() == {"anchored": 0}  # a second run changes nothing


def test_a_retry_after_a_lost_answer_accepts_the_same_note(s3_settings, s3, sealed):
    bucket = s3_settings.AUDIT_ANCHOR_S3_BUCKET = _bucket(s3, object_lock=True)
    key = f"checkpoints/default/{sealed.tree_size}.note"
    s3.put_object(Bucket=bucket, Key=key, Body=sealed.note.encode())  # the put landed, the record did not
    anchor = checkpoint_anchor(checkpoint=sealed)
    assert anchor.reference.startswith(f"s3://{bucket}/{key}?versionId=")


def test_a_different_note_at_the_same_size_is_refused(s3_settings, s3, sealed):
    bucket = s3_settings.AUDIT_ANCHOR_S3_BUCKET = _bucket(s3, object_lock=True)
    key = f"checkpoints/default/{sealed.tree_size}.note"
    s3.put_object(Bucket=bucket, Key=key, Body=b"another tree of the same size\n")
    with pytest.raises(AnchorConflict, match="different checkpoint"):
        checkpoint_anchor(checkpoint=sealed)
    assert not Anchor.objects.exists()


def test_a_bucket_without_object_lock_is_refused(s3_settings, s3, sealed):
    bucket = s3_settings.AUDIT_ANCHOR_S3_BUCKET = _bucket(s3, object_lock=False)
    with pytest.raises(AnchorStoreMisconfigured, match="Object Lock"):
        anchor_checkpoints()
    assert not Anchor.objects.exists()
    assert s3.list_objects_v2(Bucket=bucket).get("KeyCount") == 0
