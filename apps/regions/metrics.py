"""Region replication metrics (DESIGN §8).

Counters and the replay-age histogram are counted where the work happens (the Celery worker);
``wal_replication_lag_seconds``, ``dedup_divergence`` and the stopped/diverged gauges are computed from
the database when Prometheus scrapes, so they are exact whichever process replayed last, and the lag
keeps growing while nothing arrives (a partition, a dead source).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator

from django.conf import settings
from django.db import DatabaseError
from django.utils import timezone
from prometheus_client import Counter, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

logger = logging.getLogger("flk.regions")

chunks_shipped = Counter("crr_chunks_shipped", "WAL chunks shipped to a remote bucket", ["bucket"])
bytes_shipped = Counter("crr_bytes_shipped", "WAL bytes shipped to a remote bucket", ["bucket"])
ship_failures = Counter(
    "crr_ship_failures", "Shipping runs that failed for a bucket (unreachable?)", ["bucket"]
)
ship_divergence = Counter(
    "crr_ship_divergence", "Chunk or manifest names already holding other bytes (refused)", ["bucket"]
)
chunks_replayed = Counter("crr_chunks_replayed", "Chunks replayed from a source region", ["source_region"])
requests_replayed = Counter(
    "crr_requests_replayed", "WAL requests replayed from a source region", ["source_region"]
)
verification_failures = Counter(
    "crr_chunk_verification_failures",
    "Chunks that failed SHA-256, frame CRC or manifest-chain verification (the source is stopped)",
    ["source_region"],
)
replay_age = Histogram(
    "wal_replication_replay_age_seconds",
    "Age of a chunk's first request when the chunk was replayed here",
    ["source_region"],
    buckets=(0.5, 1, 2, 5, 10, 30, 60, 120, 300, 900, 3600),
)


class RegionsCollector(Collector):
    """Scrape-time gauges of replication: lag, stopped sources, diverged targets, divergence."""

    def collect(self) -> Iterator[GaugeMetricFamily]:
        """Yield the gauges; nothing (and a log line) when the database cannot answer."""
        from apps.regions.models import DivergenceStatus, ShipTarget, SourceCursor

        try:
            cursors = list(SourceCursor.objects.all())
            targets = list(ShipTarget.objects.all())
            statuses = list(DivergenceStatus.objects.all())
        except DatabaseError as exc:
            logger.warning("metrics.regions_unavailable error=%s", exc)
            return
        now = timezone.now()
        here = settings.REGION_ID
        lag = GaugeMetricFamily(
            "wal_replication_lag_seconds",
            "Age of the oldest WAL byte of the source not yet replayed in the target",
            labels=["source_region", "target_region"],
        )
        stopped = GaugeMetricFamily(
            "crr_source_stopped",
            "1 when replay of a source region is stopped (see crr status)",
            labels=["source_region"],
        )
        for cursor in cursors:
            covered = cursor.covered_at
            lag.add_metric(
                [cursor.source_region, here], max(0.0, (now - covered).total_seconds()) if covered else 0.0
            )
            stopped.add_metric([cursor.source_region], 1.0 if cursor.state == "stopped" else 0.0)
        yield lag
        yield stopped
        diverged = GaugeMetricFamily(
            "crr_ship_target_diverged",
            "1 when shipping to a bucket is refused (divergence)",
            labels=["bucket"],
        )
        for target in targets:
            diverged.add_metric([target.bucket], 1.0 if target.state == "diverged" else 0.0)
        yield diverged
        divergence = GaugeMetricFamily(
            "dedup_divergence",
            "Share of (tenant, time bucket) cells whose decided sets differ between two regions",
            labels=["region_a", "region_b"],
        )
        for status in statuses:
            divergence.add_metric([here, status.peer_region], status.share)
        yield divergence
