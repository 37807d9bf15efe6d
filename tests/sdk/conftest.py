"""Fixtures of the SDK tests: a region that answers 503 (see failing_regions)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.sdk.failing_regions import UnavailableRegion, unavailable_region


@pytest.fixture
def unavailable() -> Iterator[UnavailableRegion]:
    """A local server standing in for a region that fails closed: every submission answers 503."""
    with unavailable_region() as region:
        yield region
