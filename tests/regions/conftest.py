"""Fixtures for two regions: A in this process's test database, B in a copy of it.

Region B's database, buckets and command process are made once per session and emptied before each
test (starting Django costs seconds on a busy machine); its servers and workers are started by the
tests that need them.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator

import boto3
import pytest
from django.conf import settings as django_settings
from django.db import connection, connections

from apps.pcs import wal
from apps.regions import storage
from tests.regions.support import (
    BROKER_B_DB,
    REDIS_B_DB,
    CommandShell,
    LocalShell,
    Region,
    clone_database,
    drop_database,
    empty_bucket,
    empty_database,
    flush_redis,
    new_bucket,
    region_env,
)
from tests.support.s3 import S3_CREDENTIALS, S3_REGION


@pytest.fixture(scope="session")
def region_b_database(django_db_setup, django_db_blocker) -> Iterator[str]:
    """Region B's database: a copy of the freshly migrated test database, made once per session."""
    with django_db_blocker.unblock():
        template = connection.settings_dict["NAME"]
        name = f"{template}_b"
        connections.close_all()
        clone_database(template, name)
    yield name
    drop_database(name)


@pytest.fixture(scope="session")
def region_setup(s3_endpoint, region_b_database, tmp_path_factory) -> Iterator[dict]:
    """Buckets, WAL directories, environments and region B's command process, once per session."""
    os.environ.update(S3_CREDENTIALS)
    s3 = boto3.client("s3", endpoint_url=s3_endpoint, region_name=S3_REGION)
    bucket_a, bucket_b = new_bucket(s3, "a"), new_bucket(s3, "b")
    root = tmp_path_factory.mktemp("regions")
    wal_a, wal_b = root / "wal_a", root / "wal_b"
    base = django_settings.REDIS_URL.rsplit("/", 1)[0]
    db = connection.settings_dict
    env_b = region_env(
        region_id="b",
        bucket=bucket_b,
        remote=bucket_a,
        endpoint=s3_endpoint,
        wal_dir=wal_b,
        DATABASE_URL=f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{region_b_database}",
        REDIS_URL=f"{base}/{REDIS_B_DB}",
        CELERY_BROKER_URL=f"{base}/{BROKER_B_DB}",
    )
    env_a = region_env(region_id="a", bucket=bucket_a, remote=bucket_b, endpoint=s3_endpoint, wal_dir=wal_a)
    shell = CommandShell(env_b, root / "region-b-shell.log")
    yield {
        "s3": s3,
        "buckets": (bucket_a, bucket_b),
        "wal": (wal_a, wal_b),
        "env": (env_a, env_b),
        "shell": shell,
        "endpoint": s3_endpoint,
    }
    shell.close()


@pytest.fixture
def regions(transactional_db, settings, region_setup, region_b_database) -> Iterator[tuple[Region, Region]]:
    """Regions A (this process, the test database) and B (its own database, Redis db, WAL, bucket).

    A's settings are switched to region A, so services and commands called in the test act as A;
    processes started with ``a.env`` act as A too, and ``b.crr`` runs in region B's process.
    """
    setup = region_setup
    (bucket_a, bucket_b), (wal_a, wal_b), (env_a, env_b) = setup["buckets"], setup["wal"], setup["env"]
    for bucket in (bucket_a, bucket_b):
        empty_bucket(setup["s3"], bucket)
    for directory in (wal_a, wal_b):
        shutil.rmtree(directory, ignore_errors=True)
    empty_database(region_b_database)
    flush_redis(env_b["REDIS_URL"])
    flush_redis(env_b["CELERY_BROKER_URL"])
    setup["shell"].run("reset")
    settings.WAL_DIR = wal_a
    settings.REGION_ID = "a"
    settings.REGION_BUCKET = bucket_a
    settings.WAL_REMOTE_BUCKET = [bucket_b]
    settings.WAL_REPLICATION_ENABLED = True
    settings.CRR_S3_ENDPOINT_URL = setup["endpoint"]
    settings.CRR_S3_REGION = S3_REGION
    storage._client.cache_clear()
    wal.reset_writer()
    a = Region("a", bucket_a, env_a, connection.settings_dict["NAME"], wal_a, LocalShell())
    b = Region("b", bucket_b, env_b, region_b_database, wal_b, setup["shell"])
    yield a, b
    wal.reset_writer()


@pytest.fixture
def s3_regions(region_setup):
    """The boto3 client on the regions' S3 server."""
    return region_setup["s3"]
