"""Metrics settings: Basic Auth for /metrics and the multiprocess directory."""

from __future__ import annotations

from pathlib import Path

from flk_project.env import env_str

METRICS_USER = env_str("METRICS_USER", "metrics")
# No password means /metrics refuses everyone: metrics are never served unauthenticated.
METRICS_PASS = env_str("METRICS_PASS")
PROMETHEUS_MULTIPROC_DIR = env_str("PROMETHEUS_MULTIPROC_DIR")
if PROMETHEUS_MULTIPROC_DIR:
    # prometheus_client writes there from the first metric on; a missing directory would crash it.
    Path(PROMETHEUS_MULTIPROC_DIR).mkdir(parents=True, exist_ok=True)
PROMETHEUS_EXPORT_MIGRATIONS = False
