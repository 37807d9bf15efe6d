"""Production settings: the base settings, tightened. Secrets have no defaults here."""

from __future__ import annotations

from flk_project.env import env_bool, env_str
from flk_project.settings.base import *  # noqa: F403

SECRET_KEY = env_str("DJANGO_SECRET_KEY", required=True)
DATABASE_URL = env_str("DATABASE_URL", required=True)
METRICS_PASS = env_str("METRICS_PASS", required=True)
AUDIT_SIGNING_KEY_B64 = env_str("AUDIT_SIGNING_KEY_B64", required=True)
FLK_ENCRYPTION_KEYS = [k for k in env_str("FLK_ENCRYPTION_KEYS", required=True).split(",") if k.strip()]
DEBUG = False
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SESSION_COOKIE_SECURE = env_bool("SESSION_COOKIE_SECURE", True)
CSRF_COOKIE_SECURE = env_bool("CSRF_COOKIE_SECURE", True)
BENCH_FLOOR_ENDPOINT = False
