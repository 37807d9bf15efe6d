#!/usr/bin/env bash
# `make run`: the embedded default (SQLite, filesystem broker, local directories) in one foreground
# job: nginx on FLK_BIND in front of gunicorn when nginx is installed (gunicorn alone otherwise), a
# Celery worker and beat. Ctrl-C or SIGTERM stops every process it started.
#
# Order matters: FLK_BIND is checked before anything is created, deleted or migrated, so a second
# `make run` aimed at a busy address leaves the running instance (its metrics, WAL, database) alone,
# and "FLK is running" is printed only once /healthz answers through the address users call.
set -euo pipefail
cd "$(dirname "$0")/../.."
PY=.venv/bin/python
PROBE=deployments/local/probe.py
export DJANGO_SETTINGS_MODULE=${DJANGO_SETTINGS_MODULE:-flk_project.settings.base}
export FLK_VAR_DIR=${FLK_VAR_DIR:-$PWD/var}
export PROMETHEUS_MULTIPROC_DIR=${PROMETHEUS_MULTIPROC_DIR:-$FLK_VAR_DIR/prometheus}
say() { printf '[run] %s\n' "$*"; }
# PORT, the seed's name, sets the port when FLK_BIND (ours, address and port) is not set.
if [ -n "${PORT:-}" ] && [ -n "${FLK_BIND:-}" ]; then say "both PORT and FLK_BIND are set: FLK_BIND wins"; fi
export FLK_BIND=${FLK_BIND:-127.0.0.1:${PORT:-8000}}

# 1. The address. probe.py explains a refusal itself (which address, why, what to type instead).
$PY "$PROBE" bind-check "$FLK_BIND" || exit 1

# 2. One `make run` per var directory: two would share the SQLite file, the WAL and the metrics
#    directory. The lock is held by every process started below (they inherit its descriptor).
mkdir -p "$FLK_VAR_DIR"
if command -v flock >/dev/null 2>&1; then
  exec 9>"$FLK_VAR_DIR/run.lock"
  if ! flock -n 9; then
    say "another make run is using $FLK_VAR_DIR; stop it first, or set FLK_VAR_DIR to another directory."
    exit 1
  fi
fi

# 3. The front: nginx when installed (Debian puts it in /usr/sbin, outside a normal user's PATH);
#    FLK_NGINX=off runs gunicorn alone anyway.
NGINX=$(command -v nginx 2>/dev/null || true)
if [ -z "$NGINX" ] && [ -x /usr/sbin/nginx ]; then NGINX=/usr/sbin/nginx; fi
no_nginx="nginx is not installed"
case "${FLK_NGINX:-auto}" in off | false | 0 | no) NGINX="" no_nginx="FLK_NGINX=off" ;; esac

# Metrics files of an earlier run would add to this run's counters.
rm -rf "$PROMETHEUS_MULTIPROC_DIR" && mkdir -p "$PROMETHEUS_MULTIPROC_DIR"
if [ -z "${METRICS_PASS:-}" ]; then
  [ -f "$FLK_VAR_DIR/metrics_pass" ] || (umask 077; $PY -c 'import secrets; print(secrets.token_urlsafe(18))' > "$FLK_VAR_DIR/metrics_pass")
  METRICS_PASS=$(cat "$FLK_VAR_DIR/metrics_pass"); export METRICS_PASS
fi

$PY manage.py migrate --noinput -v 0
# STATIC_ROOT ($FLK_VAR_DIR/static) for the admin's CSS and JS, which gunicorn serves.
$PY manage.py collectstatic --noinput -v 0
$PY manage.py flk_init
say "replaying the inbox WAL"
$PY manage.py wal replay

run_dir="$(cd "$FLK_VAR_DIR" && pwd)/run"
mkdir -p "$run_dir"
# gunicorn's control socket (for `gunicornc`) under var/ rather than its default in $HOME, which
# every gunicorn of this user shares. Socket paths are limited to 108 bytes on Linux.
control=(--control-socket "$run_dir/gunicorn.ctl")
if [ "${#run_dir}" -ge 96 ]; then control=(--no-control-socket); fi
gunicorn_bind=$FLK_BIND
gunicorn_env=()
if [ -n "$NGINX" ]; then
  # gunicorn on a unix socket under var/ (no port to collide with, nothing reachable from outside);
  # a loopback port when the path is too long for a socket address.
  if [ "${#run_dir}" -lt 96 ]; then
    rm -f "$run_dir/gunicorn.sock"
    gunicorn_bind="unix:$run_dir/gunicorn.sock"
  else
    gunicorn_bind="127.0.0.1:$($PY "$PROBE" free-port)"
  fi
  # nginx refuses oversized bodies with the application's own limits, read from its settings.
  read -r max_body batch_max_body retry_after < <(
    $PY -c 'from django.conf import settings as s
print(s.MAX_BODY_BYTES, s.BATCH_MAX_BODY_BYTES, s.RETRY_AFTER_SECONDS)'
  )
  nginx_dir="$FLK_VAR_DIR/nginx"
  $PY deployments/nginx/render.py --dir "$nginx_dir" --listen "$FLK_BIND" --upstream "$gunicorn_bind" \
    --max-body-bytes "$max_body" --batch-max-body-bytes "$batch_max_body" --retry-after "$retry_after" >/dev/null
  "$NGINX" -p "$nginx_dir" -c "$nginx_dir/nginx.conf" -e stderr -t -q
  # The application takes the client's address from the header nginx sets (it overwrites any
  # X-Real-IP a client sends), not from the socket, whose peer is nginx.
  gunicorn_env=(PROXY_CLIENT_IP_HEADER=X-Real-IP)
fi

# Each process runs in its own session and process group (setsid): Ctrl-C reaches run.sh alone,
# which then stops every group once, with SIGTERM. Celery beat, signalled by the terminal and then
# again by this script, could hang on its way out; and a group takes the whole tree down (gunicorn's
# and nginx's workers, Celery's pool) when SIGKILL is needed.
pids=()
names=()
probe=""
stopped=0
start() {  # start NAME COMMAND...: run in the background in a new process group, remembered
  names+=("$1"); shift
  setsid "$@" &
  pids+=($!)
}
any_alive() {
  local pid
  for pid in "${pids[@]}"; do kill -0 -- "-$pid" 2>/dev/null && return 0; done
  return 1
}
stop_all() {
  [ "$stopped" = 1 ] && return
  stopped=1
  trap - INT TERM HUP EXIT
  say "stopping"
  local i pid deadline=$((SECONDS + 20))
  if [ -n "$probe" ]; then kill "$probe" 2>/dev/null || true; fi
  for pid in "${pids[@]}"; do kill -TERM -- "-$pid" 2>/dev/null || true; done
  while any_alive && [ "$SECONDS" -lt "$deadline" ]; do sleep 0.2; done
  # Whatever has not stopped by then (a Celery task that would not finish) is killed: nothing of
  # this job may outlive it.
  for i in "${!pids[@]}"; do
    pid=${pids[$i]}
    kill -0 -- "-$pid" 2>/dev/null || continue
    say "${names[$i]} still running after 20 s, killing it"
    kill -KILL -- "-$pid" 2>/dev/null || true
  done
  wait 2>/dev/null || true
  rm -f "$run_dir/gunicorn.sock" "$run_dir/gunicorn.ctl"
}
trap 'stop_all; exit 130' INT
trap 'stop_all; exit 143' TERM
trap 'stop_all; exit 129' HUP
trap stop_all EXIT

start gunicorn env "${gunicorn_env[@]}" .venv/bin/gunicorn -c deployments/gunicorn.conf.py \
  --bind "$gunicorn_bind" "${control[@]}" flk_project.wsgi:application
start worker .venv/bin/celery -A flk_project worker -Q default,wal,anchoring,audits,webhooks,siem,reports,tiering,crr --concurrency 1 --loglevel INFO
start beat .venv/bin/celery -A flk_project beat --scheduler apps.console.beat:SeededDatabaseScheduler --loglevel INFO

# Waits run in the background so that a signal is handled at once, not after the wait.
wait_until() {  # wait_until wait-listening|wait-healthz ADDRESS
  $PY "$PROBE" "$1" "$2" --timeout 120 --watch "${pids[@]}" &
  probe=$!
  wait "$probe"
}
if [ -n "$NGINX" ]; then
  # nginx only once gunicorn listens, so that its first requests do not fail to connect.
  if ! wait_until wait-listening "$gunicorn_bind"; then
    say "gunicorn did not start listening on $gunicorn_bind; the messages above say why."
    exit 1
  fi
  start nginx "$NGINX" -p "$nginx_dir" -c "$nginx_dir/nginx.conf" -e stderr
  arrangement="nginx on $FLK_BIND reads each request whole, then passes it to gunicorn on $gunicorn_bind"
else
  arrangement="gunicorn serves $FLK_BIND directly"
  say "$no_nginx: gunicorn serves $FLK_BIND alone, and a dozen slow clients can hold all its threads;" \
    "install nginx (sudo apt-get install nginx) and make run puts it in front."
fi
if ! wait_until wait-healthz "$FLK_BIND"; then
  say "FLK did not answer http://$FLK_BIND/healthz; the messages above say why."
  exit 1
fi

cat <<MSG

  FLK is running at http://$FLK_BIND/
    $arrangement
    submit:   POST http://$FLK_BIND/v1/pcs/submit
    OpenAPI:  http://$FLK_BIND/v1/openapi.json
    metrics:  http://$FLK_BIND/metrics  (user ${METRICS_USER:-metrics}, password in $FLK_VAR_DIR/metrics_pass)
  Try it from another shell:
    .venv/bin/flk-agent demo --url http://$FLK_BIND --key-file $FLK_VAR_DIR/keys/hmac.key
  Ctrl-C stops everything make run started.

MSG
status=0
wait -n -p done_pid "${pids[@]}" || status=$?
for i in "${!pids[@]}"; do
  if [ "${pids[$i]}" = "${done_pid:-}" ]; then
    # nginx, gunicorn and Celery exit 0 when someone stops them, non-zero when they fail.
    if [ "$status" = 0 ]; then say "${names[$i]} stopped"; else say "${names[$i]} failed (exit status $status)"; fi
  fi
done
exit "$status"
