"""Prometheus metrics of SIEM streaming (multiprocess-safe: every worker writes its own files).

``flk_siem_events`` is scraped as ``flk_siem_events_total``. The lag gauge keeps the value written most
recently by any process (``mostrecent``), which is the one computed after the latest batch of the sink.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge

# outcome: delivered (acknowledged now), duplicate (Elasticsearch already held the id: an earlier
# delivery's), retried (sent again after a retryable answer), failed (given up for this run).
events = Counter("flk_siem_events", "Audit events sent to SIEM sinks, by outcome", ["sink", "outcome"])
lag_entries = Gauge(
    "flk_siem_lag_entries",
    "Audit entries a SIEM sink has not yet delivered, summed over its tenants",
    ["sink"],
    multiprocess_mode="mostrecent",
)
stops = Counter(
    "flk_siem_sink_stops", "SIEM sinks stopped by a refusal that retrying cannot fix", ["sink", "reason"]
)
