"""Local HTTP receivers that speak the SIEM vendors' ingest formats, for the SIEM tests.

They stand in for Splunk's HTTP Event Collector, Datadog's logs intake (API v2) and Elasticsearch's bulk
API, which cannot run here (no network, no licences): the one kind of fake the test rules allow. Each is a
real threaded HTTP server on 127.0.0.1 and a free port that checks the authentication header, parses the
documented format strictly, enforces the documented limits (413 over the size limit, 400 on malformed
input, Datadog's 1,000-entry cap) and answers the way the vendor documents, so the code under test talks
real HTTP to something as strict as the real service in the ways it relies on.

What the vendors do is written from their public API documentation:
- Splunk HEC ``POST /services/collector/event``: ``Authorization: Splunk <token>`` (401 missing, 403
  invalid), concatenated JSON event objects with a non-empty ``event``; 200 ``{"text":"Success","code":0}``;
  400 ``Invalid data format``; 413 over ``max_content_length``; 503 when busy.
- Datadog ``POST /api/v2/logs``: header ``DD-API-KEY`` (403 otherwise), a JSON array of log objects,
  at most 1,000 entries and 5 MB uncompressed per request (413 over the size), logs over 1 MB truncated;
  202 ``{}`` when accepted.
- Elasticsearch ``POST /_bulk``: ``Authorization: ApiKey …`` or Basic (401 otherwise), NDJSON of action
  and source lines ending in a newline; ``create`` of an existing ``_id`` fails that item with 409
  ``version_conflict_engine_exception``; the answer is 200 with ``errors`` and one item per action; 413
  over ``http.max_content_length``.

Tests can make a receiver fail the next N requests (any status, with ``Retry-After``), answer slowly, hold
one response until told to let go (to kill a sender while its request is in flight), or, for
Elasticsearch, fail chosen items with 429. Everything received is recorded with its event id.
"""

from __future__ import annotations

import base64
import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

SPLUNK_MAX_CONTENT_LENGTH = 838_860_800  # limits.conf [http_input] max_content_length default
DATADOG_MAX_BYTES = 5_000_000
DATADOG_MAX_ENTRIES = 1_000
DATADOG_MAX_LOG_BYTES = 1_000_000
ELASTIC_MAX_CONTENT_LENGTH = 100 * 1024 * 1024  # http.max_content_length default


@dataclass
class Request:
    """One request as the receiver answered it."""

    at: float
    status: int
    size: int
    events: int


@dataclass
class Reply:
    """An answer: status, JSON body, extra headers."""

    status: int
    body: Any
    headers: dict[str, str] = field(default_factory=dict)


class Receiver:
    """Base of the three receivers: the server, failure injection, holding, and the record."""

    path = "/"

    def __init__(self, token: str, *, max_bytes: int, delay: float = 0.0) -> None:
        self.token = token
        self.max_bytes = max_bytes
        self.delay = delay
        self.lock = threading.Lock()
        self.requests: list[Request] = []
        self.received: list[tuple[str, dict[str, Any]]] = []  # (event id, what arrived), in order
        self._failures: list[Reply] = []
        self._hold_at: int | None = None
        self.held = threading.Event()
        self._release = threading.Event()
        self.server: ThreadingHTTPServer | None = None

    # -- what tests set up -------------------------------------------------------------------------

    def fail_next(self, count: int, status: int = 503, retry_after: str | None = None) -> None:
        """Answer the next ``count`` authenticated requests with ``status`` and store nothing."""
        headers = {"Retry-After": retry_after} if retry_after is not None else {}
        with self.lock:
            self._failures += [Reply(status, self.error_body(status), headers) for _ in range(count)]

    def hold_once_after(self, events: int) -> None:
        """The first request that brings the store to ``events`` or more waits for ``release`` to answer."""
        self._hold_at = events

    def release(self) -> None:
        """Let a held response go."""
        self._release.set()

    # -- what tests read ----------------------------------------------------------------------------

    @property
    def ids(self) -> list[str]:
        """Event ids stored, in arrival order, repeats included."""
        with self.lock:
            return [eid for eid, _ in self.received]

    @property
    def url(self) -> str:
        """The base URL a sink is configured with."""
        assert self.server is not None
        host, port = self.server.server_address[:2]
        return f"http://{host}:{port}"

    # -- the vendor's side ----------------------------------------------------------------------------

    def error_body(self, status: int) -> Any:  # pragma: no cover - overridden
        return {"status": status}

    def authenticate(self, headers: Any) -> Reply | None:  # pragma: no cover - overridden
        """None when the credentials are right, else the vendor's refusal."""
        raise NotImplementedError

    def accept(
        self, body: bytes, headers: Any
    ) -> tuple[Reply, list[tuple[str, dict[str, Any]]]]:  # pragma: no cover
        """Parse and store a body: the answer and the events stored."""
        raise NotImplementedError

    def too_large(self, size: int) -> Reply:
        return Reply(413, self.error_body(413))

    def handle(self, path: str, headers: Any, body: bytes) -> tuple[Reply, int]:
        """The answer to a POST and how many events it stored."""
        if path.split("?")[0] != self.path:
            return Reply(404, self.error_body(404)), 0
        refusal = self.authenticate(headers)
        if refusal is not None:
            return refusal, 0
        with self.lock:
            if self._failures:
                return self._failures.pop(0), 0
        if len(body) > self.max_bytes:
            return self.too_large(len(body)), 0
        reply, stored = self.accept(body, headers)
        with self.lock:
            self.received += stored
            total = len(self.received)
        if self._hold_at is not None and total >= self._hold_at:
            self._hold_at = None
            self.held.set()
            self._release.wait(timeout=60)
        if self.delay:
            time.sleep(self.delay)
        return reply, len(stored)

    # -- the server ---------------------------------------------------------------------------------

    @contextmanager
    def running(self) -> Iterator[Receiver]:
        """Serve on 127.0.0.1 and a free port until the block ends."""
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                length = self.headers.get("Content-Length")
                if length is None or not length.isdigit():
                    self._answer(Reply(411, receiver.error_body(411)), 0, 0)
                    return
                body = self.rfile.read(int(length))
                reply, events = receiver.handle(self.path, self.headers, body)
                self._answer(reply, len(body), events)

            def _answer(self, reply: Reply, size: int, events: int) -> None:
                with receiver.lock:
                    receiver.requests.append(Request(time.monotonic(), reply.status, size, events))
                data = json.dumps(reply.body).encode()
                try:
                    self.send_response(reply.status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    for name, value in reply.headers.items():
                        self.send_header(name, value)
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the sender is gone (killed while we held its answer)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        thread.start()
        try:
            yield self
        finally:
            self._release.set()
            self.server.shutdown()
            self.server.server_close()
            thread.join(timeout=5)


def _objects(body: bytes) -> list[Any]:
    """Concatenated JSON values (HEC's batch format); ValueError when it is not that."""
    text = body.decode("utf-8")
    decoder = json.JSONDecoder()
    values, index = [], 0
    while True:
        while index < len(text) and text[index] in " \t\r\n":
            index += 1
        if index == len(text):
            return values
        value, index = decoder.raw_decode(text, index)
        values.append(value)


class SplunkHecReceiver(Receiver):
    """Splunk HTTP Event Collector's JSON event endpoint."""

    path = "/services/collector/event"

    def __init__(self, token: str, *, max_bytes: int = SPLUNK_MAX_CONTENT_LENGTH, delay: float = 0.0) -> None:
        super().__init__(token, max_bytes=max_bytes, delay=delay)

    def error_body(self, status: int) -> Any:
        texts = {503: (9, "Server is busy"), 413: (27, "Content too large"), 404: (404, "Not found")}
        code, text = texts.get(status, (8, "Internal server error"))
        return {"text": text, "code": code}

    def authenticate(self, headers: Any) -> Reply | None:
        scheme, _, token = (headers.get("Authorization") or "").partition(" ")
        if not token:
            return Reply(401, {"text": "Token is required", "code": 2})
        if scheme != "Splunk" or token != self.token:
            return Reply(403, {"text": "Invalid token", "code": 4})
        return None

    def accept(self, body: bytes, headers: Any) -> tuple[Reply, list[tuple[str, dict[str, Any]]]]:
        try:
            values = _objects(body)
        except (UnicodeDecodeError, ValueError):
            return Reply(400, {"text": "Invalid data format", "code": 6}), []
        if not values:
            return Reply(400, {"text": "No data", "code": 5}), []
        stored = []
        for number, value in enumerate(values):
            ok = (
                isinstance(value, dict)
                and value.get("event") not in (None, "", {})
                and isinstance(value.get("time", 0), (int, float))
                and isinstance(value.get("fields", {}), dict)
            )
            if not ok:
                return Reply(
                    400, {"text": "Invalid data format", "code": 6, "invalid-event-number": number}
                ), []
            event = value["event"]
            eid = event.get("event_id") if isinstance(event, dict) else None
            if not eid or value.get("fields", {}).get("event_id") != eid:
                # Not HEC's rule but this test's: every FLK event carries its id twice.
                return Reply(400, {"text": "event_id missing", "code": 6, "invalid-event-number": number}), []
            stored.append((eid, value))
        return Reply(200, {"text": "Success", "code": 0}), stored


class DatadogLogsReceiver(Receiver):
    """Datadog's logs intake, API v2."""

    path = "/api/v2/logs"

    def __init__(self, token: str, *, max_bytes: int = DATADOG_MAX_BYTES, delay: float = 0.0) -> None:
        super().__init__(token, max_bytes=max_bytes, delay=delay)
        self.truncated = 0

    def error_body(self, status: int) -> Any:
        return {"errors": [{"status": str(status), "title": "error"}]}

    def authenticate(self, headers: Any) -> Reply | None:
        if headers.get("DD-API-KEY") != self.token:
            return Reply(403, {"errors": ["Forbidden"]})
        return None

    def accept(self, body: bytes, headers: Any) -> tuple[Reply, list[tuple[str, dict[str, Any]]]]:
        try:
            logs = json.loads(body)
        except (UnicodeDecodeError, ValueError):
            return Reply(400, {"errors": ["Malformed JSON"]}), []
        if isinstance(logs, dict):
            logs = [logs]
        if not isinstance(logs, list) or not logs:
            return Reply(400, {"errors": ["Expected a log or an array of logs"]}), []
        if len(logs) > DATADOG_MAX_ENTRIES:
            return Reply(400, {"errors": [f"At most {DATADOG_MAX_ENTRIES} logs per request"]}), []
        stored = []
        for log in logs:
            if not isinstance(log, dict) or not isinstance(log.get("message"), str):
                return Reply(400, {"errors": ["Each log is an object with a message"]}), []
            if len(json.dumps(log).encode()) > DATADOG_MAX_LOG_BYTES:
                self.truncated += 1
            eid = log.get("event_id") or json.loads(log["message"]).get("event_id")
            stored.append((eid, log))
        return Reply(202, {}), stored


class ElasticsearchReceiver(Receiver):
    """Elasticsearch's bulk API, with create semantics per ``_id`` and per-item answers."""

    path = "/_bulk"

    def __init__(
        self,
        token: str,
        *,
        max_bytes: int = ELASTIC_MAX_CONTENT_LENGTH,
        delay: float = 0.0,
        basic: tuple[str, str] | None = None,
    ) -> None:
        super().__init__(token, max_bytes=max_bytes, delay=delay)
        self.basic = basic
        self.docs: dict[tuple[str, str], dict[str, Any]] = {}
        self.conflicts = 0
        self._reject_items: dict[str, list[int]] = {}

    def reject_items_once(self, ids: list[str], status: int = 429) -> None:
        """The next bulk request containing each of ``ids`` fails that item alone with ``status``."""
        with self.lock:
            for eid in ids:
                self._reject_items.setdefault(eid, []).append(status)

    def error_body(self, status: int) -> Any:
        kinds = {413: "content_too_long_exception", 429: "es_rejected_execution_exception"}
        return {"error": {"type": kinds.get(status, "exception"), "reason": "injected"}, "status": status}

    def authenticate(self, headers: Any) -> Reply | None:
        header = headers.get("Authorization") or ""
        scheme, _, credentials = header.partition(" ")
        ok = scheme == "ApiKey" and credentials == self.token
        if self.basic is not None and scheme == "Basic":
            ok = credentials == base64.b64encode(":".join(self.basic).encode()).decode()
        if not ok:
            error = {"type": "security_exception", "reason": "unable to authenticate"}
            return Reply(401, {"error": error, "status": 401})
        return None

    def accept(self, body: bytes, headers: Any) -> tuple[Reply, list[tuple[str, dict[str, Any]]]]:
        content_type = (headers.get("Content-Type") or "").split(";")[0].strip()
        if content_type not in ("application/x-ndjson", "application/json"):
            return Reply(406, self.error_body(406)), []
        bad = Reply(
            400, {"error": {"type": "illegal_argument_exception", "reason": "malformed"}, "status": 400}
        )
        if not body.endswith(b"\n"):
            return bad, []
        try:
            lines = [json.loads(line) for line in body.decode().split("\n")[:-1]]
        except (UnicodeDecodeError, ValueError):
            return bad, []
        if len(lines) % 2 or not lines:
            return bad, []
        items, stored, errors = [], [], False
        with self.lock:
            for action, doc in zip(lines[::2], lines[1::2], strict=True):
                meta = action.get("create") if isinstance(action, dict) and len(action) == 1 else None
                if (
                    not isinstance(meta, dict)
                    or not meta.get("_index")
                    or not meta.get("_id")
                    or not isinstance(doc, dict)
                ):
                    return bad, []
                key = (meta["_index"], meta["_id"])
                item = {"_index": key[0], "_id": key[1]}
                rejections = self._reject_items.get(key[1])
                if rejections:
                    status = rejections.pop(0)
                    item.update(status=status, error=self.error_body(status)["error"])
                    errors = True
                elif key in self.docs:
                    self.conflicts += 1
                    item.update(
                        status=409,
                        error={
                            "type": "version_conflict_engine_exception",
                            "reason": "document already exists",
                        },
                    )
                    errors = True
                else:
                    self.docs[key] = doc
                    stored.append((key[1], doc))
                    item.update(status=201, result="created")
                items.append({"create": item})
        return Reply(200, {"took": 1, "errors": errors, "items": items}), stored
