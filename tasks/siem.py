"""Celery tasks of the siem app."""

from __future__ import annotations
