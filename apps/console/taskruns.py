"""The last run of every Celery task, recorded by the worker that ran it (``TaskRun``).

Only worker processes record (``worker_init`` turns it on): tasks run eagerly by tests or shells leave
no rows. One UPDATE per finished task, on a row per task name, so the table stays as small as the list
of tasks. A database that cannot take the row never fails the task: the run is logged and goes on.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from celery import signals
from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone

from apps.console.models import TaskRun

logger = logging.getLogger("flk.console")

# Longest error text kept (the model's field); the worker's log has the whole traceback.
ERROR_CHARS = 500

_recording = False
_started: dict[str, tuple[float, Any]] = {}  # task id -> (monotonic start, wall-clock start)


def _on_worker_init(**_: Any) -> None:
    global _recording
    _recording = True


def _on_prerun(task_id: str | None = None, **_: Any) -> None:
    if _recording and task_id:
        _started[task_id] = (time.monotonic(), timezone.now())


def _on_postrun(
    task_id: str | None = None,
    task: Any = None,
    retval: Any = None,
    state: str | None = None,
    **_: Any,
) -> None:
    if not _recording or task is None:
        return
    began, started_at = _started.pop(task_id or "", (time.monotonic(), timezone.now()))
    try:
        task_run_record(
            task=task.name,
            state=state or "UNKNOWN",
            started_at=started_at,
            runtime_ms=int((time.monotonic() - began) * 1000),
            error=repr(retval)[:ERROR_CHARS] if state == TaskRun.FAILURE else "",
            hostname=str(getattr(task.request, "hostname", "") or ""),
        )
    except Exception as exc:  # recording is bookkeeping: it must never fail the task it records
        logger.warning("console.task_run_unrecorded task=%s error=%s", task.name, exc)


def task_run_record(
    *, task: str, state: str, started_at: Any, runtime_ms: int, error: str = "", hostname: str = ""
) -> None:
    """Store the latest run of ``task``: its start, end, state, runtime and (on failure) its error."""
    now = timezone.now()
    failed = state == TaskRun.FAILURE
    fields: dict[str, Any] = {
        "last_started_at": started_at,
        "last_finished_at": now,
        "last_state": state,
        "last_runtime_ms": runtime_ms,
        "last_error": error,
        "hostname": hostname[:200],
    }
    if state == TaskRun.SUCCESS:
        fields["last_success_at"] = now
    updated = TaskRun.objects.filter(task=task).update(
        runs=F("runs") + 1, failures=F("failures") + int(failed), **fields
    )
    if updated:
        return
    try:
        with transaction.atomic():
            TaskRun.objects.create(task=task, runs=1, failures=int(failed), **fields)
    except IntegrityError:  # another worker created it first
        TaskRun.objects.filter(task=task).update(
            runs=F("runs") + 1, failures=F("failures") + int(failed), **fields
        )


def connect() -> None:
    """Connect the signal handlers (``ConsoleConfig.ready``); weak=False keeps them alive."""
    signals.worker_init.connect(_on_worker_init, weak=False)
    signals.task_prerun.connect(_on_prerun, weak=False)
    signals.task_postrun.connect(_on_postrun, weak=False)
