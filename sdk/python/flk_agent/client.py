"""HTTP client for the FLK ingest API: timeouts, connection reuse, typed results."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import httpx

DEFAULT_TIMEOUT = httpx.Timeout(10.0, connect=3.0)
SUBMIT_PATH = "/v1/pcs/submit"
BATCH_PATH = "/v1/pcs/submit:batch"
# The batch envelope around the items: '{"items":[' and ']}'.
BATCH_ENVELOPE_BYTES = len(b'{"items":[]}')


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


class BatchAnswerError(ValueError):
    """A 200 answer to a batch that does not carry one well-formed result per item sent.

    Nothing about the items can be concluded from it; resending the batch is safe, because the
    server deduplicates every item on its pcs_id.
    """


@dataclass(frozen=True)
class BatchAnswer:
    """The server's answer to one batch.

    ``answer`` is the HTTP answer as a whole, typed as a single submission's answer is: a 200, or a
    refusal of the whole batch (400 not a batch, 401 unknown tenant, 413 too many items or bytes, 429,
    503 with ``retry_after``...). On 200, ``results`` holds one ``SubmitResult`` per item, in the order
    sent, each exactly what ``submit`` would have answered for that item; otherwise it is empty.
    """

    answer: SubmitResult
    results: tuple[SubmitResult, ...] = ()

    @property
    def ok(self) -> bool:
        """200: every item has its own result in ``results``."""
        return self.answer.status == 200

    @property
    def status(self) -> int:
        """The status of the batch as a whole."""
        return self.answer.status

    @property
    def error(self) -> str | None:
        """The server's error code when the whole batch was refused, else None."""
        return self.answer.error

    @property
    def retry_after(self) -> float | None:
        """Seconds the server asked to wait before resending the whole batch (429, 503)."""
        return self.answer.retry_after


def encode_pcs(pcs: dict[str, Any] | bytes) -> bytes:
    """The bytes a PCS is sent as: UTF-8 JSON of a dict, or raw bytes as they are."""
    return pcs if isinstance(pcs, bytes) else json.dumps(pcs, ensure_ascii=False).encode()


def _answer(response: httpx.Response) -> SubmitResult:
    try:
        data = response.json()
    except ValueError:
        data = None
    if not isinstance(data, dict):
        # A proxy's HTML error page, or JSON that is not an object: keep the status, say what came.
        data = {"error": "non_json_response", "detail": response.text[:200]}
    retry_after = response.headers.get("Retry-After")
    return SubmitResult(
        status=response.status_code,
        body=data,
        replayed=response.headers.get("Idempotent-Replayed") == "true",
        retry_after=_seconds(retry_after),
    )


def _seconds(value: Any) -> float | None:
    """A Retry-After in seconds, or None when absent or not a number of seconds."""
    if value is None or isinstance(value, bool):
        return None
    try:
        seconds = float(value)
    except (TypeError, ValueError):
        return None  # an HTTP-date, which this server never sends: the backoff alone decides
    return seconds if seconds >= 0 else None


def _item_result(item: Any) -> SubmitResult:
    if not (
        isinstance(item, dict)
        and isinstance(item.get("status"), int)
        and not isinstance(item.get("status"), bool)
        and isinstance(item.get("body"), dict)
    ):
        raise BatchAnswerError(f"a batch result is not {{status, body, replayed}}: {str(item)[:200]}")
    return SubmitResult(
        status=item["status"],
        body=item["body"],
        replayed=item.get("replayed") is True,
        retry_after=_seconds(item.get("retry_after")),
    )


def request_headers(tenant: str | None) -> dict[str, str]:
    """The headers of every request (the synchronous and the asyncio client send the same)."""
    headers = {"Content-Type": "application/json", "User-Agent": "flk-agent/0.1"}
    if tenant:
        headers["X-Tenant-Id"] = tenant
    return headers


def batch_body(pcs_list: Sequence[dict[str, Any] | bytes]) -> bytes:
    """The body of a batch request: ``{"items": [...]}`` with each PCS encoded as ``encode_pcs`` does."""
    if not pcs_list:
        raise ValueError("a batch holds at least one PCS")
    return b'{"items":[' + b",".join(encode_pcs(pcs) for pcs in pcs_list) + b"]}"


def batch_answer(response: httpx.Response, count: int) -> BatchAnswer:
    """A batch request's answer, typed; a 200 without ``count`` well-formed results raises."""
    answer = _answer(response)
    if answer.status != 200:
        return BatchAnswer(answer)
    results = answer.body.get("results")
    if not isinstance(results, list) or len(results) != count:
        found = len(results) if isinstance(results, list) else "no"
        raise BatchAnswerError(f"{found} results for {count} items")
    return BatchAnswer(answer, tuple(_item_result(item) for item in results))


def submit_answer(response: httpx.Response) -> SubmitResult:
    """A single submission's answer, typed (every HTTP status is an answer, none raises)."""
    return _answer(response)


def endpoints_of(url: str | Sequence[str]) -> list[str]:
    """Base URLs from one URL, a comma-separated list or a sequence; at least one."""
    parts = [url] if isinstance(url, str) else list(url)
    endpoints = [item.strip().rstrip("/") for part in parts for item in part.split(",") if item.strip()]
    if not endpoints:
        raise ValueError("no FLK endpoint given")
    return endpoints


class FlkClient:
    """Submit PCS to an FLK server, failing over between several endpoints (regions).

    ``url`` is one base URL, a comma-separated list of them, or a sequence. Each call goes to the
    current endpoint; on a connection failure (``httpx.TransportError``) or a 503 it moves to the next
    and sends the same bytes again, trying each endpoint at most once per call, and stays on the one
    that answered. Resending is safe because every region deduplicates on pcs_id and replicates its
    decisions to the others (docs/regions.md); what the outbox acks is decided once in effect. When
    every endpoint fails, the last 503 is returned or the last network error raised, for the
    delivery's backoff to handle. Use as a context manager to close the connection pools.
    """

    def __init__(
        self, url: str | Sequence[str], *, tenant: str | None = None, timeout: httpx.Timeout = DEFAULT_TIMEOUT
    ) -> None:
        self.endpoints = endpoints_of(url)
        self._clients = [
            httpx.Client(base_url=endpoint, headers=request_headers(tenant), timeout=timeout)
            for endpoint in self.endpoints
        ]
        self._current = 0
        self.failovers = 0  # moves to another endpoint, for tests and progress output

    @property
    def endpoint(self) -> str:
        """The base URL calls go to now."""
        return self.endpoints[self._current]

    def _post(self, path: str, content: bytes) -> httpx.Response:
        last_error: httpx.TransportError | None = None
        last_unavailable: httpx.Response | None = None
        for _ in range(len(self._clients)):
            try:
                response = self._clients[self._current].post(path, content=content)
            except httpx.TransportError as exc:
                last_error, last_unavailable = exc, None
            else:
                if response.status_code != 503 or len(self._clients) == 1:
                    return response
                last_error, last_unavailable = None, response
            self._current = (self._current + 1) % len(self._clients)
            self.failovers += 1
        if last_unavailable is not None:
            return last_unavailable
        assert last_error is not None
        raise last_error

    def submit(self, pcs: dict[str, Any] | bytes) -> SubmitResult:
        """POST one PCS (a dict, or raw bytes sent as they are) to /v1/pcs/submit.

        Network failures raise ``httpx.TransportError`` (once every endpoint failed); every HTTP
        answer is returned, typed.
        """
        return _answer(self._post(SUBMIT_PATH, encode_pcs(pcs)))

    def submit_batch(self, pcs_list: Sequence[dict[str, Any] | bytes]) -> BatchAnswer:
        """POST many PCS of this client's tenant to /v1/pcs/submit:batch in one request.

        Items are dicts, or raw bytes that are each one JSON value (inserted as they are). Network
        failures raise ``httpx.TransportError``, as for ``submit``; a 200 whose results do not match
        the items raises ``BatchAnswerError``; every other answer is returned as a ``BatchAnswer``.
        """
        return batch_answer(self._post(BATCH_PATH, batch_body(pcs_list)), len(pcs_list))

    def close(self) -> None:
        """Close pooled connections."""
        for client in self._clients:
            client.close()

    def __enter__(self) -> FlkClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
