"""Ingest settings: tenancy, signing keys, WAL, dedup, limits and the default policy tolerances."""

from __future__ import annotations

from django.core.exceptions import ImproperlyConfigured

from flk_project.env import BASE_DIR, env_bool, env_choice, env_float, env_int, env_list, env_path, env_str

_VAR_DIR = env_path("FLK_VAR_DIR", BASE_DIR / "var")

REDIS_URL = env_str("REDIS_URL")


def _local_encryption_keys() -> list[str]:
    """The embedded default keeps one Fernet key in var/; production must set FLK_ENCRYPTION_KEYS."""
    from cryptography.fernet import Fernet

    path = _VAR_DIR / "encryption_key"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.touch(mode=0o600)
        path.write_text(Fernet.generate_key().decode())
    return [path.read_text().strip()]


# Fernet keys for secrets at rest, newest first (comma-separated).
FLK_ENCRYPTION_KEYS = env_list("FLK_ENCRYPTION_KEYS", "") or _local_encryption_keys()


def _local_audit_key() -> str:
    """The embedded default's Ed25519 seed for signing audit checkpoints, kept in var/ (0600)."""
    import base64
    import secrets

    path = _VAR_DIR / "audit_signing_key"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.touch(mode=0o600)
        path.write_text(base64.b64encode(secrets.token_bytes(32)).decode())
    return path.read_text().strip()


# Ed25519 private key seed (base64, 32 bytes) that signs audit checkpoints; production must set it.
AUDIT_SIGNING_KEY_B64 = env_str("AUDIT_SIGNING_KEY_B64") or _local_audit_key()
# Checkpoint origins are "<AUDIT_LOG_ORIGIN>/<tenant slug>"; the note's key name is the same string.
AUDIT_LOG_ORIGIN = env_str("AUDIT_LOG_ORIGIN", "flk.local/audit")

# Write-once directory that sealed checkpoints are anchored to (files made read-only).
AUDIT_ANCHOR_DIR = env_path("AUDIT_ANCHOR_DIR", _VAR_DIR / "anchors")
# S3 with Object Lock instead of the directory, when a bucket is named. The bucket must have Object Lock
# enabled (anchoring refuses one without); credentials come from boto3's usual chain (env, profile, role).
AUDIT_ANCHOR_S3_BUCKET = env_str("AUDIT_ANCHOR_S3_BUCKET", "")
AUDIT_ANCHOR_S3_PREFIX = env_str("AUDIT_ANCHOR_S3_PREFIX", "checkpoints/")
AUDIT_ANCHOR_S3_ENDPOINT_URL = env_str("AUDIT_ANCHOR_S3_ENDPOINT_URL", "")
AUDIT_ANCHOR_S3_REGION = env_str("AUDIT_ANCHOR_S3_REGION", "")
AUDIT_ANCHOR_LOCK_MODE = env_choice(
    "AUDIT_ANCHOR_LOCK_MODE", "compliance", ("compliance", "governance")
).upper()
AUDIT_ANCHOR_RETENTION_DAYS = env_int("AUDIT_ANCHOR_RETENTION_DAYS", 2557)  # seven years

# async_audit: entries re-verified per tenant per run, and attempts before an entry is dead-lettered.
AUDIT_REVERIFY_BATCH = env_int("AUDIT_REVERIFY_BATCH", 2000)
AUDIT_REVERIFY_MAX_ATTEMPTS = env_int("AUDIT_REVERIFY_MAX_ATTEMPTS", 5)

# How long a rotated-out signing key keeps verifying, unless the rotation names another window.
KEY_ROTATION_OVERLAP_HOURS = env_float("KEY_ROTATION_OVERLAP_HOURS", 24.0)

MULTI_TENANT = env_bool("MULTI_TENANT", False)
# How long a process trusts its cached view of a tenant (active flag, limits).
TENANT_CACHE_SECONDS = env_float("TENANT_CACHE_SECONDS", 5.0)
DEFAULT_TENANT_ID = env_str("DEFAULT_TENANT_ID", "default")

# Single-tenant signing key (the default tenant's): an HMAC secret or an Ed25519 public key.
PCS_SIGN_ALG = env_choice("PCS_SIGN_ALG", "hmac", ("hmac", "ed25519"))
PCS_HMAC_KEY = env_str("PCS_HMAC_KEY")
PCS_HMAC_KEY_FILE = env_path("PCS_HMAC_KEY_FILE", _VAR_DIR / "keys" / "hmac.key")
PCS_ED25519_PUB_B64 = env_str("PCS_ED25519_PUB_B64")
PCS_KEY_ID = env_str("PCS_KEY_ID")

WAL_DIR = env_path("WAL_DIR", _VAR_DIR / "wal")
WAL_FSYNC = env_choice("WAL_FSYNC", "always", ("always", "group", "off"))
WAL_GROUP_WINDOW_MS = env_float("WAL_GROUP_WINDOW_MS", 2.0)
WAL_SEGMENT_BYTES = env_int("WAL_SEGMENT_BYTES", 64 * 1024 * 1024)
WAL_RETENTION_DAYS = env_float("WAL_RETENTION_DAYS", 14.0)
# Records younger than this are left to the request that wrote them; older ones are re-run.
WAL_REPLAY_GRACE_SECONDS = env_float("WAL_REPLAY_GRACE_SECONDS", 60.0)

# A Redis Cluster (DEDUP_SHARDS, parsed in base.py) serves the hot store as well as one node does.
_REDIS_CONFIGURED = bool(REDIS_URL or env_str("DEDUP_SHARDS"))
DEDUP_BACKEND = env_choice(
    "DEDUP_BACKEND", "redis" if _REDIS_CONFIGURED else "database", ("database", "redis", "memory")
)
if DEDUP_BACKEND == "redis" and not _REDIS_CONFIGURED:
    raise ImproperlyConfigured("DEDUP_BACKEND=redis needs REDIS_URL or DEDUP_SHARDS")
DEDUP_TTL_SECONDS = env_int("DEDUP_TTL_SECONDS", 14 * 24 * 3600)
# A claim older than this is treated as abandoned by a crashed request and may be taken over.
DEDUP_CLAIM_TIMEOUT_SECONDS = env_float("DEDUP_CLAIM_TIMEOUT_SECONDS", 30.0)
STORE_TIMEOUT_SECONDS = env_float("STORE_TIMEOUT_SECONDS", 2.0)
RETRY_AFTER_SECONDS = env_int("RETRY_AFTER_SECONDS", 5)

MAX_BODY_BYTES = env_int("MAX_BODY_BYTES", 64 * 1024)
# The batch endpoint's own body limit and item count.
BATCH_MAX_BODY_BYTES = env_int("BATCH_MAX_BODY_BYTES", 8 * 1024 * 1024)
BATCH_MAX_ITEMS = env_int("BATCH_MAX_ITEMS", 1000)

# The default tenant's limits; 0 switches a limit off.
RATE_LIMIT_RATE = env_float("RATE_LIMIT_RATE", 0.0)
RATE_LIMIT_BURST = env_int("RATE_LIMIT_BURST", 0)
DAILY_QUOTA = env_int("DAILY_QUOTA", 0)

# Failed authentications (unknown tenant, missing or wrong signature or VRF proof) allowed per tenant
# header and client address in each window before they are answered 429 auth_throttled. They never
# count against the tenant's own rate or quota.
AUTH_FAILURE_LIMIT = env_int("AUTH_FAILURE_LIMIT", 30)
AUTH_FAILURE_WINDOW_SECONDS = env_int("AUTH_FAILURE_WINDOW_SECONDS", 60)
# Behind a reverse proxy every connection comes from the proxy: name the header it sets with the
# client's address (nginx as shipped: X-Real-IP). Empty: the connection's own address.
PROXY_CLIENT_IP_HEADER = env_str("PROXY_CLIENT_IP_HEADER", "")

CLOCK_SKEW_MAX_SECONDS = env_float("CLOCK_SKEW_MAX_SECONDS", 900.0)

# A view that parses a PCS body and answers without verifying or storing, for `make bench` only.
BENCH_FLOOR_ENDPOINT = env_bool("BENCH_FLOOR_ENDPOINT", False)
