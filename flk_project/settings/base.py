"""Base settings: everything env-driven, with embedded defaults that need no server.

Unset ``DATABASE_URL`` means SQLite in ``var/``; unset ``CELERY_BROKER_URL`` means kombu's filesystem
transport; unset ``REDIS_URL`` means the database dedup store. See docs/configuration.md.
"""

from __future__ import annotations

import secrets
from datetime import timedelta

import dj_database_url

from flk_project.env import BASE_DIR, env_bool, env_choice, env_float, env_int, env_list, env_path, env_str
from flk_project.redis_clients import parse_seeds

VAR_DIR = env_path("FLK_VAR_DIR", BASE_DIR / "var")
VAR_DIR.mkdir(parents=True, exist_ok=True)


def _local_secret_key() -> str:
    """A per-installation secret kept in var/, so the embedded default needs no configuration."""
    path = VAR_DIR / "django_secret_key"
    if not path.exists():
        path.write_text(secrets.token_urlsafe(50))
        path.chmod(0o600)
    return path.read_text().strip()


SECRET_KEY = env_str("DJANGO_SECRET_KEY") or _local_secret_key()
DEBUG = env_bool("DJANGO_DEBUG", False)
ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", "127.0.0.1,localhost,[::1]")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "drf_spectacular",
    # Swagger UI's own files, served by us: the API reference page loads nothing from a CDN.
    "drf_spectacular_sidecar",
    "django_prometheus",
    "axes",
    # Beat's schedule in the database, editable in the admin (seeded from tasks/schedule.py).
    "django_celery_beat",
    "apps.tenants",
    "apps.pcs",
    "apps.audit",
    "apps.policy",
    "apps.tiering",
    "apps.review",
    "apps.webhooks",
    "apps.reports",
    "apps.siem",
    "apps.regions",
    "apps.console",
]

MIDDLEWARE = [
    "django_prometheus.middleware.PrometheusBeforeMiddleware",
    "django.middleware.security.SecurityMiddleware",
    # Static files from the application server itself (make run has no other web server in front).
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    # Last, as django-axes asks: it turns a locked-out login into its lockout response.
    "axes.middleware.AxesMiddleware",
    "django_prometheus.middleware.PrometheusAfterMiddleware",
]

# Admin logins are throttled by django-axes: a username from one address is locked out after
# AXES_FAILURE_LIMIT failures for AXES_COOLOFF_MINUTES.
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]
AXES_FAILURE_LIMIT = env_int("AXES_FAILURE_LIMIT", 5)
AXES_COOLOFF_TIME = timedelta(minutes=env_int("AXES_COOLOFF_MINUTES", 15))
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True

ROOT_URLCONF = "flk_project.urls"
WSGI_APPLICATION = "flk_project.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

DATABASE_URL = env_str("DATABASE_URL") or f"sqlite:///{VAR_DIR / 'flk.sqlite3'}"
DATABASES = {"default": dj_database_url.parse(DATABASE_URL, conn_max_age=env_int("DB_CONN_MAX_AGE", 60))}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # WAL journal and a busy timeout let the web process, the worker and beat share one file.
    DATABASES["default"]["OPTIONS"] = {
        "timeout": 20,
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL;",
        "transaction_mode": "IMMEDIATE",
    }

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True
STATIC_URL = "static/"
STATIC_ROOT = VAR_DIR / "static"
# whitenoise serves STATIC_ROOT (filled by `manage.py collectstatic`, with gzip copies) and, through
# the finders, the apps' static files when collectstatic has not run: a fresh checkout, the test
# servers. No manifest storage here: its {% static %} fails for every file not collected. The empty
# directory spares every process whitenoise's "No directory at" warning before the first collectstatic.
STATIC_ROOT.mkdir(exist_ok=True)
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
}
WHITENOISE_USE_FINDERS = True
# Nothing is uploaded today. Named anyway because Django's test live server serves MEDIA_ROOT under
# MEDIA_URL, and the empty defaults would hand out any file of the working directory at its path
# (/docs/protocol.md as raw Markdown instead of the rendered page, /var/... as well).
MEDIA_URL = "media/"
MEDIA_ROOT = VAR_DIR / "media"

REST_FRAMEWORK = {
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_AUTHENTICATION_CLASSES": [],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.AllowAny"],
    "UNAUTHENTICATED_USER": None,
    "EXCEPTION_HANDLER": "flk_project.api_errors.api_exception_handler",
    # No ?format= override: the API speaks JSON only, and an unknown format must not become a 404.
    "URL_FORMAT_OVERRIDE": None,
}
SPECTACULAR_SETTINGS = {
    "TITLE": "FLK API",
    "DESCRIPTION": "Verification layer for signed Proof-of-Computation Summaries (PCS v0.1).",
    "VERSION": "0.1.0",
    "SERVE_INCLUDE_SCHEMA": False,
    # The API reference page (/api/docs/) uses the bundled Swagger UI and Redoc, never a CDN.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"event": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "event"}},
    "root": {"handlers": ["console"], "level": env_str("LOG_LEVEL", "INFO")},
}

# Tenant webhooks (docs/webhooks.md). Targets must be https:// and resolve to public addresses; the two
# switches below lift that for development and tests only. Retries back off exponentially from
# WEBHOOK_RETRY_BASE_SECONDS (with jitter, capped at WEBHOOK_RETRY_MAX_SECONDS) until
# WEBHOOK_MAX_ATTEMPTS; a rotated secret keeps signing beside the new one for WEBHOOK_SECRET_GRACE_HOURS.
WEBHOOK_ALLOW_HTTP = env_bool("WEBHOOK_ALLOW_HTTP", False)
WEBHOOK_ALLOW_PRIVATE_NETWORKS = env_bool("WEBHOOK_ALLOW_PRIVATE_NETWORKS", False)
WEBHOOK_CA_BUNDLE = env_str("WEBHOOK_CA_BUNDLE", "")
WEBHOOK_MAX_ATTEMPTS = env_int("WEBHOOK_MAX_ATTEMPTS", 8)
WEBHOOK_RETRY_BASE_SECONDS = env_float("WEBHOOK_RETRY_BASE_SECONDS", 60.0)
WEBHOOK_RETRY_MAX_SECONDS = env_float("WEBHOOK_RETRY_MAX_SECONDS", 6 * 3600.0)
WEBHOOK_TIMEOUT_SECONDS = env_float("WEBHOOK_TIMEOUT_SECONDS", 10.0)
WEBHOOK_SECRET_GRACE_HOURS = env_float("WEBHOOK_SECRET_GRACE_HOURS", 24.0)

# SIEM streaming (docs/siem.md). A run of the siem task streams every active sink for at most
# SIEM_RUN_SECONDS; a batch is tried SIEM_MAX_ATTEMPTS times within a run, waiting a full-jitter backoff
# from SIEM_BACKOFF_BASE_SECONDS up to SIEM_BACKOFF_MAX_SECONDS (or Retry-After); a sink that failed
# a run waits up to SIEM_RETRY_MAX_SECONDS before the next. Endpoints must be https (or loopback)
# unless SIEM_ALLOW_HTTP.
SIEM_RUN_SECONDS = env_float("SIEM_RUN_SECONDS", 25.0)
SIEM_MAX_ATTEMPTS = env_int("SIEM_MAX_ATTEMPTS", 5)
SIEM_BACKOFF_BASE_SECONDS = env_float("SIEM_BACKOFF_BASE_SECONDS", 0.5)
SIEM_BACKOFF_MAX_SECONDS = env_float("SIEM_BACKOFF_MAX_SECONDS", 10.0)
SIEM_RETRY_MAX_SECONDS = env_float("SIEM_RETRY_MAX_SECONDS", 300.0)
SIEM_HTTP_TIMEOUT_SECONDS = env_float("SIEM_HTTP_TIMEOUT_SECONDS", 10.0)
SIEM_ALLOW_HTTP = env_bool("SIEM_ALLOW_HTTP", False)

# Review queue of escalated PCS (apps.review; docs/review.md).
# How long a reviewer's claim holds an item before it returns to the queue.
REVIEW_CLAIM_SECONDS = env_int("REVIEW_CLAIM_SECONDS", 900)
# Longest reviewer's reason kept (the audit entry's details hold it whole).
REVIEW_REASON_MAX_CHARS = env_int("REVIEW_REASON_MAX_CHARS", 2000)
# Most PCS one bulk decision names.
REVIEW_BULK_MAX_ITEMS = env_int("REVIEW_BULK_MAX_ITEMS", 500)
# How far back each queue sync re-reads decisions: covers commit delay and clock skew between hosts.
REVIEW_SYNC_MARGIN_SECONDS = env_int("REVIEW_SYNC_MARGIN_SECONDS", 300)

# Compliance reports (apps.reports; docs/compliance.md). Bundles are zips written under REPORTS_DIR, or
# to S3 when REPORTS_BUCKET names a bucket (credentials from the usual boto3 environment).
REPORTS_DIR = env_path("REPORTS_DIR", VAR_DIR / "reports")
REPORTS_BUCKET = env_str("REPORTS_BUCKET", "")
REPORTS_S3_PREFIX = env_str("REPORTS_S3_PREFIX", "reports/")
REPORTS_S3_ENDPOINT_URL = env_str("REPORTS_S3_ENDPOINT_URL", "")
REPORTS_S3_REGION = env_str("REPORTS_S3_REGION", "")
# Frameworks the daily beat entry builds for the previous month, per active tenant.
REPORTS_MONTHLY_FRAMEWORKS = env_list("REPORTS_MONTHLY_FRAMEWORKS", "soc2,iso27001,hipaa,gdpr")

# Seed compatibility (docs/configuration.md, "Seed names"; flk_project.env maps the seed's variables).
# TENANTS: "slug:alg:key,..." tenants `manage.py flk_init` creates or updates at start (hmac: the key is
# the secret; ed25519: the public key, base64).
TENANTS = env_str("TENANTS", "")
# PII mode of tenants created from now on (the default tenant when created, TENANTS); empty: "detect".
TENANT_PII_MODE = env_str("TENANT_PII_MODE", "").strip().lower()
# The version decisions under the built-in policy record (a tenant's own policies have their own).
POLICY_BUILTIN_VERSION = env_str("POLICY_BUILTIN_VERSION", "1.0.0")
# HMAC secrets of the default tenant that still verify beside PCS_HMAC_KEY during a rotation.
PCS_HMAC_KEY_PREVIOUS = env_list("PCS_HMAC_KEY_PREVIOUS", "")

# Tiering (apps.tiering; docs/tiering.md). Hot: the Redis dedup store keeps a decided answer for
# TIER_HOT_TTL seconds (DEDUP_TTL_SECONDS is still honoured when TIER_HOT_TTL is unset). Warm: PcsRecord
# rows older than TIER_WARM_TTL seconds are demoted to the cold tier: S3 when TIER_COLD_BUCKET is set
# (endpoint and region as below, credentials from boto3's usual chain), else files under TIER_COLD_DIR.
# Cold records older than TIER_COLD_TTL seconds are evicted for good (0: kept forever).
TIER_HOT_TTL = env_int("TIER_HOT_TTL", env_int("DEDUP_TTL_SECONDS", 3600))
TIER_WARM_TTL = env_int("TIER_WARM_TTL", 7 * 24 * 3600)
TIER_COLD_TTL = env_int("TIER_COLD_TTL", 0)
TIER_COLD_BUCKET = env_str("TIER_COLD_BUCKET", "")
TIER_COLD_PREFIX = env_str("TIER_COLD_PREFIX", "pcs/")
TIER_COLD_S3_ENDPOINT_URL = env_str("TIER_COLD_S3_ENDPOINT_URL", "")
TIER_COLD_S3_REGION = env_str("TIER_COLD_S3_REGION", "")
TIER_COLD_DIR = env_path("TIER_COLD_DIR", VAR_DIR / "cold")
# Connect and read timeout of each cold-tier call; a lookup waits at most about twice this.
TIER_COLD_TIMEOUT_SECONDS = env_float("TIER_COLD_TIMEOUT_SECONDS", 5.0)
# zstd was measured smaller than gzip on real records (docs/tiering.md); gzip needs nothing beyond the
# standard library.
TIER_COLD_CODEC = env_choice("TIER_COLD_CODEC", "zstd", ("zstd", "gzip"))
# Records per demotion batch (one object each) and batches per run of the demotion task.
TIER_DEMOTE_BATCH = env_int("TIER_DEMOTE_BATCH", 2000)
TIER_DEMOTE_MAX_BATCHES = env_int("TIER_DEMOTE_MAX_BATCHES", 50)
TIER_DEMOTE_INTERVAL_SECONDS = env_float("TIER_DEMOTE_INTERVAL_SECONDS", 300.0)
# First retry delay of a demotion run that met an unavailable store (doubling, with jitter).
TIER_DEMOTE_RETRY_BACKOFF_SECONDS = env_int("TIER_DEMOTE_RETRY_BACKOFF_SECONDS", 10)
# TEST ONLY (fault tests): after a demotion batch reaches this step (copying, copied, verified,
# deleted) the task writes the step into TIER_TEST_PAUSE_FILE and sleeps, so a test can SIGKILL it.
TIER_TEST_PAUSE_AFTER = env_str("TIER_TEST_PAUSE_AFTER", "")
TIER_TEST_PAUSE_FILE = env_str("TIER_TEST_PAUSE_FILE", "")

# Regions (apps.regions; docs/regions.md). Each region ships its inbox WAL, control-plane snapshots and
# divergence digests to the other regions' buckets (WAL_REMOTE_BUCKET, comma-separated) and reads what
# they shipped from its own bucket (REGION_BUCKET), every CRR_SHIP_INTERVAL_SECONDS. Regions share
# FLK_ENCRYPTION_KEYS, so replicated HMAC secrets stay encrypted and still decrypt.
REGION_ID = env_str("REGION_ID", "local")
WAL_REPLICATION_ENABLED = env_bool("WAL_REPLICATION_ENABLED", False)
WAL_REMOTE_BUCKET = env_list("WAL_REMOTE_BUCKET", "")
REGION_BUCKET = env_str("REGION_BUCKET", "")
CRR_SHIP_INTERVAL_SECONDS = env_float("CRR_SHIP_INTERVAL_SECONDS", 30.0)
CRR_S3_ENDPOINT_URL = env_str("CRR_S3_ENDPOINT_URL", "")
CRR_S3_REGION = env_str("CRR_S3_REGION", "")
CRR_S3_TIMEOUT_SECONDS = env_float("CRR_S3_TIMEOUT_SECONDS", 5.0)
# A chunk holds at most this many bytes of one segment (a larger backlog ships as several chunks).
CRR_CHUNK_MAX_BYTES = env_int("CRR_CHUNK_MAX_BYTES", 8 * 1024 * 1024)
# Replayed requests decided per transaction (with the source's cursor): larger groups replay faster.
CRR_REPLAY_GROUP = env_int("CRR_REPLAY_GROUP", 200)
# Divergence: decided sets compared per tenant and CRR_DIFF_BUCKET_SECONDS of receive time, over the
# last CRR_DIFF_WINDOW_HOURS, every CRR_DIFF_INTERVAL_SECONDS.
CRR_DIFF_INTERVAL_SECONDS = env_float("CRR_DIFF_INTERVAL_SECONDS", 300.0)
CRR_DIFF_BUCKET_SECONDS = env_int("CRR_DIFF_BUCKET_SECONDS", 3600)
CRR_DIFF_WINDOW_HOURS = env_float("CRR_DIFF_WINDOW_HOURS", 48.0)

from flk_project.settings.celery import *  # noqa: E402,F403
from flk_project.settings.ingest import *  # noqa: E402,F403
from flk_project.settings.observability import *  # noqa: E402,F403

# Sharded hot store (docs/configuration.md, "Sharded dedup"; docs/runbooks/shard-migration.md): seed
# nodes (host:port,...) of a Redis Cluster. When set, the dedup store, the rate limiter, the failed-
# authentication limiter and the anomaly history use redis-py's cluster client on it instead of
# REDIS_URL (flk_project/redis_clients.py), and the dedup store is Redis unless DEDUP_BACKEND says
# otherwise. PostgreSQL's unique constraint stays the authority.
DEDUP_SHARDS = env_list("DEDUP_SHARDS", "")
if DEDUP_SHARDS:
    parse_seeds(DEDUP_SHARDS)  # a malformed seed fails at start
    if not env_str("DEDUP_BACKEND", ""):
        DEDUP_BACKEND = "redis"
