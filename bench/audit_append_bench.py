"""Audit append cost at log sizes 1,000 and 100,000: an append must cost the same as the log grows.

On a scratch PostgreSQL database, two tenants' logs are filled to 1,000 and 100,000 entries (chained
correctly, written in bulk), then the same number of appends is timed on each, through the decision path
(one statement per decision) and through ``audit_append`` (the ORM path), and so is sealing the new
entries into a checkpoint. The 1,000-entry log is the baseline of the same run: the ratios 100k/1k are
the figures to read (1.0 is flat). Writes bench/results/audit-latest.{txt,json}.
"""

from __future__ import annotations

import os
import statistics
import sys
import time

from bench.stack import database_recreate, run_stamp, write_results

DB = "flk_bench_audit"
os.environ.update(
    DJANGO_SETTINGS_MODULE="flk_project.settings.bench",
    DATABASE_URL=f"postgres://postgres@127.0.0.1:5432/{DB}",
    LOG_LEVEL="WARNING",
)
os.environ.pop("REDIS_URL", None)
APPENDS = int(os.environ.get("BENCH_APPENDS", "300"))
SIZES = (1_000, 100_000)


def main() -> int:
    """Fill, time, report."""
    database_recreate(DB)
    import django

    django.setup()
    from django.core.management import call_command
    from django.utils import timezone

    from apps.audit.chain import GENESIS_HASH, content_hash, entry_content, link_hash
    from apps.audit.checkpoints import checkpoint_seal
    from apps.audit.models import AuditEntry, AuditLogHead
    from apps.audit.services import audit_append
    from apps.pcs.records import Decision, decision_insert
    from apps.tenants.models import Tenant

    call_command("migrate", verbosity=0)
    results = {}
    for size in SIZES:
        tenant = Tenant.objects.create(slug=f"log-{size}", name=f"log of {size}")
        print(f"[bench] filling a log to {size} entries")
        prev, rows = GENESIS_HASH, []
        for seq in range(size):
            now = timezone.now()
            content = entry_content(tenant_id=tenant.pk, kind="fill", actor="bench", created_at=now)
            digest = link_hash(prev, content_hash(content))
            rows.append(
                AuditEntry(
                    tenant=tenant,
                    kind="fill",
                    actor="bench",
                    created_at=now,
                    seq=seq,
                    prev_hash=prev,
                    entry_hash=digest,
                )
            )
            prev = digest
            if len(rows) == 5_000:
                AuditEntry.objects.bulk_create(rows)
                rows = []
        AuditEntry.objects.bulk_create(rows)
        AuditLogHead.objects.create(tenant=tenant, size=size, last_hash=prev, prev_hash=GENESIS_HASH)
        checkpoint_seal(tenant=tenant)  # the sealer's starting edge, as after earlier seals

        decision_ms, orm_ms = [], []
        for i in range(APPENDS):
            pcs = {"pcs_id": f"{size:032x}{i:032x}", "shard_id": "bench", "epoch": i}
            decision = Decision(
                tenant_id=tenant.pk,
                pcs=pcs,
                digest="ab" * 32,
                status=200,
                reason="",
                policy_version="1.0.0",
                d_hat=1.0,
                regime="mixed",
                budget=0.1,
                received_at=timezone.now(),
                actor="bench",
            )
            t = time.perf_counter()
            decision_insert(decision=decision, body={"pcs_id": pcs["pcs_id"]})
            decision_ms.append((time.perf_counter() - t) * 1000)
            t = time.perf_counter()
            audit_append(tenant_id=tenant.pk, kind="note", actor="bench")
            orm_ms.append((time.perf_counter() - t) * 1000)
        t = time.perf_counter()
        checkpoint_seal(tenant=tenant)
        seal_ms = (time.perf_counter() - t) * 1000
        results[size] = {
            "decision_append_ms": statistics.median(decision_ms),
            "audit_append_ms": statistics.median(orm_ms),
            "seal_new_entries_ms": seal_ms,
            "new_entries": 2 * APPENDS,
        }
    small, large = (results[s] for s in SIZES)
    ratios = {
        k: large[k] / small[k] for k in ("decision_append_ms", "audit_append_ms", "seal_new_entries_ms")
    }
    lines = [
        f"audit append cost, {APPENDS} appends of each kind per log size (median ms)",
        f"{'log size':>10}{'decision':>12}{'audit_append':>14}{'seal 2x' + str(APPENDS):>14}",
    ]
    for size in SIZES:
        r = results[size]
        lines.append(
            f"{size:>10}{r['decision_append_ms']:>12.3f}{r['audit_append_ms']:>14.3f}"
            f"{r['seal_new_entries_ms']:>14.1f}"
        )
    lines.append("ratio 100k/1k: " + ", ".join(f"{k} {v:.2f}" for k, v in ratios.items()))
    text = "\n".join(lines)
    print(text)
    write_results(
        "audit",
        text,
        {
            "when": run_stamp(),
            "appends": APPENDS,
            "results": {str(k): v for k, v in results.items()},
            "ratios": ratios,
        },
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
