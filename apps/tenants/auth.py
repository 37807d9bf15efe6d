"""Bearer-token authentication for the read API: every request acts for exactly one tenant."""

from __future__ import annotations

from dataclasses import dataclass

from rest_framework.authentication import BaseAuthentication, get_authorization_header
from rest_framework.exceptions import AuthenticationFailed
from rest_framework.permissions import BasePermission
from rest_framework.request import Request

from apps.tenants.models import ApiToken, Tenant
from apps.tenants.services import token_hash


@dataclass(frozen=True)
class TenantPrincipal:
    """Who a token speaks for. DRF wants a user; this one is a tenant."""

    tenant: Tenant
    token_prefix: str
    scope: str = ApiToken.SCOPE_READ
    is_authenticated: bool = True

    @property
    def actor(self) -> str:
        """How audit entries name a change made with this token."""
        return f"token:{self.token_prefix}"


class TenantTokenAuthentication(BaseAuthentication):
    """``Authorization: Bearer flk_…``; revoked tokens and inactive tenants are refused."""

    keyword = b"bearer"

    def authenticate(self, request: Request) -> tuple[TenantPrincipal, ApiToken] | None:
        parts = get_authorization_header(request).split()
        if not parts or parts[0].lower() != self.keyword:
            return None
        if len(parts) != 2:
            raise AuthenticationFailed("the Authorization header must be 'Bearer <token>'")
        token = (
            ApiToken.objects.select_related("tenant")
            .filter(token_hash=token_hash(parts[1].decode(errors="replace")), revoked_at__isnull=True)
            .first()
        )
        if token is None or not token.tenant.active:
            raise AuthenticationFailed("invalid or revoked token")
        return TenantPrincipal(token.tenant, token.prefix, token.scope), token

    def authenticate_header(self, request: Request) -> str:
        return 'Bearer realm="flk"'


class IsTenant(BasePermission):
    """Only requests authenticated with a tenant token."""

    def has_permission(self, request: Request, view: object) -> bool:
        return isinstance(request.user, TenantPrincipal)


class CanManagePolicy(BasePermission):
    """Reads for any tenant token; changes only with a ``policy``-scope token."""

    message = "this token may read policies; changing them needs a token of scope 'policy'"

    def has_permission(self, request: Request, view: object) -> bool:
        if not isinstance(request.user, TenantPrincipal):
            return False
        return request.method in ("GET", "HEAD", "OPTIONS") or request.user.scope == ApiToken.SCOPE_POLICY


class HasScope(BasePermission):
    """A tenant token of one scope; subclasses name it (``scope``) and say why in ``message``."""

    scope = ""
    message = ""

    def has_permission(self, request: Request, view: object) -> bool:
        return isinstance(request.user, TenantPrincipal) and request.user.scope == self.scope


class CanReview(HasScope):
    """Listing, claiming and deciding escalated PCS: a ``review``-scope token."""

    scope = ApiToken.SCOPE_REVIEW
    message = "reviewing escalated PCS needs a token of scope 'review'"


class CanBuildReports(HasScope):
    """Building and downloading compliance reports: a ``reports``-scope token."""

    scope = ApiToken.SCOPE_REPORTS
    message = "compliance reports need a token of scope 'reports'"
