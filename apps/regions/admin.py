"""The operator's view of replication: stopped sources, diverged targets, divergence, settlements."""

from __future__ import annotations

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest

from apps.regions.models import DivergenceStatus, Settlement, ShipTarget, SourceCursor
from apps.regions.reader import source_resume
from apps.regions.shipping import ship_target_reset


class _ReadOnly(admin.ModelAdmin):
    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False


@admin.register(SourceCursor)
class SourceCursorAdmin(_ReadOnly):
    list_display = ("source_region", "state", "manifest_seq", "covered_at", "chunks_replayed", "error")
    list_filter = ("state",)
    actions = ("resume",)

    @admin.action(description="Resume replay (after the bad chunk was repaired)")
    def resume(self, request: HttpRequest, queryset: QuerySet[SourceCursor]) -> None:
        for cursor in queryset:
            source_resume(source=cursor.source_region)
        messages.success(request, f"{queryset.count()} source(s) resumed")


@admin.register(ShipTarget)
class ShipTargetAdmin(_ReadOnly):
    list_display = ("bucket", "state", "manifest_seq", "control_version", "last_shipped_at", "error")
    actions = ("reset",)

    @admin.action(description="Ship again (after the divergence was resolved)")
    def reset(self, request: HttpRequest, queryset: QuerySet[ShipTarget]) -> None:
        for target in queryset:
            ship_target_reset(bucket=target.bucket)
        messages.success(request, f"{queryset.count()} target(s) reset")


@admin.register(DivergenceStatus)
class DivergenceStatusAdmin(_ReadOnly):
    list_display = ("peer_region", "share", "differing_cells", "cells", "conflicts", "computed_at")


@admin.register(Settlement)
class SettlementAdmin(_ReadOnly):
    list_display = ("tenant", "pcs_id", "conflict", "winner_region", "status_code", "audit_seq", "created_at")
    list_filter = ("conflict", "winner_region")
    search_fields = ("pcs_id",)
