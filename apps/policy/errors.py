"""The refusals a policy makes, in its own terms: the ingest app turns them into HTTP answers."""

from __future__ import annotations


class PolicyRefusal(Exception):
    """A PCS refused outright before any decision is stored: a failed sanity check, PII in block mode."""

    def __init__(self, code: str, detail: str, *, field: str) -> None:
        super().__init__(f"{code}: {detail}")
        self.code = code
        self.detail = detail
        self.field = field
