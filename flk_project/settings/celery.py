"""Celery settings: a broker that needs no server by default, one queue per concern."""

from __future__ import annotations

from flk_project.env import BASE_DIR, env_path, env_str

_VAR_DIR = env_path("FLK_VAR_DIR", BASE_DIR / "var")
_BROKER_DIR = _VAR_DIR / "broker"

CELERY_BROKER_URL = env_str("CELERY_BROKER_URL", "filesystem://")
CELERY_BROKER_TRANSPORT_OPTIONS: dict[str, object] = {}
if CELERY_BROKER_URL.startswith("filesystem://"):
    _BROKER_DIR.mkdir(parents=True, exist_ok=True)
    # The filesystem transport is a directory both sides poll; in and out are the same folder.
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(_BROKER_DIR),
        "data_folder_out": str(_BROKER_DIR),
        "processed_folder": str(_BROKER_DIR / "processed"),
        # Exchange tables; kombu's default is a "control" folder in the working directory.
        "control_folder": str(_BROKER_DIR / "control"),
        "store_processed": False,
    }
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_ACKS_LATE = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_DEFAULT_QUEUE = "default"
CELERY_BEAT_SCHEDULE_FILENAME = str(_VAR_DIR / "celerybeat-schedule")
CELERY_TIMEZONE = "UTC"
