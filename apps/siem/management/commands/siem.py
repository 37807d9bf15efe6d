"""``manage.py siem status``: sinks, cursors and lag. ``manage.py siem send``: stream now."""

from __future__ import annotations

import time
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from apps.siem.delivery import sink_deliver
from apps.siem.models import SiemSink
from apps.siem.selectors import sink_positions
from apps.siem.services import sink_secrets_reencrypt


class Command(BaseCommand):
    help = "SIEM streaming: status of the sinks, or send what they have not delivered yet."

    def add_arguments(self, parser: CommandParser) -> None:
        sub = parser.add_subparsers(dest="action", required=True)
        sub.add_parser("status", help="state, last error, and per tenant: next seq, log size, lag")
        send = sub.add_parser("send", help="deliver now, as one run of the siem task would")
        send.add_argument("--sink", help="only this sink (by name); paused and stopped sinks are skipped")
        send.add_argument(
            "--seconds", type=float, default=None, help="time budget (default SIEM_RUN_SECONDS)"
        )
        sub.add_parser("reencrypt", help="re-encrypt sink secrets under the newest FLK_ENCRYPTION_KEYS key")

    def handle(self, *args: Any, **options: Any) -> None:
        sinks = SiemSink.objects.select_related("tenant").order_by("name")
        if options.get("sink"):
            sinks = sinks.filter(name=options["sink"])
            if not sinks.exists():
                raise CommandError(f"no sink named {options['sink']!r}")
        if options["action"] == "reencrypt":
            self.stdout.write(f"re-encrypted {sink_secrets_reencrypt()} sink secret(s)")
        elif options["action"] == "status":
            self._status(list(sinks))
        else:
            self._send(list(sinks), options["seconds"] or settings.SIEM_RUN_SECONDS)

    def _status(self, sinks: list[SiemSink]) -> None:
        if not sinks:
            self.stdout.write("no SIEM sinks configured (add one in the admin: SIEM streaming > SIEM sinks)")
        for sink in sinks:
            scope = sink.tenant.slug if sink.tenant_id else "all tenants"
            self.stdout.write(f"{sink.name} ({sink.kind}, {scope}): {sink.state}")
            if sink.last_error:
                self.stdout.write(
                    f"  last error at {sink.last_error_at:%Y-%m-%d %H:%M:%S}: {sink.last_error}"
                )
            for p in sink_positions(sink=sink):
                self.stdout.write(f"  {p.tenant}: next seq {p.next_seq} of {p.head}, lag {p.lag}")

    def _send(self, sinks: list[SiemSink], seconds: float) -> None:
        deadline = time.monotonic() + seconds
        for sink in sinks:
            report = sink_deliver(sink=sink, deadline=deadline)
            if report.skipped:
                self.stdout.write(f"{sink.name}: skipped ({report.skipped})")
                continue
            line = f"{sink.name}: delivered {report.delivered} in {report.batches} batch(es)"
            if report.duplicates:
                line += f", {report.duplicates} already held by the SIEM"
            self.stdout.write(line + (f"; error: {report.error}" if report.error else ""))
