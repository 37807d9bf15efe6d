"""Benchmark settings: production-like stores plus the floor endpoint used as the baseline."""

from __future__ import annotations

from flk_project.settings.base import *  # noqa: F403

BENCH_FLOOR_ENDPOINT = True
