"""Every queue a task is declared on is consumed by the worker `make run` starts."""

from __future__ import annotations

import importlib
import re

from flk_project.celery import app
from tasks.base import TASK_QUEUES
from tests.support.make_run import RUN_SH


def test_make_run_worker_consumes_every_declared_queue():
    for module in app.conf.imports:  # what a worker imports at start, declaring its tasks
        importlib.import_module(module)
    (queues,) = re.findall(r"celery -A flk_project worker -Q (\S+)", RUN_SH.read_text())
    declared = set(TASK_QUEUES.values())
    assert declared, "no task declared a queue: the task modules were not imported"
    assert declared <= set(queues.split(",")), f"declared {sorted(declared)}, consumed {queues}"
