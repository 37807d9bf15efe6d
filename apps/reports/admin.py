"""The operator's view of compliance reports: build one, watch its progress, download its bundle.

Building needs the permission ``reports.build_report`` and downloading ``reports.download_report``
(grant them to a group of compliance staff); a run is never edited or deleted, since it records what
was handed to auditors. The add form and the rebuild action call ``report_request``.
"""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse, StreamingHttpResponse
from django.urls import URLPattern, path, reverse
from django.utils.html import format_html

from apps.reports.bundle import bundle_chunks
from apps.reports.models import ReportRun
from apps.reports.services import ReportError, previous_month, report_request, report_request_check
from apps.tenants.models import Tenant


def _actor(request: HttpRequest) -> str:
    return f"admin:{request.user.get_username()}"


class ReportRequestForm(forms.ModelForm):
    """Tenant, framework and period (whole UTC days; the last day is included)."""

    first_day = forms.DateField(help_text="first day of the period (UTC)")
    last_day = forms.DateField(help_text="last day of the period, included (UTC)")

    class Meta:
        model = ReportRun
        fields = ["tenant", "framework"]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["tenant"].queryset = Tenant.objects.filter(active=True)
        start, end = previous_month(datetime.now(UTC).date())
        self.fields["first_day"].initial = start.date()
        self.fields["last_day"].initial = (end - timedelta(days=1)).date()

    def period(self) -> tuple[datetime, datetime]:
        """[start, end) in UTC from the whole days chosen."""
        data = self.cleaned_data
        end_day = data["last_day"] + timedelta(days=1)
        return datetime.combine(data["first_day"], time.min, UTC), datetime.combine(end_day, time.min, UTC)

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        if not self.errors:
            start, end = self.period()
            try:
                report_request_check(framework=data["framework"], period_start=start, period_end=end)
            except ReportError as exc:
                field = {"period_start": "first_day", "framework": "framework"}.get(exc.field, "last_day")
                raise forms.ValidationError({field: str(exc)}) from exc
        return data


@admin.register(ReportRun)
class ReportRunAdmin(admin.ModelAdmin):
    list_display = (
        "id",
        "tenant",
        "framework",
        "period",
        "state",
        "progress_bar",
        "size",
        "download",
        "created_by",
    )
    list_filter = ("state", "framework", "tenant")
    list_select_related = ("tenant",)
    actions = ["rebuild"]
    readonly_fields = (
        "tenant",
        "framework",
        "period_start",
        "period_end",
        "state",
        "progress_bar",
        "phase",
        "error",
        "bundle_location",
        "sha256",
        "size",
        "checkpoint",
        "previous_checkpoint",
        "created_by",
        "created_at",
        "started_at",
        "finished_at",
        "download",
    )

    # -- permissions: evidence is never edited or deleted ----------------------------------------

    def has_add_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("reports.build_report")

    def has_change_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False

    def has_view_permission(self, request: HttpRequest, obj: object = None) -> bool:
        user = request.user
        return user.has_perm("reports.view_reportrun") or user.has_perm("reports.build_report")

    # -- the build form -------------------------------------------------------------------------

    def get_form(self, request: HttpRequest, obj: Any = None, change: bool = False, **kwargs: Any) -> Any:
        if obj is None:
            kwargs["form"] = ReportRequestForm
            kwargs["fields"] = ["tenant", "framework", "first_day", "last_day"]
        return super().get_form(request, obj, change=change, **kwargs)

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        return self.readonly_fields if obj is not None else ()

    def get_fieldsets(self, request: HttpRequest, obj: Any = None) -> Any:
        if obj is None:
            return [(None, {"fields": ["tenant", "framework", "first_day", "last_day"]})]
        return super().get_fieldsets(request, obj)

    def save_model(self, request: HttpRequest, obj: ReportRun, form: Any, change: bool) -> None:
        start, end = form.period()
        run = report_request(
            tenant=form.cleaned_data["tenant"],
            framework=form.cleaned_data["framework"],
            period_start=start,
            period_end=end,
            created_by=_actor(request),
        )
        # The admin's messages and log name the run that was created.
        obj.__dict__.update({k: v for k, v in run.__dict__.items() if k != "_state"})
        obj._state.adding = False
        messages.info(request, f"Report #{run.pk} queued: its progress shows in the list.")

    def save_related(self, request: HttpRequest, form: Any, formsets: Any, change: bool) -> None:
        return None

    # -- list columns ---------------------------------------------------------------------------

    @admin.display(description="period (UTC)")
    def period(self, run: ReportRun) -> str:
        return f"{run.period_start:%Y-%m-%d} .. {run.period_end:%Y-%m-%d}"

    @admin.display(description="progress")
    def progress_bar(self, run: ReportRun) -> str:
        return format_html(
            '<progress max="100" value="{}" title="{}"></progress> {}% <small>{}</small>',
            run.progress,
            run.phase,
            run.progress,
            run.phase or run.state,
        )

    @admin.display(description="bundle")
    def download(self, run: ReportRun) -> str:
        if run.state != ReportRun.DONE:
            return "-"
        url = reverse("admin:reports_reportrun_download", args=[run.pk])
        return format_html('<a href="{}">download zip</a>', url)

    # -- actions and the download view ----------------------------------------------------------

    @admin.action(description="Build the selected reports again (a new run each)", permissions=["add"])
    def rebuild(self, request: HttpRequest, queryset: QuerySet[ReportRun]) -> None:
        for run in queryset.select_related("tenant"):
            new = report_request(
                tenant=run.tenant,
                framework=run.framework,
                period_start=run.period_start,
                period_end=run.period_end,
                created_by=_actor(request),
            )
            self.message_user(request, f"Report #{new.pk} queued (rebuild of #{run.pk}).", messages.INFO)

    def get_urls(self) -> list[URLPattern]:
        return [
            path(
                "<int:run_id>/download/",
                self.admin_site.admin_view(self.download_view),
                name="reports_reportrun_download",
            ),
            *super().get_urls(),
        ]

    def download_view(self, request: HttpRequest, run_id: int) -> HttpResponse:
        if not request.user.has_perm("reports.download_report"):
            raise PermissionDenied("downloading reports needs the permission reports.download_report")
        run = ReportRun.objects.select_related("tenant").filter(pk=run_id, state=ReportRun.DONE).first()
        if run is None:
            return HttpResponse("no finished report with this id", status=404, content_type="text/plain")
        try:
            chunks = bundle_chunks(run.bundle_location)
            first = next(chunks)
        except (OSError, StopIteration):
            return HttpResponse("the bundle cannot be read now", status=503, content_type="text/plain")
        response = StreamingHttpResponse(_prepend(first, chunks), content_type="application/zip")
        response["Content-Disposition"] = f'attachment; filename="{run.filename}"'
        response["Content-Length"] = str(run.size)
        return response


def _prepend(first: bytes, rest: Any) -> Any:
    yield first
    yield from rest
