"""The scrape-time gauges of replication, read from the database."""

from __future__ import annotations

from datetime import timedelta

from django.utils import timezone

from apps.regions.metrics import RegionsCollector
from apps.regions.models import DivergenceStatus, ShipTarget, SourceCursor


def _samples() -> dict[tuple[str, tuple[str, ...]], float]:
    return {
        (sample.name, tuple(sorted(sample.labels.values()))): sample.value
        for family in RegionsCollector().collect()
        for sample in family.samples
    }


def test_lag_stopped_sources_diverged_targets_and_divergence_are_exported(db, settings):
    settings.REGION_ID = "eu"
    SourceCursor.objects.create(source_region="us", covered_at=timezone.now() - timedelta(seconds=90))
    SourceCursor.objects.create(source_region="ap", state="stopped", error="SHA-256 mismatch")
    ShipTarget.objects.create(bucket="flk-us", state="diverged", error="other content")
    DivergenceStatus.objects.create(
        peer_region="us", computed_at=timezone.now(), cells=8, differing_cells=2, share=0.25
    )
    samples = _samples()
    assert 90 <= samples[("wal_replication_lag_seconds", ("eu", "us"))] < 120  # grows while nothing arrives
    assert samples[("wal_replication_lag_seconds", ("ap", "eu"))] == 0.0  # never covered: unknown, not late
    assert samples[("crr_source_stopped", ("ap",))] == 1.0
    assert samples[("crr_source_stopped", ("us",))] == 0.0
    assert samples[("crr_ship_target_diverged", ("flk-us",))] == 1.0
    assert samples[("dedup_divergence", ("eu", "us"))] == 0.25
