"""Celery tasks of the review app."""

from __future__ import annotations
