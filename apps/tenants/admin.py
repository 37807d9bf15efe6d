"""Operator views of tenants."""

from django.contrib import admin

from apps.tenants.models import Tenant


@admin.register(Tenant)
class TenantAdmin(admin.ModelAdmin):
    list_display = ("slug", "name", "active", "rate_per_second", "burst", "daily_quota", "created_at")
    list_filter = ("active",)
    search_fields = ("slug", "name")
