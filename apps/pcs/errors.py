"""The refusals of the ingest pipeline, one exception carrying its HTTP status and error code."""

from __future__ import annotations

import json
from typing import Any


def encode_body(body: dict[str, Any]) -> str:
    """The one JSON encoding of answers: compact, UTF-8 kept as is, key order kept.

    Answers are stored in this form and replayed byte for byte.
    """
    return json.dumps(body, separators=(",", ":"), ensure_ascii=False)


MAX_ECHO_CHARS = 200


def printable(text: str) -> str:
    """``text`` made safe to echo in an answer or a log: lone surrogates escaped, length bounded.

    Error bodies name the field at fault, and a hostile body chooses its own field names: a lone
    surrogate in one would make the answer impossible to encode as UTF-8.
    """
    safe = text.encode("utf-8", "backslashreplace").decode("utf-8")
    return safe if len(safe) <= MAX_ECHO_CHARS else safe[: MAX_ECHO_CHARS - 1] + "…"


class IngestError(Exception):
    """A final answer other than a decision: 4xx or 503, with the body DESIGN §3 gives it."""

    def __init__(
        self,
        status: int,
        code: str,
        detail: str,
        *,
        field: str | None = None,
        retry_after: int | None = None,
        extra: dict[str, Any] | None = None,
    ) -> None:
        detail, field = printable(detail), printable(field) if field is not None else None
        super().__init__(f"{status} {code}: {detail}")
        self.status = status
        self.code = code
        self.detail = detail
        self.field = field
        self.retry_after = retry_after
        self.extra = extra or {}

    def body(self) -> dict[str, Any]:
        """The JSON answer: ``error``, ``detail``, for 400s the ``field`` at fault, and any extra keys."""
        out: dict[str, Any] = {"error": self.code, "detail": self.detail}
        if self.field is not None:
            out["field"] = self.field
        out.update(self.extra)
        return out
