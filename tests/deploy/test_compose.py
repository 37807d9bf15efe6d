"""The Dockerfile and the Compose files (deployments/compose/) as a platform team relies on them.

`docker-compose config` (Debian's v1 tool; no Docker engine needed) parses and interpolates every
Compose file and the two-region combination; the assertions read what it resolved. No Docker engine
runs on the test machine, so the Dockerfile is checked as text against the build context it gets.
"""

from __future__ import annotations

import base64
import fnmatch
import functools
import importlib
import os
import re
import shutil
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from cryptography.fernet import Fernet

from flk_project.celery import app
from tasks.base import TASK_QUEUES
from tests.support.nginx import nginx_binary
from tests.support.servers import ROOT

COMPOSE_DIR = ROOT / "deployments/compose"
COMPOSE = COMPOSE_DIR / "compose.yaml"
REGION_B = COMPOSE_DIR / "compose.region-b.yaml"
MAKE_ENV = COMPOSE_DIR / "make-env.py"
DOCKERFILE = ROOT / "Dockerfile"
PLACEHOLDER = re.compile(r"\$\{([A-Z][A-Z0-9_]*)\}")  # deployments/nginx/render.py's
SECRET_VARIABLES = {
    "DJANGO_SECRET_KEY",
    "FLK_ENCRYPTION_KEYS",
    "AUDIT_SIGNING_KEY_B64",
    "METRICS_PASS",
    "PCS_HMAC_KEY",
    "POSTGRES_PASSWORD",
    "AWS_SECRET_ACCESS_KEY",
    "MINIO_ROOT_PASSWORD",
    "GF_SECURITY_ADMIN_PASSWORD",
    "S3_SECRET_KEY",
}
# Region a's FLK services and their region-b twins.
TWINS = {
    "migrate": "migrate-b",
    "web": "web-b",
    "nginx": "nginx-b",
    "worker": "worker-b",
    "worker-outbound": "worker-outbound-b",
    "beat": "beat-b",
}


def docker_compose() -> str:
    found = shutil.which("docker-compose")
    assert found, "docker-compose is not installed: `make services` installs Debian's docker-compose"
    return found


@pytest.fixture(scope="module")
def env_file(tmp_path_factory) -> Path:
    directory = tmp_path_factory.mktemp("compose-env")
    done = subprocess.run(
        [sys.executable, str(MAKE_ENV), "--dir", str(directory)], capture_output=True, text=True, timeout=30
    )
    assert done.returncode == 0, done.stderr
    return directory / ".env"


def _clean_env() -> dict[str, str]:
    """This process's environment without anything Compose would interpolate from it."""
    return {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR")}


def run_config(*files: Path, env_file: Path, quiet: bool = False) -> subprocess.CompletedProcess[str]:
    args = [docker_compose()]
    for path in files:
        args += ["-f", str(path)]
    args += ["--env-file", str(env_file), "config"]
    if quiet:
        args.append("-q")
    return subprocess.run(args, capture_output=True, text=True, timeout=60, env=_clean_env(), cwd=ROOT)


@functools.cache
def _resolved(files: tuple[Path, ...], env_file: Path) -> dict[str, Any]:
    done = run_config(*files, env_file=env_file)
    assert done.returncode == 0, done.stderr
    return yaml.safe_load(done.stdout)


@pytest.fixture(scope="module")
def one_region(env_file) -> dict[str, Any]:
    return _resolved((COMPOSE,), env_file)


@pytest.fixture(scope="module")
def two_regions(env_file) -> dict[str, Any]:
    return _resolved((COMPOSE, REGION_B), env_file)


def declared_queues() -> set[str]:
    for module in app.conf.imports:  # what a worker imports at start, declaring its tasks
        importlib.import_module(module)
    declared = set(TASK_QUEUES.values())
    assert declared, "no task declared a queue: the task modules were not imported"
    return declared


def consumed_queues(services: dict[str, Any], names: list[str]) -> dict[str, list[str]]:
    found = {}
    for name in names:
        command = services[name].get("command") or []
        if command[:4] == ["celery", "-A", "flk_project", "worker"]:
            found[name] = command[command.index("-Q") + 1].split(",")
    return found


def volume_sources(service: dict[str, Any]) -> dict[str, str]:
    """Container path -> source (a named volume or a host path) of a resolved service."""
    found = {}
    for entry in service.get("volumes", []):
        if isinstance(entry, str):
            source, target = entry.split(":")[:2]
        else:
            source, target = entry["source"], entry["target"]
        found[target] = source
    return found


# --- docker-compose config ------------------------------------------------------------------------


@pytest.mark.parametrize("files", [(COMPOSE,), (COMPOSE, REGION_B)], ids=["compose.yaml", "with-region-b"])
def test_docker_compose_config_accepts_the_files(files, env_file):
    done = run_config(*files, env_file=env_file, quiet=True)
    assert done.returncode == 0, done.stderr


def test_the_override_is_only_meaningful_on_top_of_compose_yaml(env_file):
    # compose.region-b.yaml adds to region a's services; on its own Compose must refuse it.
    done = run_config(REGION_B, env_file=env_file, quiet=True)
    assert done.returncode != 0


def test_a_missing_secret_stops_compose_naming_make_env(tmp_path):
    empty = tmp_path / "empty.env"
    empty.write_text("")
    done = run_config(COMPOSE, env_file=empty, quiet=True)
    assert done.returncode != 0
    assert "run deployments/compose/make-env.py" in done.stderr


# --- one region -----------------------------------------------------------------------------------


def test_web_waits_for_the_migration_one_shot(one_region):
    services = one_region["services"]
    migrate = services["migrate"]
    assert migrate["command"][-1] == "python manage.py migrate --noinput && python manage.py flk_init"
    assert migrate["restart"] == "no"
    assert migrate["depends_on"]["postgres"] == {"condition": "service_healthy"}
    assert migrate["depends_on"]["s3-init"] == {"condition": "service_completed_successfully"}
    for name in ("web", "worker", "worker-outbound", "beat"):
        assert services[name]["depends_on"]["migrate"] == {"condition": "service_completed_successfully"}, (
            name
        )
    assert services["nginx"]["depends_on"] == {"web": {"condition": "service_healthy"}}


def test_every_declared_queue_has_a_worker(one_region):
    services = one_region["services"]
    consumed = consumed_queues(services, list(services))
    assert set(consumed) == {"worker", "worker-outbound"}
    everything = [q for queues in consumed.values() for q in queues]
    assert len(everything) == len(set(everything)), "a queue consumed by two groups"
    missing = declared_queues() - set(everything)
    assert not missing, f"declared queues no Compose worker consumes: {sorted(missing)}"


def test_long_running_services_have_health_checks(one_region):
    services = one_region["services"]
    checked = ("postgres", "redis", "s3", "nginx", "worker", "worker-outbound", "prometheus", "grafana")
    for name in checked:
        test = services[name]["healthcheck"]["test"]
        assert test and test[0] in ("CMD", "CMD-SHELL"), name
    # web uses the image's HEALTHCHECK (GET /healthz), which the Dockerfile test pins down.
    assert "healthcheck" not in services["web"]
    # beat and the one-shots say explicitly that they have none.
    for name in ("beat", "migrate"):
        assert services[name]["healthcheck"]["test"] == ["NONE"], name


def test_only_nginx_prometheus_and_grafana_are_published(one_region):
    published = {name for name, service in one_region["services"].items() if service.get("ports")}
    assert published == {"nginx", "prometheus", "grafana"}
    (port,) = one_region["services"]["nginx"]["ports"]
    assert port["target"] == 8080


def test_nginx_renders_the_shipped_template_for_web(one_region):
    nginx = one_region["services"]["nginx"]
    mounts = volume_sources(nginx)
    template = ROOT / "deployments/nginx/flk.conf.template"
    assert mounts["/etc/nginx/templates/flk.conf.template"] == str(template)
    # The nginx image fills exactly the variables set on its container: every placeholder has one.
    placeholders = set(PLACEHOLDER.findall(template.read_text()))
    assert placeholders <= set(nginx["environment"]), placeholders - set(nginx["environment"])
    assert nginx["environment"]["FLK_UPSTREAM"] == "web:8000"
    assert one_region["services"]["web"]["environment"]["FLK_BIND"] == "0.0.0.0:8000"
    assert one_region["services"]["web"]["environment"]["PROXY_CLIENT_IP_HEADER"] == "X-Real-IP"
    # conf.d is a tmpfs: the image's default server is not there to answer before FLK's.
    assert "/etc/nginx/conf.d" in nginx["tmpfs"]


@pytest.mark.parametrize("service", ["nginx", "nginx-b"])
def test_nginx_accepts_the_configuration_the_container_renders(service, two_regions, tmp_path):
    environment = dict(two_regions["services"][service]["environment"])
    # As the nginx image's envsubst does: only the container's variables, nginx's own left alone.
    # nginx -t resolves upstream names, and `web` exists only inside the Compose network.
    environment["FLK_UPSTREAM"] = "127.0.0.1:8000"
    template = (ROOT / "deployments/nginx/flk.conf.template").read_text()
    (tmp_path / "flk.conf").write_text(PLACEHOLDER.sub(lambda m: str(environment[m.group(1)]), template))
    (tmp_path / "nginx.conf").write_text(
        f"pid {tmp_path}/nginx.pid;\nerror_log stderr;\nevents {{}}\n"
        f"http {{\n  access_log off;\n  client_body_temp_path {tmp_path}/body;\n"
        f"  proxy_temp_path {tmp_path}/proxy;\n  include {tmp_path}/flk.conf;\n}}\n"
    )
    done = subprocess.run(
        [nginx_binary(), "-t", "-q", "-p", str(tmp_path), "-c", str(tmp_path / "nginx.conf"), "-e", "stderr"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 0, done.stderr
    assert "listen 8080;" in (tmp_path / "flk.conf").read_text()


def test_named_volumes_hold_the_state_and_web_shares_its_wal(one_region):
    assert set(one_region["volumes"]) == {"pgdata", "redisdata", "s3data", "wal", "promdata", "grafanadata"}
    services = one_region["services"]
    wal_dir = services["web"]["environment"]["WAL_DIR"]
    assert volume_sources(services["web"])[wal_dir] == "wal"
    # The worker of the wal and crr queues replays and ships what web wrote.
    assert {"wal", "crr"} <= set(consumed_queues(services, ["worker"])["worker"])
    assert volume_sources(services["worker"])[wal_dir] == "wal"
    assert volume_sources(services["postgres"])["/var/lib/postgresql/data"] == "pgdata"
    assert volume_sources(services["redis"])["/data"] == "redisdata"
    assert volume_sources(services["s3"])["/data"] == "s3data"


def test_prometheus_and_grafana_read_the_repository_s_observability_files(one_region):
    prometheus = volume_sources(one_region["services"]["prometheus"])
    assert prometheus["/etc/prometheus/prometheus.yml"] == str(ROOT / "deployments/prometheus/prometheus.yml")
    assert prometheus["/etc/prometheus/rules"] == str(ROOT / "deployments/prometheus/rules")
    assert prometheus["/etc/prometheus/secrets/metrics_pass"] == str(COMPOSE_DIR / "secrets/metrics_pass")
    grafana = volume_sources(one_region["services"]["grafana"])
    assert grafana["/etc/grafana/provisioning"] == str(ROOT / "deployments/grafana/provisioning")
    assert grafana["/var/lib/grafana/dashboards"] == str(ROOT / "deployments/grafana/dashboards")
    # What the provisioning files expect of the container: their ${VARIABLES} set, the dashboard
    # provider's path where the dashboards are mounted.
    environment = one_region["services"]["grafana"]["environment"]
    for path in sorted((ROOT / "deployments/grafana/provisioning").rglob("*.y*ml")):
        text = path.read_text()
        for variable in PLACEHOLDER.findall(text):
            assert variable in environment, f"{path.name} needs {variable} in grafana's environment"
        for provider in (yaml.safe_load(text) or {}).get("providers", []):
            assert provider["options"]["path"] in grafana, f"{path.name}: {provider['options']['path']}"
    # The scrape target and the exporters deployments/prometheus/prometheus.yml names are services here.
    config = ROOT / "deployments/prometheus/prometheus.yml"
    if config.exists():
        targets = re.findall(r'"([a-z0-9-]+):\d+"', config.read_text())
        assert set(targets) <= set(one_region["services"]), set(targets) - set(one_region["services"])


def test_no_secret_is_written_in_the_compose_files():
    for path in (COMPOSE, REGION_B):
        for line in path.read_text().splitlines():
            key, _, value = line.strip().partition(":")
            if key in SECRET_VARIABLES:
                assert value.strip().startswith("${"), f"{path.name}: {line.strip()}"


def test_make_env_writes_fresh_private_secrets_and_never_replaces_them(tmp_path):
    done = subprocess.run(
        [sys.executable, str(MAKE_ENV), "--dir", str(tmp_path)], capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    env_file = tmp_path / ".env"
    values = dict(
        line.split("=", 1) for line in env_file.read_text().splitlines() if not line.startswith("#")
    )
    assert stat.S_IMODE(env_file.stat().st_mode) == 0o600
    metrics_pass = tmp_path / "secrets/metrics_pass"
    assert metrics_pass.read_text() == values["METRICS_PASS"]
    assert stat.S_IMODE(metrics_pass.stat().st_mode) == 0o600
    Fernet(values["FLK_ENCRYPTION_KEYS"].encode())  # a valid Fernet key
    assert len(base64.b64decode(values["AUDIT_SIGNING_KEY_B64"], validate=True)) == 32  # an Ed25519 seed
    again = subprocess.run(
        [sys.executable, str(MAKE_ENV), "--dir", str(tmp_path)], capture_output=True, text=True
    )
    assert again.returncode == 1
    assert (
        dict(line.split("=", 1) for line in env_file.read_text().splitlines() if not line.startswith("#"))
        == values
    )


# --- two regions ----------------------------------------------------------------------------------


def test_region_b_has_its_own_database_redis_wal_and_region_id(two_regions):
    services = two_regions["services"]
    a, b = services["web"]["environment"], services["web-b"]["environment"]
    assert (a["REGION_ID"], b["REGION_ID"]) == ("region-a", "region-b")
    for name in ("DATABASE_URL", "REDIS_URL", "CELERY_BROKER_URL", "REGION_BUCKET", "AUDIT_ANCHOR_S3_BUCKET"):
        assert a[name] != b[name], name
    assert "@postgres-b:5432/" in b["DATABASE_URL"]
    assert b["REDIS_URL"].startswith("redis://redis-b:")
    # Each region ships into the other's bucket and replays its own.
    assert a["WAL_REMOTE_BUCKET"] == b["REGION_BUCKET"] == "flk-wal-b"
    assert b["WAL_REMOTE_BUCKET"] == a["REGION_BUCKET"] == "flk-wal-a"
    assert a["WAL_REPLICATION_ENABLED"] == b["WAL_REPLICATION_ENABLED"] == "true"
    # Separate state: region b's volumes are its own.
    wal_dir = b["WAL_DIR"]
    assert (
        volume_sources(services["web-b"])[wal_dir] == volume_sources(services["worker-b"])[wal_dir] == "wal-b"
    )
    assert volume_sources(services["postgres-b"])["/var/lib/postgresql/data"] == "pgdata-b"
    assert volume_sources(services["redis-b"])["/data"] == "redisdata-b"
    assert {"pgdata-b", "redisdata-b", "wal-b"} <= set(two_regions["volumes"])
    assert services["nginx-b"]["environment"]["FLK_UPSTREAM"] == "web-b:8000"
    assert services["nginx-b"]["ports"][0]["published"] != services["nginx"]["ports"][0]["published"]
    for name in ("web-b", "worker-b", "worker-outbound-b", "beat-b"):
        assert services[name]["depends_on"]["migrate-b"] == {"condition": "service_completed_successfully"}


def test_region_b_runs_what_region_a_runs(two_regions):
    services = two_regions["services"]
    for a_name, b_name in TWINS.items():
        a, b = services[a_name], services[b_name]
        # The same variables (values differ where the region does) and the same commands and checks.
        assert set(a.get("environment", {})) == set(b.get("environment", {})), (a_name, b_name)
        assert a.get("command") == b.get("command"), (a_name, b_name)
        assert a.get("healthcheck") == b.get("healthcheck"), (a_name, b_name)
        assert a.get("image") == b.get("image"), (a_name, b_name)
    every = list(services)
    assert set(declared_queues()) <= {q for qs in consumed_queues(services, every).values() for q in qs}
    b_workers = consumed_queues(services, ["worker-b", "worker-outbound-b"])
    assert declared_queues() <= {q for qs in b_workers.values() for q in qs}


def test_both_regions_share_the_keys_replicated_secrets_need(two_regions):
    services = two_regions["services"]
    for name in ("FLK_ENCRYPTION_KEYS", "AUDIT_SIGNING_KEY_B64", "DJANGO_SECRET_KEY"):
        assert services["web"]["environment"][name] == services["web-b"]["environment"][name], name


# --- the Dockerfile ------------------------------------------------------------------------------


def _instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of the Dockerfile, continuation lines joined, comments dropped."""
    joined = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    found = []
    for line in joined.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            found.append((word.upper(), rest.strip()))
    return found


def _ignored(path: str, patterns: list[str]) -> bool:
    return any(fnmatch.fnmatch(path, p) or fnmatch.fnmatch(path, p + "/*") for p in patterns)


def test_dockerfile_builds_wheels_then_a_slim_non_root_runtime():
    instructions = _instructions()
    stages = [rest for word, rest in instructions if word == "FROM"]
    assert stages == ["${PYTHON_IMAGE} AS build", "${PYTHON_IMAGE} AS runtime"]
    assert ("ARG", "PYTHON_IMAGE=python:3.11-slim-bookworm") in instructions
    runtime = instructions[[w for w, _ in instructions].index("FROM", 2) :]
    runtime_text = "\n".join(rest for _, rest in runtime)
    assert "build-essential" not in runtime_text, "the compiler stays in the build stage"
    assert "COPY --from=build /wheels /wheels" in [f"{w} {r}" for w, r in runtime]
    (user,) = [rest for word, rest in runtime if word == "USER"]
    uid = int(user.split(":")[0])
    assert uid >= 1000, "the runtime runs as a numeric non-root user (runAsNonRoot can check it)"
    # The SDK is built from sdk/python into the image (requirements.txt installs it editable locally).
    assert any(w == "COPY" and r == "sdk/python ./sdk/python" for w, r in instructions)
    assert "./sdk/python" in next(r for w, r in instructions if w == "RUN" and "pip wheel" in r)


def test_dockerfile_checks_healthz_and_collects_static_without_baking_keys():
    instructions = _instructions()
    (healthcheck,) = [rest for word, rest in instructions if word == "HEALTHCHECK"]
    assert "http://127.0.0.1:8000/healthz" in healthcheck
    (collect,) = [rest for word, rest in instructions if word == "RUN" and "collectstatic" in rest]
    # The keys the settings would generate into FLK_VAR_DIR are given throwaway values, and whatever
    # else collectstatic left there besides static/ is deleted in the same layer.
    for name in ("DJANGO_SECRET_KEY=", "FLK_ENCRYPTION_KEYS=", "AUDIT_SIGNING_KEY_B64="):
        assert name in collect
    assert "! -name static -exec rm -rf {} +" in collect
    # No secret in ENV or ARG.
    for word, rest in instructions:
        if word in ("ENV", "ARG"):
            for name in SECRET_VARIABLES | {"DATABASE_URL", "REDIS_URL"}:
                assert name not in rest, f"{word} {rest}"
    env = " ".join(rest for word, rest in instructions if word == "ENV")
    assert "DJANGO_SETTINGS_MODULE=flk_project.settings.production" in env


def test_dockerfile_copies_only_what_the_build_context_holds():
    patterns = [
        line.strip()
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    for ignored in (".git", ".venv", "var", "tests", "deployments/compose/.env"):
        assert ignored in patterns
    sources = []
    for word, rest in _instructions():
        if word == "COPY" and "--from=" not in rest:
            parts = [p for p in rest.split() if not p.startswith("--")]
            sources += parts[:-1]
    assert sources, "no COPY found"
    for source in sources:
        assert (ROOT / source).exists(), f"COPY {source}: not in the repository"
        assert not _ignored(source, patterns), f"COPY {source}: excluded by .dockerignore"
    # What the image runs is in the context: settings, gunicorn's configuration, the docs it serves.
    for needed in ("flk_project", "apps", "tasks", "templates", "docs", "deployments/gunicorn.conf.py"):
        assert needed in sources, needed


def test_compose_builds_the_image_from_the_repository(one_region):
    build = one_region["services"]["migrate"]["build"]
    assert Path(build["context"]) == ROOT
    assert build["dockerfile"] == "Dockerfile"
    images = {s.get("image") for n, s in one_region["services"].items() if n in TWINS and n != "nginx"}
    assert images == {"flk:local"}, "web, workers, beat and the migration run one image"
    commands = {n: one_region["services"][n].get("command") for n in ("worker", "worker-outbound", "beat")}
    assert all(c and c[0] == "celery" for c in commands.values()), commands
    assert "command" not in one_region["services"]["web"], "web runs the image's default command (gunicorn)"
