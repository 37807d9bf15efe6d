"""A long-lived ``manage.py shell`` of region B that runs ``crr`` commands sent on stdin, one JSON line each.

Starting Django costs seconds on a busy machine; the tests start region B's command process once.
"""

from __future__ import annotations

import io
import json
import sys
import traceback

from django.core.management import call_command
from django.db import connections

from flk_project import caches

READY = "@@ready"
ANSWER = "@@answer "


def serve() -> None:
    """Answer ``["crr", "pull"]``-style commands, ``["reset"]`` and ``["exec", code]`` until stdin closes."""
    print(READY, flush=True)
    for line in sys.stdin:
        argv = json.loads(line)
        try:
            if argv == ["reset"]:
                caches.reset_all()
                connections.close_all()
                out: object = {"reset": True}
            elif argv[0] == "exec":  # test set-up in region B: the code sets ``result``
                namespace: dict[str, object] = {}
                exec(argv[1], namespace)
                out = namespace.get("result")
            else:
                buffer = io.StringIO()
                call_command(*argv, stdout=buffer)
                text = buffer.getvalue().strip()
                out = json.loads(text.splitlines()[-1]) if text else None
            answer = {"ok": True, "out": out}
        except BaseException:
            answer = {"ok": False, "error": traceback.format_exc()}
        print(ANSWER + json.dumps(answer, default=str), flush=True)
