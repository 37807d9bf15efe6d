"""Where FLK may POST: https:// URLs that resolve to public addresses only (no SSRF into our network).

A tenant chooses the URL, so without these checks a tenant could make FLK's workers call the metadata
service, the database or anything else on the private network. The URL is checked when an endpoint is
registered, and the address again when a delivery connects: ``GuardedBackend`` resolves the host itself,
refuses if any address is not public, and connects to the address it checked, so a DNS answer that
changes between the check and the connection (DNS rebinding) gains nothing. TLS still verifies the
certificate against the URL's host name. ``WEBHOOK_ALLOW_HTTP`` and ``WEBHOOK_ALLOW_PRIVATE_NETWORKS``
lift the rules for development and tests.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Iterable
from urllib.parse import urlsplit, urlunsplit

import httpcore
from django.conf import settings

URL_MAX = 2000


class TargetRefused(ValueError):
    """FLK will not send to this URL; ``code`` is the API's error code, the message says why."""

    def __init__(self, code: str, detail: str) -> None:
        super().__init__(detail)
        self.code = code


IpAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


def address_is_public(address: IpAddress) -> bool:
    """True for a globally routable unicast address (not loopback, private, link-local, CGNAT, …)."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped  # ::ffff:127.0.0.1 is loopback too
    return address.is_global and not address.is_multicast


def resolve(host: str, port: int) -> list[IpAddress]:
    """Every address ``host`` resolves to (an IP literal resolves to itself)."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise TargetRefused("target_unresolvable", f"the host {host!r} does not resolve") from exc
    seen: list[IpAddress] = []
    for info in infos:
        address = ipaddress.ip_address(str(info[4][0]).split("%", 1)[0])
        if address not in seen:
            seen.append(address)
    return seen


def check_addresses(host: str, addresses: Iterable[IpAddress]) -> None:
    """Refuse unless every address is public, or private networks are allowed."""
    if settings.WEBHOOK_ALLOW_PRIVATE_NETWORKS:
        return
    private = [str(a) for a in addresses if not address_is_public(a)]
    if private:
        raise TargetRefused(
            "target_not_public",
            f"{host} resolves to a loopback, private or link-local address ({', '.join(private)}); "
            "webhooks go to public addresses only",
        )


def target_check(url: str) -> str:
    """The URL as it will be stored, or ``TargetRefused``: scheme, shape, then where it resolves."""
    if not isinstance(url, str) or not url.strip():
        raise TargetRefused("invalid_url", "a URL is required")
    url = url.strip()
    if len(url) > URL_MAX:
        raise TargetRefused("invalid_url", f"the URL is longer than {URL_MAX} characters")
    if any(ord(c) < 33 or ord(c) == 127 for c in url):
        raise TargetRefused("invalid_url", "the URL contains spaces or control characters")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise TargetRefused("invalid_url", f"not a URL: {exc}") from exc
    scheme = parts.scheme.lower()
    if scheme != "https" and not (scheme == "http" and settings.WEBHOOK_ALLOW_HTTP):
        raise TargetRefused("https_required", "webhook URLs must start with https://")
    if parts.username is not None or parts.password is not None:
        raise TargetRefused(
            "invalid_url", "credentials in the URL are not allowed; the signature authenticates"
        )
    host = parts.hostname
    if not host:
        raise TargetRefused("invalid_url", "the URL has no host")
    check_addresses(host, resolve(host, port or (443 if scheme == "https" else 80)))
    # Fragments never reach a server; dropping one keeps the stored URL what is sent.
    return urlunsplit((scheme, parts.netloc, parts.path or "/", parts.query, ""))


def url_for_audit(url: str) -> str:
    """The URL without its query: some receivers put a token there, and the audit log keeps forever."""
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, parts.path, "", ""))


class GuardedBackend(httpcore.SyncBackend):
    """httpcore's socket backend, connecting only to addresses ``check_addresses`` lets through."""

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[tuple] | None = None,
    ) -> httpcore.NetworkStream:
        addresses = resolve(host, port)
        check_addresses(host, addresses)
        last: Exception | None = None
        for address in addresses:
            try:
                return super().connect_tcp(str(address), port, timeout, local_address, socket_options)
            except httpcore.ConnectError as exc:
                last = exc
        raise last or httpcore.ConnectError(f"no address of {host} answered")
