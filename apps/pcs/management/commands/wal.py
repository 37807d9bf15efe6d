"""``manage.py wal replay | status | prune``: operate the inbox WAL."""

from __future__ import annotations

import json
from argparse import ArgumentParser
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand

from apps.pcs import wal
from apps.pcs.replay import wal_prune, wal_replay


class Command(BaseCommand):
    help = "Replay undecided WAL requests, show WAL status, or prune old segments."

    def add_arguments(self, parser: ArgumentParser) -> None:
        sub = parser.add_subparsers(dest="action", required=True)
        replay = sub.add_parser("replay", help="decide every request that has no answer yet")
        replay.add_argument(
            "--grace",
            type=float,
            default=0.0,
            help="leave requests younger than this many seconds (default 0)",
        )
        replay.add_argument(
            "--no-wait",
            action="store_true",
            help="do not wait for claims left by a crashed process to expire",
        )
        sub.add_parser("status", help="list segments")
        prune = sub.add_parser("prune", help="delete done segments past retention")
        prune.add_argument("--days", type=float, default=None)

    def handle(self, *args: Any, action: str, **options: Any) -> None:
        if action == "replay":
            report = wal_replay(grace_seconds=options["grace"], wait_for_claims=not options["no_wait"])
            self.stdout.write(json.dumps(report.as_dict()))
        elif action == "prune":
            self.stdout.write(json.dumps({"deleted_segments": wal_prune(retention_days=options["days"])}))
        else:
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
