"""gunicorn settings shared by `make run`, the tests and the benchmark; env overrides each value."""

import os
from pathlib import Path

bind = os.environ.get("FLK_BIND", "127.0.0.1:8000")
workers = int(os.environ.get("WEB_CONCURRENCY", "2"))
worker_class = os.environ.get("GUNICORN_WORKER_CLASS", "gthread")
# Ingest threads wait on fsync, PostgreSQL and Redis, and concurrent submissions of a process are
# written as one group (apps/pcs/commit.py): more threads make larger groups. `make bench` on this
# 2-core machine, same run: 16 threads answered 439 req/s at 64 connections (0.24 of the floor
# endpoint), 4 threads 178 req/s (0.15). Each thread that writes holds a database connection:
# up to WEB_CONCURRENCY x GUNICORN_THREADS per server, within PostgreSQL's max_connections.
threads = int(os.environ.get("GUNICORN_THREADS", "16"))
timeout = int(os.environ.get("GUNICORN_TIMEOUT", "30"))
graceful_timeout = 10
keepalive = 5
accesslog = os.environ.get("GUNICORN_ACCESSLOG") or None
errorlog = "-"


def on_starting(server):
    """Make sure the multiprocess metrics directory exists.

    Whoever starts the process group empties it first (stale files would add up): deployments/local/
    run.sh does, a container gets a fresh emptyDir.
    """
    directory = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if directory:
        Path(directory).mkdir(parents=True, exist_ok=True)


def child_exit(server, worker):
    """Let prometheus_client drop a dead worker's live gauges."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(worker.pid)
