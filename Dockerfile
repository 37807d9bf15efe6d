# syntax=docker/dockerfile:1
# FLK: one image for the web process (gunicorn), the Celery workers and Celery beat; the command is
# chosen at run time (deployments/compose/compose.yaml, deployments/helm/flk). docs/deployment.md.
#
#   docker build -t flk:dev .
#   docker run --rm -p 8000:8000 --env-file my.env flk:dev                       # web (the default)
#   docker run --rm --env-file my.env flk:dev celery -A flk_project worker -Q default,wal
#   docker run --rm --env-file my.env flk:dev celery -A flk_project beat --schedule /tmp/celerybeat-schedule
#   docker run --rm --env-file my.env flk:dev python manage.py migrate --noinput
#
# No secret is baked in: DJANGO_SECRET_KEY, DATABASE_URL, METRICS_PASS, FLK_ENCRYPTION_KEYS and
# AUDIT_SIGNING_KEY_B64 are required at start by flk_project.settings.production and come from the
# environment (Compose's .env, Kubernetes Secrets).

ARG PYTHON_IMAGE=python:3.11-slim-bookworm

# --- 1. build: every pinned requirement and the SDK as wheels ----------------------------------------
FROM ${PYTHON_IMAGE} AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1
# A compiler for any pin that has no wheel for this platform; it stays in this stage.
RUN apt-get update \
    && apt-get install -y --no-install-recommends build-essential libffi-dev \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY requirements.txt ./
COPY sdk/python ./sdk/python
# requirements.txt installs the SDK editable from the tree (`-e ./sdk/python`); the image installs it as
# an ordinary wheel, built here from the same directory.
RUN grep -v '^-e ' requirements.txt > requirements.image.txt \
    && pip wheel --wheel-dir /wheels -r requirements.image.txt ./sdk/python

# --- 2. runtime: the wheels, the code, the collected static files; no compiler ------------------------
FROM ${PYTHON_IMAGE} AS runtime
# Sensible defaults; every one can be overridden at run time. FLK_VAR_DIR holds the collected static
# files (read-only at run time) and the WAL (a volume); PROMETHEUS_MULTIPROC_DIR sits on /tmp, which
# Compose and the chart mount as tmpfs/emptyDir so it starts empty.
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    DJANGO_SETTINGS_MODULE=flk_project.settings.production \
    FLK_VAR_DIR=/var/lib/flk \
    WAL_DIR=/var/lib/flk/wal \
    FLK_BIND=0.0.0.0:8000 \
    PROMETHEUS_MULTIPROC_DIR=/tmp/prometheus \
    WEB_CONCURRENCY=2 \
    GUNICORN_THREADS=4 \
    LOG_LEVEL=INFO

RUN groupadd --system --gid 10001 flk \
    && useradd --system --uid 10001 --gid flk --home-dir /app --no-create-home --shell /usr/sbin/nologin flk

COPY --from=build /wheels /wheels
RUN pip install --no-index --find-links /wheels /wheels/*.whl && rm -rf /wheels

WORKDIR /app
COPY --chown=root:root manage.py ./
COPY --chown=root:root flk_project ./flk_project
COPY --chown=root:root apps ./apps
COPY --chown=root:root tasks ./tasks
COPY --chown=root:root templates ./templates
COPY --chown=root:root docs ./docs
COPY --chown=root:root deployments/gunicorn.conf.py ./deployments/gunicorn.conf.py

# collectstatic at build time into $FLK_VAR_DIR/static. The settings would otherwise generate a secret
# key, an encryption key and an audit key into FLK_VAR_DIR: throwaway values are given for this one
# command, and anything else it left there is removed in the same layer, so no key reaches the image.
RUN mkdir -p "$FLK_VAR_DIR" \
    && DJANGO_SETTINGS_MODULE=flk_project.settings.base \
       DJANGO_SECRET_KEY=collectstatic-only-not-a-secret \
       FLK_ENCRYPTION_KEYS=Y29sbGVjdHN0YXRpYy1vbmx5LW5vdC1hLXNlY3JldCE= \
       AUDIT_SIGNING_KEY_B64=Y29sbGVjdHN0YXRpYy1vbmx5LW5vdC1hLXNlY3JldCE= \
       PROMETHEUS_MULTIPROC_DIR= \
       python manage.py collectstatic --noinput -v 0 \
    && find "$FLK_VAR_DIR" -mindepth 1 -maxdepth 1 ! -name static -exec rm -rf {} + \
    && mkdir -p "$WAL_DIR" \
    && chown flk:flk "$FLK_VAR_DIR" "$WAL_DIR"

USER 10001:10001
EXPOSE 8000

# Liveness of the web process. ALLOWED_HOSTS must contain "localhost" (Compose sets it); the worker
# and beat services of the Compose file replace this check with their own.
HEALTHCHECK --interval=15s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import urllib.request as r; r.urlopen(r.Request('http://127.0.0.1:8000/healthz', headers={'Host': 'localhost'}), timeout=4)"]

# The web process; workers and beat pass their own command. The multiprocess metrics directory is
# emptied first: files left by an earlier run of this container would add to its counters.
CMD ["sh", "-c", "rm -rf \"$PROMETHEUS_MULTIPROC_DIR\" && mkdir -p \"$PROMETHEUS_MULTIPROC_DIR\" && exec gunicorn -c deployments/gunicorn.conf.py flk_project.wsgi:application"]
