"""``manage.py crr status | ship | pull | diff | reconcile | resume | reset-target``: operate regions."""

from __future__ import annotations

import json
from argparse import ArgumentParser
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand
from django.utils import timezone

from apps.regions.divergence import crr_diff
from apps.regions.models import DivergenceStatus, ShipTarget, SourceCursor
from apps.regions.reader import crr_pull, source_resume
from apps.regions.shipping import crr_ship, ship_target_reset


class Command(BaseCommand):
    help = "Cross-region replication: status, ship, pull, diff, reconcile, resume a stopped source."

    def add_arguments(self, parser: ArgumentParser) -> None:
        sub = parser.add_subparsers(dest="action", required=True)
        sub.add_parser("status", help="shipping targets, sources, lag and divergence as JSON")
        sub.add_parser("ship", help="publish the control plane and ship new WAL bytes now")
        pull = sub.add_parser("pull", help="apply snapshots and replay new chunks now")
        pull.add_argument("--source", action="append", help="only this source region (repeatable)")
        sub.add_parser("diff", help="publish digests, compare, drill down (no repair)")
        sub.add_parser("reconcile", help="diff, then replay what is missing and settle conflicts")
        resume = sub.add_parser("resume", help="replay a stopped source again (after repairing its chunk)")
        resume.add_argument("source")
        reset = sub.add_parser("reset-target", help="ship to a diverged bucket again (after resolving it)")
        reset.add_argument("bucket")

    def handle(self, *args: Any, action: str, **options: Any) -> None:
        if action == "ship":
            out: Any = crr_ship().as_dict()
        elif action == "pull":
            out = crr_pull(sources=options["source"]).as_dict()
        elif action in ("diff", "reconcile"):
            out = [report.as_dict() for report in crr_diff(reconcile=action == "reconcile")]
        elif action == "resume":
            source_resume(source=options["source"])
            out = {"resumed": options["source"]}
        elif action == "reset-target":
            ship_target_reset(bucket=options["bucket"])
            out = {"reset": options["bucket"]}
        else:
            out = crr_status()
        self.stdout.write(json.dumps(out, default=str))


def crr_status() -> dict[str, Any]:
    """Everything an operator asks first: where shipping stands, how far each source is replayed."""
    now = timezone.now()
    return {
        "region": settings.REGION_ID,
        "enabled": settings.WAL_REPLICATION_ENABLED,
        "bucket": settings.REGION_BUCKET,
        "targets": [
            {
                "bucket": t.bucket,
                "state": t.state,
                "error": t.error,
                "manifest_seq": t.manifest_seq,
                "control_version": t.control_version,
                "last_shipped_at": t.last_shipped_at,
            }
            for t in ShipTarget.objects.order_by("bucket")
        ],
        "sources": [
            {
                "source": c.source_region,
                "state": c.state,
                "error": c.error,
                "manifest_seq": c.manifest_seq,
                "chunks_replayed": c.chunks_replayed,
                "requests_replayed": c.requests_replayed,
                "control_version": c.control_version,
                "lag_seconds": (now - c.covered_at).total_seconds() if c.covered_at else None,
            }
            for c in SourceCursor.objects.order_by("source_region")
        ],
        "divergence": [
            {
                "peer": d.peer_region,
                "share": d.share,
                "cells": d.cells,
                "differing_cells": d.differing_cells,
                "conflicts": d.conflicts,
                "computed_at": d.computed_at,
            }
            for d in DivergenceStatus.objects.order_by("peer_region")
        ],
    }
