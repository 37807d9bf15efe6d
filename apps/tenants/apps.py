from django.apps import AppConfig


class TenantsConfig(AppConfig):
    name = "apps.tenants"
    verbose_name = "Tenants"

    def ready(self) -> None:
        from apps.tenants import schema  # noqa: F401  registers the OpenAPI security scheme
