"""The three vendors' wire formats, documented limits, and how to read their answers.

Each vendor turns events into request body parts (framed by a prefix, a separator and a suffix, so a
batch's size is known before it is built) and reads a response into one outcome per event. Limits are
the vendors' documented ones; a sink may configure lower ones, never higher (``limits_check``).

- Splunk HEC: ``POST /services/collector/event``, ``Authorization: Splunk <token>``, event objects
  ``{time, host, source, sourcetype, index, event, fields}`` concatenated. HEC has no idempotency key:
  the event id travels in ``event.event_id`` and as the indexed field ``fields.event_id``. The request
  size limit is limits.conf ``[http_input] max_content_length``, documented default 838,860,800 bytes.
- Datadog logs API v2: ``POST /api/v2/logs``, header ``DD-API-KEY``, a JSON array; at most 1,000 entries
  and 5 MB uncompressed per request, 1 MB per log (larger logs are truncated, so we refuse to send one);
  202 means accepted.
- Elasticsearch bulk: ``POST /_bulk``, NDJSON of ``{"create": {"_index", "_id"}}`` and the document;
  ``create`` with our id makes a redelivery answer 409 for that item, which is as good as delivered.
  ``errors: true`` means some items failed: only those with 429 or 5xx are retried. The request limit is
  ``http.max_content_length``, default 100 MB; bulk requests of a few MB are the usual advice.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from typing import Any

import httpx

from apps.siem.events import Event

DELIVERED, DUPLICATE, RETRY, REFUSED = "delivered", "duplicate", "retry", "refused"

# Statuses worth retrying: timeouts, rate limits, the server's own errors.
RETRYABLE_STATUSES = frozenset({408, 429, 500, 502, 503, 504})


class TooLarge(Exception):
    """The endpoint refused the request body as too large (413): send smaller batches."""


@dataclass(frozen=True)
class Answer:
    """What one response says: an outcome per event, and what to tell the operator if not all went."""

    outcomes: list[str]
    problem: str = ""


@dataclass(frozen=True)
class Vendor:
    """A vendor's format and limits. Subclasses fill in the request and the reading of its answer."""

    kind: str
    path: str
    content_type: str
    prefix: bytes
    separator: bytes
    suffix: bytes
    max_events: int
    max_bytes: int
    default_events: int
    default_bytes: int
    max_event_bytes: int | None = None
    option_defaults: tuple[tuple[str, Any], ...] = ()

    def options(self, configured: dict[str, Any]) -> dict[str, Any]:
        """The sink's options over this vendor's defaults."""
        return {**dict(self.option_defaults), **configured}

    def url(self, endpoint: str, options: dict[str, Any]) -> str:
        """Where batches are POSTed."""
        return endpoint.rstrip("/") + self.path

    def encode(self, event: Event, options: dict[str, Any]) -> bytes:  # pragma: no cover - abstract
        """One event's part of the body."""
        raise NotImplementedError

    def auth_headers(self, secret: str, options: dict[str, Any]) -> dict[str, str]:  # pragma: no cover
        """The headers that carry the secret."""
        raise NotImplementedError

    def body(self, parts: list[bytes]) -> bytes:
        """A request body of encoded parts."""
        return self.prefix + self.separator.join(parts) + self.suffix

    def body_size(self, part_sizes: int, count: int) -> int:
        """The size of a body of ``count`` parts whose lengths add up to ``part_sizes``."""
        return len(self.prefix) + len(self.suffix) + part_sizes + len(self.separator) * max(0, count - 1)

    def read(self, response: httpx.Response, count: int) -> Answer:
        """Outcomes of a response to a request of ``count`` events (one request, one fate)."""
        status = response.status_code
        if status == 413:
            raise TooLarge(_describe(response))
        if 200 <= status < 300:
            return Answer([DELIVERED] * count)
        outcome = RETRY if status in RETRYABLE_STATUSES else REFUSED
        return Answer([outcome] * count, _describe(response))


def _describe(response: httpx.Response) -> str:
    text = response.text[:300].strip()
    return f"HTTP {response.status_code} from {response.request.url.host}: {text}"


class SplunkHec(Vendor):
    """Splunk HTTP Event Collector, JSON event endpoint."""

    def encode(self, event: Event, options: dict[str, Any]) -> bytes:
        payload: dict[str, Any] = {
            "time": round(event.time, 3),
            "host": options["host"],
            "source": options["source"],
            "sourcetype": options["sourcetype"],
            "event": event.body,
            "fields": {"event_id": event.event_id, "tenant": event.body["tenant"]},
        }
        if options.get("index"):
            payload["index"] = options["index"]
        return _json(payload)

    def auth_headers(self, secret: str, options: dict[str, Any]) -> dict[str, str]:
        return {"Authorization": f"Splunk {secret}"}


class DatadogLogs(Vendor):
    """Datadog logs intake, API v2."""

    def url(self, endpoint: str, options: dict[str, Any]) -> str:
        base = endpoint or f"https://http-intake.logs.{options['site']}"
        return base.rstrip("/") + self.path

    def encode(self, event: Event, options: dict[str, Any]) -> bytes:
        body = event.body
        tags = [f"tenant:{body['tenant']}", f"kind:{body['kind']}", *_tags(options.get("tags"))]
        return _json(
            {
                "ddsource": options["ddsource"],
                "service": options["service"],
                "hostname": options["hostname"],
                "ddtags": ",".join(tags),
                "event_id": event.event_id,
                # Datadog parses a JSON message into attributes: the entry's facts become searchable.
                "message": json.dumps(body, separators=(",", ":"), ensure_ascii=False),
            }
        )

    def auth_headers(self, secret: str, options: dict[str, Any]) -> dict[str, str]:
        return {"DD-API-KEY": secret}


class ElasticBulk(Vendor):
    """Elasticsearch (and OpenSearch) bulk API with ``create`` actions."""

    def encode(self, event: Event, options: dict[str, Any]) -> bytes:
        action = {"create": {"_index": options["index"], "_id": event.event_id}}
        document = {"@timestamp": event.body["created_at"], **event.body}
        return _json(action) + b"\n" + _json(document) + b"\n"

    def auth_headers(self, secret: str, options: dict[str, Any]) -> dict[str, str]:
        if options["auth"] == "basic":
            return {"Authorization": "Basic " + base64.b64encode(secret.encode()).decode()}
        return {"Authorization": f"ApiKey {secret}"}

    def read(self, response: httpx.Response, count: int) -> Answer:
        if response.status_code != 200:
            return super().read(response, count)
        try:
            answer = response.json()
            items = [next(iter(item.values())) for item in answer["items"]]
        except (ValueError, KeyError, TypeError, StopIteration, AttributeError):
            return Answer(
                [REFUSED] * count, f"Elasticsearch answered 200 without bulk items: {_describe(response)}"
            )
        if len(items) != count:
            return Answer([RETRY] * count, f"Elasticsearch answered {len(items)} items for {count} sent")
        outcomes, problem = [], ""
        for item in items:
            status = int(item.get("status", 0))
            if 200 <= status < 300:
                outcomes.append(DELIVERED)
                continue
            if status == 409:
                outcomes.append(DUPLICATE)  # created by an earlier delivery of the same id
                continue
            outcomes.append(RETRY if status in RETRYABLE_STATUSES else REFUSED)
            # The first item that failed, with Elasticsearch's reason, is what the operator needs.
            problem = (
                problem or f"item {item.get('_id')} status {status}: {json.dumps(item.get('error'))[:300]}"
            )
        return Answer(outcomes, problem)


def _json(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode()


def _tags(tags: Any) -> list[str]:
    if isinstance(tags, str):
        return [t.strip() for t in tags.split(",") if t.strip()]
    return [str(t) for t in tags or []]


VENDORS: dict[str, Vendor] = {
    "splunk_hec": SplunkHec(
        kind="splunk_hec",
        path="/services/collector/event",
        content_type="application/json",
        prefix=b"",
        separator=b"\n",
        suffix=b"",
        max_events=10_000,
        max_bytes=838_860_800,  # limits.conf [http_input] max_content_length, documented default
        default_events=500,
        # 1,000,000 was max_content_length's default before it grew, and is still met on installations
        # configured then; a small request also makes a retry cheap.
        default_bytes=1_000_000,
        option_defaults=(
            ("host", "flk"),
            ("source", "flk:audit"),
            ("sourcetype", "flk:audit"),
            ("index", ""),
        ),
    ),
    "datadog": DatadogLogs(
        kind="datadog",
        path="/api/v2/logs",
        content_type="application/json",
        prefix=b"[",
        separator=b",",
        suffix=b"]",
        max_events=1_000,
        max_bytes=5_000_000,  # "5MB" uncompressed, read as the smaller, decimal megabytes
        default_events=1_000,
        default_bytes=5_000_000,
        max_event_bytes=1_000_000,  # Datadog truncates a larger log: refuse to send one instead
        option_defaults=(
            ("site", "datadoghq.com"),
            ("service", "flk"),
            ("ddsource", "flk"),
            ("hostname", "flk"),
            ("tags", []),
        ),
    ),
    "elasticsearch": ElasticBulk(
        kind="elasticsearch",
        path="/_bulk",
        content_type="application/x-ndjson",
        prefix=b"",
        separator=b"",
        suffix=b"",
        max_events=10_000,
        max_bytes=104_857_600,  # http.max_content_length, default 100 MB
        default_events=500,
        default_bytes=5_000_000,
        option_defaults=(("index", "flk-audit"), ("auth", "api_key")),
    ),
}

# Options an operator may set per kind, and the values some of them take.
OPTION_CHOICES: dict[str, dict[str, tuple[str, ...] | None]] = {
    "splunk_hec": {"host": None, "source": None, "sourcetype": None, "index": None},
    "datadog": {"site": None, "service": None, "ddsource": None, "hostname": None, "tags": None},
    "elasticsearch": {"index": None, "auth": ("api_key", "basic")},
}


def options_check(kind: str, options: dict[str, Any]) -> list[str]:
    """Problems with a sink's options for ``kind``, as sentences; empty when they are fine."""
    allowed = OPTION_CHOICES[kind]
    problems = [f"unknown option {name!r} for {kind}" for name in sorted(set(options) - set(allowed))]
    for name, value in options.items():
        if name not in allowed:
            continue
        if name == "tags":
            if not isinstance(value, (str, list)) or any(not isinstance(t, str) for t in value):
                problems.append("tags: a list of key:value strings, or one comma-separated string")
            continue
        if not isinstance(value, str):
            problems.append(f"{name}: a string")
        elif allowed[name] is not None and value not in allowed[name]:
            problems.append(f"{name}: one of {', '.join(allowed[name])}")
    if kind == "elasticsearch" and options.get("index", "x") == "":
        problems.append("index: an Elasticsearch index or data stream name")
    return problems


def limits_check(kind: str, max_events: int | None, max_bytes: int | None) -> list[str]:
    """Problems with a sink's batch limits: each must be at least 1 and at most the vendor's."""
    vendor = VENDORS[kind]
    problems = []
    if max_events is not None and not 1 <= max_events <= vendor.max_events:
        problems.append(f"max batch events: between 1 and {vendor.max_events} for {kind}")
    if max_bytes is not None and not 1_000 <= max_bytes <= vendor.max_bytes:
        problems.append(f"max batch bytes: between 1000 and {vendor.max_bytes} for {kind}")
    return problems
