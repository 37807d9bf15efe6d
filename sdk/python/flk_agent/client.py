"""HTTP client for the FLK ingest API: timeouts, connection reuse, typed results."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import httpx

DEFAULT_TIMEOUT = httpx.Timeout(10.0, connect=3.0)


@dataclass(frozen=True)
class SubmitResult:
    """The server's answer to one submission."""

    status: int
    body: dict[str, Any]
    replayed: bool
    retry_after: float | None

    @property
    def accepted(self) -> bool:
        """200: verified and accepted."""
        return self.status == 200

    @property
    def escalated(self) -> bool:
        """202: verified but escalated for review."""
        return self.status == 202

    @property
    def error(self) -> str | None:
        """The server's error code for refusals, else None."""
        return self.body.get("error") if self.status >= 400 else None


class FlkClient:
    """Submit PCS to one FLK server; use as a context manager to close the connection pool."""

    def __init__(
        self, url: str, *, tenant: str | None = None, timeout: httpx.Timeout = DEFAULT_TIMEOUT
    ) -> None:
        headers = {"Content-Type": "application/json", "User-Agent": "flk-agent/0.1"}
        if tenant:
            headers["X-Tenant-Id"] = tenant
        self._http = httpx.Client(base_url=url.rstrip("/"), headers=headers, timeout=timeout)

    def submit(self, pcs: dict[str, Any] | bytes) -> SubmitResult:
        """POST one PCS (a dict, or raw bytes sent as they are) to /v1/pcs/submit."""
        body = pcs if isinstance(pcs, bytes) else json.dumps(pcs, ensure_ascii=False).encode()
        response = self._http.post("/v1/pcs/submit", content=body)
        try:
            data = response.json()
        except ValueError:
            data = {"error": "non_json_response", "detail": response.text[:200]}
        retry_after = response.headers.get("Retry-After")
        return SubmitResult(
            status=response.status_code,
            body=data,
            replayed=response.headers.get("Idempotent-Replayed") == "true",
            retry_after=float(retry_after) if retry_after else None,
        )

    def close(self) -> None:
        """Close pooled connections."""
        self._http.close()

    def __enter__(self) -> FlkClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
