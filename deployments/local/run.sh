#!/usr/bin/env bash
# `make run`: the embedded default (SQLite, filesystem broker, local directories) with gunicorn, a
# Celery worker and beat in one foreground job. Ctrl-C stops all three.
set -euo pipefail
cd "$(dirname "$0")/../.."
PY=.venv/bin/python
export DJANGO_SETTINGS_MODULE=${DJANGO_SETTINGS_MODULE:-flk_project.settings.base}
export FLK_VAR_DIR=${FLK_VAR_DIR:-$PWD/var}
export PROMETHEUS_MULTIPROC_DIR=${PROMETHEUS_MULTIPROC_DIR:-$FLK_VAR_DIR/prometheus}
export FLK_BIND=${FLK_BIND:-127.0.0.1:8000}
mkdir -p "$FLK_VAR_DIR"
# Metrics files of an earlier run would add to this run's counters.
rm -rf "$PROMETHEUS_MULTIPROC_DIR" && mkdir -p "$PROMETHEUS_MULTIPROC_DIR"
if [ -z "${METRICS_PASS:-}" ]; then
  [ -f "$FLK_VAR_DIR/metrics_pass" ] || (umask 077; $PY -c 'import secrets; print(secrets.token_urlsafe(18))' > "$FLK_VAR_DIR/metrics_pass")
  METRICS_PASS=$(cat "$FLK_VAR_DIR/metrics_pass"); export METRICS_PASS
fi

$PY manage.py migrate --noinput -v 0
$PY manage.py flk_init
echo "[run] replaying the inbox WAL"
$PY manage.py wal replay

pids=()
cleanup() {
  trap - INT TERM EXIT
  echo "[run] stopping"
  kill "${pids[@]}" 2>/dev/null || true
  wait 2>/dev/null || true
}
trap cleanup INT TERM EXIT

.venv/bin/gunicorn -c deployments/gunicorn.conf.py flk_project.wsgi:application & pids+=($!)
.venv/bin/celery -A flk_project worker -Q default,wal,anchoring,audits --concurrency 1 --loglevel INFO & pids+=($!)
.venv/bin/celery -A flk_project beat --loglevel INFO & pids+=($!)

cat <<MSG

  FLK is running at http://$FLK_BIND/
    submit:   POST http://$FLK_BIND/v1/pcs/submit
    OpenAPI:  http://$FLK_BIND/v1/openapi.json
    metrics:  http://$FLK_BIND/metrics  (user ${METRICS_USER:-metrics}, password in $FLK_VAR_DIR/metrics_pass)
  Try it from another shell:
    .venv/bin/flk-agent demo --url http://$FLK_BIND --key-file $FLK_VAR_DIR/keys/hmac.key
  Ctrl-C stops the server, the worker and beat.

MSG
wait -n "${pids[@]}"
