"""The console page: staff with the ``console.view_console`` permission; everyone else is refused."""

from __future__ import annotations

from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.utils import timezone

from apps.console import charts, selectors

PERMISSION = "console.view_console"


def _fmt_bytes(count: int | None) -> str:
    if count is None:
        return "–"
    size = float(count)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} TiB"


def console(request: HttpRequest) -> HttpResponse:
    """Charts of decisions, quotas, backlogs, tiers, regions and the last run of every scheduled task.

    Wrapped by ``admin.site.admin_view`` (``apps.console.urls``): anonymous users and non-staff go to the
    admin login; staff without the permission get 403 before anything is read.
    """
    if not request.user.has_perm(PERMISSION):
        raise PermissionDenied
    range_key = request.GET.get("range", selectors.DEFAULT_RANGE)
    if range_key not in selectors.RANGES:
        range_key = selectors.DEFAULT_RANGE
    now = timezone.now()
    buckets, tenants = selectors.decisions_over_time(range_key=range_key, now=now)
    label_format = "%m-%d %H:00" if selectors.RANGES[range_key][1] == "hour" else "%Y-%m-%d"
    decision_charts = [
        {
            "tenant": t,
            "totals": dict(zip(("accepted", "escalated", "rejected"), t.totals, strict=True)),
            "svg": charts.stacked_columns(buckets, t.counts, label_format=label_format),
        }
        for t in tenants
    ]
    quotas, quota_problem = selectors.quota_use()
    quota_svg = charts.hbars(
        [
            (
                q.slug,
                q.used,
                q.quota,
                f"{q.used} / {q.quota} ({100 * q.used / q.quota:.0f} %)"
                if q.quota
                else f"{q.used} (no quota)",
            )
            for q in quotas
        ],
        unlimited_colour=charts.UNLIMITED_COLOUR,  # a tenant without a quota: a count, not a share
    )
    backlog = selectors.backlogs()
    slugs = sorted(set(backlog.review) | set(backlog.audit) | set(backlog.dead_letters))

    def bars(values: dict[str, int]) -> object:
        return charts.hbars([(slug, values.get(slug, 0), None, str(values.get(slug, 0))) for slug in slugs])

    tiers = selectors.tier_sizes(now=now)
    tier_rows = [
        {
            "tier": tier,
            "bytes": _fmt_bytes(tier.bytes),
            "bytes_today": _fmt_bytes(tier.bytes_today),
        }
        for tier in tiers
    ]
    tier_svg = charts.hbars(
        [(tier.name.split(" ")[0], tier.records or 0, None, f"{tier.records or 0} records") for tier in tiers]
    )
    context = {
        **admin.site.each_context(request),
        "title": "Operator console",
        # The whole width for the charts; the admin's app list is one click away (Home).
        "is_nav_sidebar_enabled": False,
        "now": now,
        "ranges": [(key, label) for key, (_, _, label) in selectors.RANGES.items()],
        "range_key": range_key,
        "range_label": selectors.RANGES[range_key][2],
        "legend": charts.legend(),
        "decision_charts": decision_charts,
        "quota_svg": quota_svg,
        "quota_problem": quota_problem,
        "review_svg": bars(backlog.review),
        "audit_svg": bars(backlog.audit),
        "dead_letter_svg": bars(backlog.dead_letters),
        "dead_letters_open": sum(backlog.dead_letters.values()),
        "tier_rows": tier_rows,
        "tier_svg": tier_svg,
        "regions": selectors.region_status(now=now),
        "scheduled": selectors.scheduled_tasks(now=now),
    }
    return TemplateResponse(request, "console/console.html", context)
