#!/usr/bin/env bash
# Make sure what the test suite needs on this machine is there: PostgreSQL answering on 127.0.0.1:5432
# with trust auth for loopback clients, Redis on 127.0.0.1:6379, Debian's chromium (the admin's
# browser tests drive it headless) and nginx (the front of `make run`, which the deployment tests
# start as the current user).
#
# A 3-master Redis Cluster on 127.0.0.1:7001-7003 (the sharded hot store, DEDUP_SHARDS) is started too,
# as the current user, with its data under $FLK_REDIS_CLUSTER_DIR (default /tmp/flk-redis-cluster).
#
# Every change to the machine is announced on its own line, with its reason, before it is made; when
# nothing needs changing the script prints nothing. Running it again changes nothing more.
#
# Not started here, on purpose: the S3 API the tests use is moto's server mode, which the tests start
# themselves on a free loopback port (tests/support/s3.py).
set -euo pipefail

log() { printf '[services] %s\n' "$*"; }

# Installing packages, editing /etc and starting system services need root: sudo when not root (it may
# ask for a password, after the line that says why).
as_root() {
  if [ "$(id -u)" = 0 ]; then
    "$@"
  elif command -v sudo >/dev/null 2>&1; then
    sudo "$@"
  else
    log "cannot run '$*': not root and sudo is not installed"
    return 1
  fi
}

apt_updated=0
apt_install() {  # apt_install REASON PACKAGE...
  local reason=$1; shift
  if [ "$apt_updated" = 0 ]; then
    log "will run apt-get update (refresh Debian's package lists before installing $*)"
    as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq
    apt_updated=1
  fi
  log "will apt-get install $* ($reason)"
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}

wait_for() {  # wait_for DESCRIPTION COMMAND...
  local what=$1; shift
  for _ in $(seq 1 60); do
    if "$@" >/dev/null 2>&1; then return 0; fi
    sleep 0.5
  done
  log "$what did not come up"; return 1
}

# --- PostgreSQL -------------------------------------------------------------------------------------
postgres_ready() { pg_isready -q -h 127.0.0.1 -p 5432 && psql -h 127.0.0.1 -U postgres -d postgres -Atc 'select 1' >/dev/null 2>&1; }

if ! postgres_ready; then
  if ! command -v pg_ctlcluster >/dev/null 2>&1; then
    apt_install "PostgreSQL is not installed; the package creates a cluster 'main' and, where the init system allows it, starts it" \
      postgresql postgresql-client
  fi
  version=$(ls /etc/postgresql | sort -V | tail -n 1)
  hba=/etc/postgresql/$version/main/pg_hba.conf
  if ! as_root grep -q '^host all all 127.0.0.1/32 trust' "$hba"; then
    log "will add 'host all all 127.0.0.1/32 trust' and 'host all all ::1/128 trust' at the top of $hba" \
      "(the tests connect as postgres from loopback without a password; for a test machine only)"
    as_root sed -i '1i host all all 127.0.0.1/32 trust\nhost all all ::1/128 trust' "$hba"
    hba_changed=1
  fi
  if pg_isready -q -h 127.0.0.1 -p 5432; then
    if [ "${hba_changed:-0}" = 1 ]; then
      log "will reload PostgreSQL $version/main (it is running; the new pg_hba.conf lines take effect on reload)"
      as_root pg_ctlcluster --skip-systemctl-redirect "$version" main reload
    fi
  else
    log "will start PostgreSQL $version/main (installed, but nothing answers on 127.0.0.1:5432)"
    as_root pg_ctlcluster --skip-systemctl-redirect "$version" main start
  fi
  if ! wait_for PostgreSQL postgres_ready; then
    log "PostgreSQL answers on 127.0.0.1:5432 only with a password or not at all: see $hba and the server's log"
    exit 1
  fi
fi

# --- Redis ------------------------------------------------------------------------------------------
if ! redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1; then
  if ! command -v redis-server >/dev/null 2>&1; then
    apt_install "Redis is not installed; the package may also start its own service" redis-server
  fi
  if ! redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1; then
    if [ ! -d /var/lib/redis ]; then
      log "will create /var/lib/redis (the working directory of the Redis started below)"
      as_root mkdir -p /var/lib/redis
    fi
    if [ ! -d /var/log/redis ]; then
      log "will create /var/log/redis (where the Redis started below writes its log)"
      as_root mkdir -p /var/log/redis
    fi
    log "will start redis-server in the background on 127.0.0.1:6379 without persistence, logging to" \
      "/var/log/redis/ci.log (the tests need Redis and nothing answers there)"
    as_root redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" --appendonly no \
      --dir /var/lib/redis --logfile /var/log/redis/ci.log
    wait_for Redis redis-cli -h 127.0.0.1 -p 6379 ping
  fi
fi

# --- Redis Cluster ----------------------------------------------------------------------------------
# Three masters without replicas on 127.0.0.1:7001-7003 (FLK_TEST_REDIS_CLUSTER in the test settings),
# run as the current user; no persistence: a node that restarts keeps its slots (nodes.conf) but not its
# keys, which is what the sharded-dedup tests expect of a hot store. cluster-require-full-coverage is
# off, as docs/runbooks/shard-migration.md recommends: a dead master costs only the keys it serves.
cluster_dir=${FLK_REDIS_CLUSTER_DIR:-/tmp/flk-redis-cluster}
cluster_ports="7001 7002 7003"
cluster_node_up() { redis-cli -h 127.0.0.1 -p "$1" ping >/dev/null 2>&1; }
cluster_ok() { redis-cli -h 127.0.0.1 -p 7001 cluster info 2>/dev/null | grep -q '^cluster_state:ok'; }

if ! cluster_ok; then
  for port in $cluster_ports; do
    if ! cluster_node_up "$port"; then
      log "will start redis-server --cluster-enabled yes on 127.0.0.1:$port in the background, data and" \
        "log in $cluster_dir/$port (the sharded-dedup tests need a 3-master Redis Cluster on 7001-7003)"
      mkdir -p "$cluster_dir/$port"
      redis-server --daemonize yes --bind 127.0.0.1 --port "$port" --cluster-enabled yes \
        --cluster-config-file nodes.conf --cluster-node-timeout 5000 --cluster-require-full-coverage no \
        --save "" --appendonly no --dir "$cluster_dir/$port" --logfile "$cluster_dir/$port/redis.log"
    fi
  done
  for port in $cluster_ports; do wait_for "Redis Cluster node $port" cluster_node_up "$port"; done
  # A node that came back with its nodes.conf rejoins by itself; only nodes that know no cluster yet
  # (one known node, no slots) are joined into a new one.
  fresh=1
  for port in $cluster_ports; do
    if ! redis-cli -h 127.0.0.1 -p "$port" cluster info | grep -q '^cluster_known_nodes:1'; then fresh=0; fi
    if [ "$(redis-cli -h 127.0.0.1 -p "$port" dbsize)" != 0 ]; then fresh=0; fi
  done
  if [ "$fresh" = 1 ]; then
    log "will run redis-cli --cluster create 127.0.0.1:7001 127.0.0.1:7002 127.0.0.1:7003 --cluster-replicas 0" \
      "(the three nodes are up and form no cluster yet: each gets a third of the 16384 slots)"
    redis-cli --cluster create 127.0.0.1:7001 127.0.0.1:7002 127.0.0.1:7003 --cluster-replicas 0 \
      --cluster-yes >/dev/null
  fi
  if ! wait_for "the Redis Cluster on 7001-7003 (cluster_state:ok)" cluster_ok; then
    log "see 'redis-cli -p 7001 cluster nodes' and $cluster_dir/*/redis.log; to start afresh, stop the" \
      "three nodes (redis-cli -p <port> shutdown nosave) and remove $cluster_dir"
    exit 1
  fi
fi

# --- chromium ---------------------------------------------------------------------------------------
# Playwright drives Debian's chromium headless (it downloads no browser of its own).
if ! command -v chromium >/dev/null 2>&1; then
  apt_install "the admin's browser tests drive it headless, and it is not installed" chromium
fi

# --- poppler-utils ----------------------------------------------------------------------------------
# The compliance-report tests render the report's PDF with pdftoppm and read it with pdftotext.
if ! command -v pdftoppm >/dev/null 2>&1; then
  apt_install "the compliance-report tests render PDFs with pdftoppm and pdftotext, and they are not installed" \
    poppler-utils
fi

# --- nginx ------------------------------------------------------------------------------------------
# `make run` and the deployment tests start their own nginx as the current user, with its
# configuration under var/; the system service the package sets up is not used.
if ! command -v nginx >/dev/null 2>&1 && [ ! -x /usr/sbin/nginx ]; then
  apt_install "make run and the deployment tests put it in front of gunicorn, and it is not installed;\
 the package adds /usr/sbin/nginx and /etc/nginx and, where the init system allows it, enables and\
 starts an nginx service on port 80 that FLK does not use ('systemctl disable --now nginx' stops it)" nginx
fi

# --- Go ---------------------------------------------------------------------------------------------
# The Go SDK (sdk/go, standard library only, Go 1.19) is built and tested by `go test` from pytest
# (tests/sdk/test_go_sdk.py and the cross-language tests). Debian's golang-go provides /usr/bin/go.
if ! command -v go >/dev/null 2>&1 && [ ! -x /usr/lib/go/bin/go ]; then
  apt_install "the Go SDK's tests run 'go test' and build its command-line program, and Go is not installed" \
    golang-go
fi

# --- Prometheus -------------------------------------------------------------------------------------
# tests/deploy/test_prometheus.py checks the alert and recording rules with promtool (check rules, test
# rules) and starts a real Prometheus as the current user, on a loopback port with its own data
# directory, to scrape a gunicorn-served FLK. Debian's prometheus package ships both binaries; its
# recommended node exporter is not needed.
if ! command -v promtool >/dev/null 2>&1 || ! command -v prometheus >/dev/null 2>&1; then
  apt_install "the Prometheus rule tests run promtool and a prometheus server, and they are not installed;\
 the package adds a 'prometheus' system user and, where the init system allows it, enables and starts a\
 prometheus service on port 9090 that FLK's tests do not use ('systemctl disable --now prometheus' stops it)" \
    --no-install-recommends prometheus
fi

# --- docker-compose ---------------------------------------------------------------------------------
# tests/deploy/test_compose.py checks deployments/compose/ with `docker-compose config`, which needs no
# Docker engine. Debian's docker-compose is the Python v1 tool (helm and the Kubernetes schema validator
# come from requirements-dev.txt instead).
if ! command -v docker-compose >/dev/null 2>&1; then
  apt_install "the Compose tests run 'docker-compose config' on deployments/compose/, and it is not installed;\
 the package adds /usr/bin/docker-compose and its Python libraries, and starts nothing" docker-compose
fi
