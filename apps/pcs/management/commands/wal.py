"""``manage.py wal replay | status | prune | retry-quarantined``: operate the inbox WAL."""

from __future__ import annotations

import json
from argparse import ArgumentParser
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand

from apps.pcs import wal
from apps.pcs.models import QuarantinedRequest
from apps.pcs.quarantine import quarantined_retry
from apps.pcs.replay import wal_prune, wal_replay


class Command(BaseCommand):
    help = "Replay undecided WAL requests, show WAL status, prune old segments, retry quarantined requests."

    def add_arguments(self, parser: ArgumentParser) -> None:
        sub = parser.add_subparsers(dest="action", required=True)
        replay = sub.add_parser("replay", help="decide every request that has no answer yet")
        replay.add_argument(
            "--grace",
            type=float,
            default=0.0,
            help="leave requests younger than this many seconds (default 0)",
        )
        wait = replay.add_mutually_exclusive_group()
        wait.add_argument(
            "--wait",
            action="store_true",
            help="retry requests claimed by a live or remote process until their claims expire",
        )
        wait.add_argument(
            "--no-wait",
            action="store_true",
            help="leave such requests for the next run (the default; kept for older scripts)",
        )
        sub.add_parser("status", help="list segments and open quarantined requests")
        prune = sub.add_parser("prune", help="delete done segments past retention")
        prune.add_argument("--days", type=float, default=None)
        retry = sub.add_parser("retry-quarantined", help="run open quarantined requests again")
        retry.add_argument("ids", nargs="*", type=int, help="quarantine ids (default: every open one)")

    def handle(self, *args: Any, action: str, **options: Any) -> None:
        if action == "replay":
            report = wal_replay(grace_seconds=options["grace"], wait_for_claims=options["wait"])
            self.stdout.write(json.dumps(report.as_dict()))
        elif action == "prune":
            self.stdout.write(json.dumps({"deleted_segments": wal_prune(retention_days=options["days"])}))
        elif action == "retry-quarantined":
            rows = QuarantinedRequest.objects.filter(resolved_at__isnull=True).order_by("pk")
            if options["ids"]:
                rows = rows.filter(pk__in=options["ids"])
            for row in rows:
                self.stdout.write(f"{row.pk}\t{row.segment}@{row.offset}\t{quarantined_retry(row=row)}")
        else:
            self._status()

    def _status(self) -> None:
        for path in wal.list_segments(settings.WAL_DIR, include_done=True):
            scan = wal.scan_segment(path)
            requests = sum(1 for _ in wal.iter_requests(scan))
            state = (
                "done"
                if path.name.endswith(wal.DONE_SUFFIX)
                else ("active" if wal.segment_is_active(path) else "closed")
            )
            self.stdout.write(
                f"{path.name}\t{state}\t{scan.file_bytes} bytes\t{requests} requests"
                + ("\ttorn tail" if scan.torn else "")
            )
        open_rows = QuarantinedRequest.objects.filter(resolved_at__isnull=True).order_by("pk")
        self.stdout.write(f"quarantined (open): {open_rows.count()}")
        for row in open_rows:
            error = row.error.splitlines()[-1] if row.error else ""
            self.stdout.write(
                f"  #{row.pk}\t{row.segment}@{row.offset}\treceived {row.received_at.isoformat()}"
                f"\tattempts {row.attempts}\t{error}"
            )
