"""The refusals of the ingest pipeline, one exception carrying its HTTP status and error code."""

from __future__ import annotations

import json
from typing import Any


def encode_body(body: dict[str, Any]) -> str:
    """The one JSON encoding of answers: compact, UTF-8 kept as is, key order kept.

    Answers are stored in this form and replayed byte for byte.
    """
    return json.dumps(body, separators=(",", ":"), ensure_ascii=False)


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
    ) -> None:
        super().__init__(f"{status} {code}: {detail}")
        self.status = status
        self.code = code
        self.detail = detail
        self.field = field
        self.retry_after = retry_after

    def body(self) -> dict[str, str]:
        """The JSON answer: ``error``, ``detail`` and, for 400s, the ``field`` at fault."""
        out = {"error": self.code, "detail": self.detail}
        if self.field is not None:
            out["field"] = self.field
        return out
