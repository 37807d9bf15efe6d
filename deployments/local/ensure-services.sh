#!/usr/bin/env bash
# Make sure the services the test suite talks to answer on 127.0.0.1: PostgreSQL (trust auth for
# 127.0.0.1) and Redis, and that the headless browser for the admin tests and nginx (the front of
# `make run`, which the deployment tests start) are installed. Starts services that are installed
# but stopped; installs what is missing with apt-get.
set -euo pipefail

log() { printf '[services] %s\n' "$*"; }
apt_updated=0
apt_install() {
  if [ "$apt_updated" = 0 ]; then
    DEBIAN_FRONTEND=noninteractive apt-get update -qq
    apt_updated=1
  fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}

wait_for() {  # wait_for DESCRIPTION COMMAND...
  local what=$1; shift
  for _ in $(seq 1 60); do
    if "$@" >/dev/null 2>&1; then return 0; fi
    sleep 0.5
  done
  log "$what did not come up"; return 1
}

postgres_ready() { pg_isready -q -h 127.0.0.1 -p 5432 && psql -h 127.0.0.1 -U postgres -d postgres -Atc 'select 1' >/dev/null 2>&1; }

if ! postgres_ready; then
  if ! command -v pg_ctlcluster >/dev/null 2>&1; then
    log "installing PostgreSQL"
    apt_install postgresql postgresql-client
  fi
  version=$(ls /etc/postgresql | sort -V | tail -n 1)
  hba=/etc/postgresql/$version/main/pg_hba.conf
  if ! grep -q '^host all all 127.0.0.1/32 trust' "$hba"; then
    log "allowing trust auth from 127.0.0.1 (test machine only)"
    sed -i '1i host all all 127.0.0.1/32 trust\nhost all all ::1/128 trust' "$hba"
  fi
  log "starting PostgreSQL $version"
  pg_ctlcluster --skip-systemctl-redirect "$version" main start 2>/dev/null \
    || pg_ctlcluster --skip-systemctl-redirect "$version" main reload
  wait_for PostgreSQL postgres_ready
fi
log "PostgreSQL ready on 127.0.0.1:5432"

if ! redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1; then
  if ! command -v redis-server >/dev/null 2>&1; then
    log "installing Redis"
    apt_install redis-server
  fi
  log "starting Redis"
  mkdir -p /var/lib/redis /var/log/redis
  redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" --appendonly no \
    --dir /var/lib/redis --logfile /var/log/redis/ci.log
  wait_for Redis redis-cli -h 127.0.0.1 -p 6379 ping
fi
log "Redis ready on 127.0.0.1:6379"

# The admin's browser tests drive Debian's chromium headless (Playwright uses it; it downloads none).
if ! command -v chromium >/dev/null 2>&1; then
  log "installing chromium"
  apt_install chromium
fi
log "chromium: $(chromium --version 2>/dev/null | head -n 1)"

# nginx: `make run` and the deployment tests start their own nginx as the current user, with its
# configuration under var/; the system service the package sets up is not used.
if ! command -v nginx >/dev/null 2>&1 && [ ! -x /usr/sbin/nginx ]; then
  log "installing Debian's nginx package with apt-get: it adds /usr/sbin/nginx and /etc/nginx, and"
  log "where the init system allows it, enables and starts the nginx service on port 80 (FLK does not"
  log "use that service; 'systemctl disable --now nginx' stops it)"
  apt_install nginx
fi
nginx_bin=$(command -v nginx || echo /usr/sbin/nginx)
log "$("$nginx_bin" -v 2>&1) at $nginx_bin"
