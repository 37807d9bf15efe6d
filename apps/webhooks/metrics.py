"""Prometheus metrics of webhook deliveries (multiprocess-safe like ``apps.pcs.metrics``).

Exposed as ``flk_webhook_deliveries_total{outcome}`` (a delivery's final state: ``delivered`` or
``failed``) and ``flk_webhook_attempts_total{outcome}`` (each POST: ``success``, ``http_error``,
``network_error``, or ``refused`` when the target resolved to an address FLK may not call).
"""

from __future__ import annotations

from prometheus_client import Counter

deliveries = Counter("flk_webhook_deliveries", "Webhook deliveries that reached a final state", ["outcome"])
attempts = Counter("flk_webhook_attempts", "Webhook delivery attempts", ["outcome"])
