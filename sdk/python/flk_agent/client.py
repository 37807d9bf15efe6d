"""HTTP client for the FLK ingest API: timeouts, connection reuse, typed results."""

from __future__ import annotations

import json
from collections.abc import Generator, Sequence
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


# What one try of a call came back with: an HTTP answer, or the network error instead of one.
Outcome = httpx.Response | httpx.TransportError


class Failover:
    """Which endpoint a call goes to, and when it gives up: the one rule both clients follow.

    Each call starts at the current endpoint; a connection failure or a 503 moves to the next (in
    order, wrapping around) and the same bytes are sent there, each endpoint at most once per call;
    the endpoint that answered stays current for the next call. When every endpoint failed, the last
    outcome is the call's: a 503 is returned, a network error raised. With one endpoint, a 503 is
    simply returned. ``FlkClient`` and ``AsyncFlkClient`` only do the I/O of ``tries``.
    """

    def __init__(self, endpoints: Sequence[str]) -> None:
        self.endpoints = list(endpoints)
        self.current = 0
        self.failovers = 0  # moves to another endpoint, for tests and progress output

    def tries(self) -> Generator[int, Outcome, httpx.Response]:
        """One call: yields the index of the endpoint to send to and is sent what came back.

        Returns (as ``StopIteration.value``) the response to give the caller, or raises the last
        network error when every endpoint failed.
        """
        # From where this call started, not from ``current`` as other calls in flight move it
        # (asyncio.gather, threads): each endpoint is tried once per call whatever they do.
        count = len(self.endpoints)
        start = self.current
        outcome: Outcome | None = None
        for step in range(count):
            index = (start + step) % count
            outcome = yield index
            if isinstance(outcome, httpx.Response) and (outcome.status_code != 503 or count == 1):
                self.current = index
                return outcome
            self.failovers += 1
        if isinstance(outcome, httpx.Response):
            return outcome  # the last endpoint tried answered 503: Retry-After is the backoff's
        assert outcome is not None
        raise outcome


class FailingOverClient:
    """What both clients tell of their endpoints (``FlkClient``, ``AsyncFlkClient``)."""

    endpoints: list[str]
    _failover: Failover

    @property
    def endpoint(self) -> str:
        """The base URL calls go to now."""
        return self.endpoints[self._failover.current]

    @property
    def failovers(self) -> int:
        """How many times a call moved to another endpoint, over this client's life."""
        return self._failover.failovers


class FlkClient(FailingOverClient):
    """Submit PCS to an FLK server, failing over between several endpoints (regions).

    ``url`` is one base URL, a comma-separated list of them, or a sequence. Each call goes to the
    current endpoint; on a connection failure (``httpx.TransportError``) or a 503 it moves to the next
    and sends the same bytes again, trying each endpoint at most once per call, and stays on the one
    that answered (``Failover``). Resending is safe because every region deduplicates on pcs_id and
    replicates its decisions to the others (docs/regions.md); what the outbox acks is decided once in
    effect. When every endpoint fails, the last 503 is returned or the last network error raised, for
    the delivery's backoff to handle. Use as a context manager to close the connection pools.
    """

    def __init__(
        self, url: str | Sequence[str], *, tenant: str | None = None, timeout: httpx.Timeout = DEFAULT_TIMEOUT
    ) -> None:
        self.endpoints = endpoints_of(url)
        self._failover = Failover(self.endpoints)
        self._clients = [
            httpx.Client(base_url=endpoint, headers=request_headers(tenant), timeout=timeout)
            for endpoint in self.endpoints
        ]

    def _post(self, path: str, content: bytes) -> httpx.Response:
        tries = self._failover.tries()
        index = next(tries)
        while True:
            outcome: Outcome
            try:
                outcome = self._clients[index].post(path, content=content)
            except httpx.TransportError as exc:
                outcome = exc
            try:
                index = tries.send(outcome)
            except StopIteration as stop:
                return stop.value

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
