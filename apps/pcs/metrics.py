"""Prometheus metrics of the ingest path (DESIGN §8).

prometheus_client appends ``_total`` to counter names on exposition, so ``flk_ingest`` is scraped as
``flk_ingest_total`` and ``flk_dedup_hits`` as ``flk_dedup_hits_total``. With
``PROMETHEUS_MULTIPROC_DIR`` set, every gunicorn worker writes its own files and /metrics merges them.
"""

from __future__ import annotations

from prometheus_client import Counter, Histogram

ingest = Counter("flk_ingest", "PCS submissions answered by the pipeline (replays excluded)")
dedup_hits = Counter("flk_dedup_hits", "Submissions answered from the stored decision")
accepted = Counter("flk_accepted", "PCS accepted")
escalated = Counter("flk_escalated", "PCS escalated")
signature_errors = Counter("flk_signature_errors", "Submissions with a missing or invalid signature")
wal_errors = Counter("flk_wal_errors", "Inbox WAL appends that failed")
wal_quarantined = Counter(
    "flk_wal_quarantined", "WAL requests set aside because processing them raised (see manage.py wal status)"
)

ingest_by_tenant = Counter("flk_ingest_by_tenant", "flk_ingest per tenant", ["tenant_id"])
dedup_hits_by_tenant = Counter("flk_dedup_hits_by_tenant", "flk_dedup_hits per tenant", ["tenant_id"])
accepted_by_tenant = Counter("flk_accepted_by_tenant", "flk_accepted per tenant", ["tenant_id"])
escalated_by_tenant = Counter("flk_escalated_by_tenant", "flk_escalated per tenant", ["tenant_id"])
signature_errors_by_tenant = Counter(
    "flk_signature_errors_by_tenant", "flk_signature_errors per tenant", ["tenant_id"]
)
quota_exceeded_by_tenant = Counter(
    "flk_quota_exceeded_by_tenant", "Submissions refused by rate limit or daily quota", ["tenant_id", "limit"]
)
decisions_by_policy = Counter(
    "flk_decisions_by_policy",
    "Decisions per tenant, policy version and outcome (accepted, escalated, rejected)",
    ["tenant_id", "policy_version", "outcome"],
)

verify_latency = Histogram(
    "flk_verify_latency_seconds",
    "Time from parse to decision, excluding storage",
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0),
)
