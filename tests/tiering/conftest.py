"""Tiering fixtures: a cold bucket on the test S3 server, decided PCS, the tier invariant."""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest
from django.utils import timezone

from apps.pcs.models import PcsRecord
from apps.pcs.services import pcs_ingest
from apps.tiering.models import ColdRecord
from tests.support.s3 import S3_CREDENTIALS, S3_REGION


@pytest.fixture
def cold_bucket(s3, s3_endpoint, settings) -> str:
    """A fresh bucket that this process's cold tier uses; warm records are due at once (TTL 0)."""
    bucket = f"flk-cold-{uuid.uuid4().hex[:12]}"
    s3.create_bucket(Bucket=bucket)
    settings.TIER_COLD_BUCKET = bucket
    settings.TIER_COLD_S3_ENDPOINT_URL = s3_endpoint
    settings.TIER_COLD_S3_REGION = S3_REGION
    settings.TIER_WARM_TTL = 0
    return bucket


def cold_env(bucket: str, endpoint: str, **extra: str) -> dict[str, str]:
    """Environment for a child process (worker, manage.py) that uses the same cold tier."""
    return {
        "TIER_COLD_BUCKET": bucket,
        "TIER_COLD_S3_ENDPOINT_URL": endpoint,
        "TIER_COLD_S3_REGION": S3_REGION,
        "TIER_WARM_TTL": "0",
        **S3_CREDENTIALS,
        **extra,
    }


def decide(pcs_factory, epochs: range, tenant_header: str | None = None) -> list[dict[str, Any]]:
    """Decide one PCS per epoch through the pipeline; return the PCS."""
    made = []
    for epoch in epochs:
        pcs = pcs_factory(epoch=epoch)
        result = pcs_ingest(
            body=json.dumps(pcs).encode(), tenant_header=tenant_header, received_at=timezone.now()
        )
        assert result.status in (200, 202), result.body
        made.append(pcs)
    return made


def tier_of_each(pcs_ids: list[str]) -> dict[str, str]:
    """Where each PCS's record is: "warm", "cold", or a failure of the invariant ("both", "none")."""
    warm = set(PcsRecord.objects.filter(pcs_id__in=pcs_ids).values_list("pcs_id", flat=True))
    cold = set(ColdRecord.objects.filter(pcs_id__in=pcs_ids).values_list("pcs_id", flat=True))
    where = {}
    for pcs_id in pcs_ids:
        where[pcs_id] = {(True, False): "warm", (False, True): "cold", (True, True): "both"}.get(
            (pcs_id in warm, pcs_id in cold), "none"
        )
    return where
