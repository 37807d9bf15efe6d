"""Test settings: real PostgreSQL and Redis on 127.0.0.1 unless the environment names others."""

from __future__ import annotations

import os

os.environ.setdefault("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/flk")
os.environ.setdefault("REDIS_URL", "redis://127.0.0.1:6379/15")
os.environ.setdefault("CELERY_BROKER_URL", "redis://127.0.0.1:6379/14")
os.environ.setdefault("PCS_HMAC_KEY", "flk-test-hmac-secret")
os.environ.setdefault("METRICS_PASS", "test-metrics-pass")
# The live test server answers each request on a new thread: persistent connections would outlive
# those threads and keep the test database busy at teardown.
os.environ.setdefault("DB_CONN_MAX_AGE", "0")

from flk_project.env import env_list
from flk_project.settings.base import *  # noqa: F403

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]

# The 3-master Redis Cluster that `make test` starts (deployments/local/ensure-services.sh); the
# sharded-dedup tests (tests/cluster) point DEDUP_SHARDS at it.
FLK_TEST_REDIS_CLUSTER = env_list("FLK_TEST_REDIS_CLUSTER", "127.0.0.1:7001,127.0.0.1:7002,127.0.0.1:7003")
