"""One HTTPS POST of a signed event: bounded in time and in what is read back, never a redirect.

httpcore (which httpx is built on) is used directly because its network backend is where the SSRF
guard has to sit (``apps.webhooks.targets.GuardedBackend``), and because a webhook must not follow
redirects: a 3xx is an answer like any other non-2xx, and a failed attempt.
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from functools import cache

import certifi
import httpcore
from django.conf import settings

from apps.webhooks.targets import GuardedBackend, TargetRefused

USER_AGENT = "FLK-Webhooks/1.0 (+https://github.com/flk; docs/webhooks.md)"
# What is kept of a receiver's answer: enough to read an error message, never a whole page.
EXCERPT_CHARS = 500
READ_LIMIT_BYTES = 4096


@dataclass(frozen=True)
class SendResult:
    """What one POST came to: a status code and an excerpt of the answer, or an error without one."""

    status_code: int | None
    excerpt: str = ""
    error: str = ""
    refused: bool = False

    @property
    def succeeded(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300


@cache
def _ssl_context(ca_bundle: str) -> ssl.SSLContext:
    # certifi by default (as httpx); WEBHOOK_CA_BUNDLE for a private CA or a test's own certificate.
    return ssl.create_default_context(cafile=ca_bundle or certifi.where())


def post(url: str, body: bytes, headers: dict[str, str]) -> SendResult:
    """POST ``body`` to ``url``; a network error or a refused target is a result, not an exception."""
    timeout = settings.WEBHOOK_TIMEOUT_SECONDS
    all_headers = {
        "Content-Type": "application/json",
        "User-Agent": USER_AGENT,
        "Connection": "close",
        **headers,
    }
    try:
        with (
            httpcore.ConnectionPool(
                ssl_context=_ssl_context(settings.WEBHOOK_CA_BUNDLE),
                network_backend=GuardedBackend(),
                max_connections=1,
            ) as pool,
            pool.stream(
                "POST",
                url,
                headers=list(all_headers.items()),
                content=body,
                extensions={
                    "timeout": {"connect": timeout, "read": timeout, "write": timeout, "pool": timeout}
                },
            ) as response,
        ):
            read = b""
            for chunk in response.iter_stream():
                read += chunk
                if len(read) >= READ_LIMIT_BYTES:
                    break  # the rest is not needed; closing the stream drops the connection
            excerpt = read[:READ_LIMIT_BYTES].decode("utf-8", errors="replace")[:EXCERPT_CHARS]
            return SendResult(response.status, excerpt)
    except TargetRefused as exc:
        return SendResult(None, error=str(exc)[:500], refused=True)
    except httpcore.TimeoutException as exc:
        return SendResult(None, error=f"timeout after {timeout:g} s ({type(exc).__name__})")
    except (httpcore.NetworkError, httpcore.ProtocolError, httpcore.UnsupportedProtocol, OSError) as exc:
        return SendResult(None, error=f"{type(exc).__name__}: {exc}"[:500])
