"""Tiering metrics: counters written by the demotion task and the cold reader, gauges read at scrape.

Counters are multiprocess-safe like ``apps.pcs.metrics`` (prometheus_client appends ``_total``). The
lookup counters (``tier_hot_hits``, ``tier_warm_hits``, ``tier_cold_hits``, ``tier_promotions``) live
in ``apps.pcs.tiers``, where the lookups are. Demotion lag and bytes per tier are read from the
database at each scrape by ``TierCollector`` (registered in ``TieringConfig.ready``).
"""

from __future__ import annotations

from collections.abc import Iterable

from django.db import DatabaseError, connection
from prometheus_client import Counter
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector

demotions = Counter("tier_demotions", "PCS records moved from the warm tier to the cold tier")
evictions = Counter("tier_evictions", "Cold records removed for good after TIER_COLD_TTL")
cold_corrupt = Counter(
    "tier_cold_corrupt", "Cold reads refused because the bytes did not match their SHA-256 (never served)"
)


class TierCollector(Collector):
    """``tier_demotion_lag_seconds``, ``tier_records{tier}`` and ``tier_bytes{tier}`` (warm, cold)."""

    def collect(self) -> Iterable[Metric]:
        from apps.tiering.selectors import demotion_lag_seconds, tier_totals

        lag = GaugeMetricFamily(
            "tier_demotion_lag_seconds",
            "Age past TIER_WARM_TTL of the oldest warm record (0: demotion is keeping up)",
        )
        records = GaugeMetricFamily("tier_records", "PCS records per tier", labels=["tier"])
        size = GaugeMetricFamily("tier_bytes", "Bytes per tier (warm: the table on disk)", labels=["tier"])
        try:
            lag.add_metric([], demotion_lag_seconds())
            for tier, (count, nbytes) in tier_totals().items():
                records.add_metric([tier], count)
                size.add_metric([tier], nbytes)
        except DatabaseError:
            connection.close_if_unusable_or_obsolete()
            return []
        return [lag, records, size]
