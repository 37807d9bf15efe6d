"""Refusals of the review services, in the review's own terms; the API and the admin map them."""

from __future__ import annotations


class ReviewError(Exception):
    """A review operation that cannot be done as asked: ``code`` for machines, ``detail`` for people."""

    def __init__(self, code: str, detail: str, *, field: str | None = None) -> None:
        super().__init__(detail)
        self.code = code
        self.detail = detail
        self.field = field


class ReviewNotFound(ReviewError):
    """No escalated PCS with this id for this tenant."""


class ReviewConflict(ReviewError):
    """The item's state does not allow it: decided already, or claimed by another reviewer."""


class ReviewInvalid(ReviewError):
    """The request itself is wrong: an unknown outcome, a missing or too long reason."""
