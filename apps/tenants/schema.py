"""OpenAPI description of the tenant bearer token (drf-spectacular extension)."""

from __future__ import annotations

from drf_spectacular.extensions import OpenApiAuthenticationExtension


class TenantTokenScheme(OpenApiAuthenticationExtension):
    target_class = "apps.tenants.auth.TenantTokenAuthentication"
    name = "tenantToken"

    def get_security_definition(self, auto_schema: object) -> dict[str, str]:
        return {"type": "http", "scheme": "bearer", "description": "a per-tenant API token (flk_…)"}
