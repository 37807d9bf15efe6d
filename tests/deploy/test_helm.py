"""The Helm chart (deployments/helm/flk) through the real tools: helm lint, helm template, the
Kubernetes schemas (kubernetes-validate, offline) and nginx -t on the web pod's nginx configuration.

The assertions are what a platform team relies on: probes, non-root pods, secrets only from existing
Secrets, the migration hook, a worker for every declared queue, one beat, autoscaling and disruption
budgets, the NetworkPolicies, TLS and mTLS, and two regions that differ where they must.
"""

from __future__ import annotations

import datetime
import functools
import importlib
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from flk_project.celery import app
from tasks.base import TASK_QUEUES
from tests.support.nginx import nginx_binary
from tests.support.servers import ROOT

CHART = ROOT / "deployments/helm/flk"
BIN = Path(sys.executable).parent
HELM = str(BIN / "helm")
VALIDATE = str(BIN / "kubernetes-validate")
REGION_A = CHART / "values-region-a.yaml"
REGION_B = CHART / "values-region-b.yaml"
# The oldest Kubernetes the chart declares (Chart.yaml kubeVersion) and the newest schemas bundled.
KUBE_VERSIONS = ("1.27.0", "1.37.0")
SECRET_VARIABLES = {
    "DJANGO_SECRET_KEY",
    "FLK_ENCRYPTION_KEYS",
    "AUDIT_SIGNING_KEY_B64",
    "METRICS_PASS",
    "PCS_HMAC_KEY",
    "DATABASE_URL",
    "REDIS_URL",
    "CELERY_BROKER_URL",
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
}
MTLS_NGINX = (
    "mtls.mode=nginx",
    "mtls.nginx.existingSecret=flk-web-mtls",
    "mtls.nginx.ingressClientSecret=ingress-nginx/flk-ingress-client",
    "mtls.nginx.serverName=flk-web.flk.svc",
    "ingress.enabled=true",
    "ingress.hosts[0]=flk.example.com",
    "web.nginx.realIpFrom[0]=10.0.0.0/16",
)
# Named renderings: (values files, --set pairs).
CASES: dict[str, tuple[tuple[Path, ...], tuple[str, ...]]] = {
    "default": ((), ()),
    "region-a": ((REGION_A,), ()),
    "region-b": ((REGION_B,), ()),
    "mtls-nginx": ((), MTLS_NGINX),
    "mtls-mesh": ((), ("mtls.mode=mesh",)),
    "workers-autoscaled": ((), ("workerDefaults.autoscaling.enabled=true",)),
}


def _helm(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([HELM, *args], capture_output=True, text=True, timeout=60)


def _template_args(values: tuple[Path, ...], sets: tuple[str, ...]) -> list[str]:
    args = ["template", "flk", str(CHART), "--namespace", "flk"]
    for path in values:
        args += ["-f", str(path)]
    for pair in sets:
        args += ["--set", pair]
    return args


@functools.cache
def rendered_text(case: str) -> str:
    values, sets = CASES[case]
    done = _helm(*_template_args(values, sets))
    assert done.returncode == 0, done.stderr
    return done.stdout


@functools.cache
def rendered(case: str) -> tuple[dict[str, Any], ...]:
    return tuple(doc for doc in yaml.safe_load_all(rendered_text(case)) if doc)


def of_kind(docs: tuple[dict[str, Any], ...], kind: str) -> dict[str, dict[str, Any]]:
    return {doc["metadata"]["name"]: doc for doc in docs if doc["kind"] == kind}


def pod_templates(docs: tuple[dict[str, Any], ...]) -> dict[str, dict[str, Any]]:
    """Every pod the chart runs: the Deployments' and the Job's templates."""
    return {
        f"{doc['kind']}/{doc['metadata']['name']}": doc["spec"]["template"]
        for doc in docs
        if doc["kind"] in ("Deployment", "Job")
    }


def container(docs: tuple[dict[str, Any], ...], deployment: str, name: str) -> dict[str, Any]:
    pod = of_kind(docs, "Deployment")[deployment]["spec"]["template"]["spec"]
    (found,) = [c for c in pod["containers"] if c["name"] == name]
    return found


def env_of(spec: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {entry["name"]: entry for entry in spec.get("env", [])}


def declared_queues() -> set[str]:
    for module in app.conf.imports:  # what a worker imports at start, declaring its tasks
        importlib.import_module(module)
    declared = set(TASK_QUEUES.values())
    assert declared, "no task declared a queue: the task modules were not imported"
    return declared


def worker_queues(docs: tuple[dict[str, Any], ...]) -> dict[str, list[str]]:
    """Deployment name -> the queues its `celery worker -Q` consumes."""
    found = {}
    for name, deployment in of_kind(docs, "Deployment").items():
        for c in deployment["spec"]["template"]["spec"]["containers"]:
            command = c.get("command", [])
            if command[:4] == ["celery", "-A", "flk_project", "worker"]:
                found[name] = command[command.index("-Q") + 1].split(",")
    return found


# --- the tools ------------------------------------------------------------------------------------


@pytest.mark.parametrize("values", [(), (REGION_A,), (REGION_B,)], ids=["default", "region-a", "region-b"])
def test_helm_lint_passes(values):
    args = ["lint", "--strict", str(CHART)]
    for path in values:
        args += ["-f", str(path)]
    done = _helm(*args)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "1 chart(s) linted, 0 chart(s) failed" in done.stdout


@pytest.mark.parametrize("case", list(CASES))
def test_rendered_manifests_match_the_kubernetes_schemas(case, tmp_path):
    manifest = tmp_path / f"{case}.yaml"
    manifest.write_text(rendered_text(case))
    for version in KUBE_VERSIONS:
        done = subprocess.run(
            [VALIDATE, "--strict", "--quiet", "-k", version, str(manifest)],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode == 0, f"Kubernetes {version}:\n{done.stdout}{done.stderr}"
    # Everything rendered is a kind the schemas know (no custom resource slipped past the check).
    kinds = {doc["kind"] for doc in rendered(case)}
    assert kinds <= {
        "Deployment",
        "Job",
        "Service",
        "ConfigMap",
        "ServiceAccount",
        "PersistentVolumeClaim",
        "HorizontalPodAutoscaler",
        "PodDisruptionBudget",
        "NetworkPolicy",
        "Ingress",
    }, kinds


# --- probes, users, secrets ---------------------------------------------------------------------


@pytest.mark.parametrize("case", ["default", "region-a", "mtls-nginx"])
def test_web_probes_healthz_and_readyz_on_gunicorn_with_an_allowed_host(case):
    docs = rendered(case)
    web = container(docs, "flk-web", "web")
    allowed = env_of(web)["ALLOWED_HOSTS"]["value"].split(",")
    for probe, path in (
        ("livenessProbe", "/healthz"),
        ("readinessProbe", "/readyz"),
        ("startupProbe", "/healthz"),
    ):
        get = web[probe]["httpGet"]
        assert (get["path"], get["port"]) == (path, "gunicorn"), probe
        (host,) = [h["value"] for h in get["httpHeaders"] if h["name"] == "Host"]
        assert host in allowed, f"{probe} sends Host {host}, which Django refuses (ALLOWED_HOSTS {allowed})"
    assert {"name": "gunicorn", "containerPort": 8000} in web["ports"]


def test_probes_are_configurable():
    done = _helm(
        *_template_args(
            (),
            (
                "web.probes.readiness.path=/ready-now",
                "web.probes.host=flk.internal",
                "web.probes.liveness.periodSeconds=7",
            ),
        )
    )
    assert done.returncode == 0, done.stderr
    docs = tuple(d for d in yaml.safe_load_all(done.stdout) if d)
    web = container(docs, "flk-web", "web")
    assert web["readinessProbe"]["httpGet"]["path"] == "/ready-now"
    assert web["livenessProbe"]["periodSeconds"] == 7
    assert "flk.internal" in env_of(web)["ALLOWED_HOSTS"]["value"].split(",")


def test_every_worker_has_a_liveness_probe_through_the_broker():
    docs = rendered("default")
    for name in worker_queues(docs):
        probe = container(docs, name, "worker")["livenessProbe"]["exec"]["command"]
        assert "inspect ping" in probe[-1], name


@pytest.mark.parametrize("case", list(CASES))
def test_every_pod_runs_as_non_root_without_privileges(case):
    for name, template in pod_templates(rendered(case)).items():
        pod = template["spec"]
        assert pod["securityContext"]["runAsNonRoot"] is True, name
        assert pod["securityContext"]["runAsUser"] != 0, name
        assert pod["automountServiceAccountToken"] is False, name
        for c in pod["containers"]:
            context = c["securityContext"]
            assert context["allowPrivilegeEscalation"] is False, (name, c["name"])
            assert context["capabilities"]["drop"] == ["ALL"], (name, c["name"])
            assert context["readOnlyRootFilesystem"] is True, (name, c["name"])
            assert context.get("runAsUser", pod["securityContext"]["runAsUser"]) != 0, (name, c["name"])
            assert c.get("resources", {}).get("requests"), f"{name}/{c['name']} has no resource requests"


@pytest.mark.parametrize(
    ("case", "app_secret", "database_secret", "redis_secret"),
    [
        ("default", "flk-app", "flk-database", "flk-redis"),
        ("region-a", "flk-app", "flk-database-eu-west-1", "flk-redis-eu-west-1"),
        ("region-b", "flk-app", "flk-database-us-east-1", "flk-redis-us-east-1"),
    ],
)
def test_secrets_come_only_from_existing_secrets_named_in_values(
    case, app_secret, database_secret, redis_secret
):
    docs = rendered(case)
    assert not of_kind(docs, "Secret"), "the chart must not create or template a Secret"
    expected = {
        "DJANGO_SECRET_KEY": app_secret,
        "FLK_ENCRYPTION_KEYS": app_secret,
        "AUDIT_SIGNING_KEY_B64": app_secret,
        "METRICS_PASS": app_secret,
        "PCS_HMAC_KEY": app_secret,
        "DATABASE_URL": database_secret,
        "REDIS_URL": redis_secret,
        "CELERY_BROKER_URL": redis_secret,
    }
    for name, template in pod_templates(docs).items():
        for c in template["spec"]["containers"]:
            env = env_of(c)
            if c["name"] == "nginx":
                assert not SECRET_VARIABLES & set(env), f"{name}: nginx gets no secret"
                continue
            for variable, secret in expected.items():
                ref = env[variable]["valueFrom"]["secretKeyRef"]
                assert (ref["name"], ref["key"]) == (secret, variable), (name, variable)
                assert "value" not in env[variable]
            for variable in SECRET_VARIABLES & set(env):
                assert "value" not in env[variable], f"{name}: {variable} has a literal value"


def test_a_missing_secret_name_stops_the_rendering_with_its_value_name():
    done = _helm(*_template_args((), ("existingSecrets.database=",)))
    assert done.returncode != 0
    assert "existingSecrets.database names the Secret holding DATABASE_URL" in done.stderr


# --- migrations, workers, beat ------------------------------------------------------------------


@pytest.mark.parametrize("case", ["default", "region-a", "region-b"])
def test_migration_job_is_a_pre_install_and_pre_upgrade_hook(case):
    docs = rendered(case)
    (job,) = of_kind(docs, "Job").values()
    annotations = job["metadata"]["annotations"]
    assert set(annotations["helm.sh/hook"].split(",")) == {"pre-install", "pre-upgrade"}
    assert "before-hook-creation" in annotations["helm.sh/hook-delete-policy"]
    pod = job["spec"]["template"]["spec"]
    assert pod["restartPolicy"] == "Never"
    (migrate,) = pod["containers"]
    assert "python manage.py migrate --noinput" in migrate["command"][-1]
    # A hook runs before the release's resources exist: it may not need any of them.
    assert pod["serviceAccountName"] == "default"
    assert not [v for v in pod.get("volumes", []) if "configMap" in v or "persistentVolumeClaim" in v]
    for c in pod["containers"]:
        assert "envFrom" not in c
    # Nothing else is a hook: the Deployments are the release's own resources.
    for doc in docs:
        if doc["kind"] != "Job":
            assert "helm.sh/hook" not in doc["metadata"].get("annotations", {}), doc["metadata"]["name"]


def test_one_worker_deployment_per_queue_covers_every_declared_queue():
    queues = worker_queues(rendered("default"))
    for name, consumed in queues.items():
        assert len(consumed) == 1, f"{name} consumes {consumed}; the default is one queue per Deployment"
    all_consumed = [q for consumed in queues.values() for q in consumed]
    assert len(all_consumed) == len(set(all_consumed)), "a queue has two Deployments"
    missing = declared_queues() - set(all_consumed)
    assert not missing, f"declared queues nobody consumes: {sorted(missing)}"


@pytest.mark.parametrize("case", ["region-a", "region-b", "mtls-nginx"])
def test_every_declared_queue_is_consumed_in_every_configuration(case):
    consumed = {q for queues in worker_queues(rendered(case)).values() for q in queues}
    assert declared_queues() <= consumed


def test_worker_deployments_are_configurable():
    done = _helm(
        *_template_args(
            (),
            (
                "workers.outbound.queues={webhooks,siem}",
                "workers.outbound.concurrency=8",
                "workers.outbound.replicas=3",
            ),
        )
    )
    assert done.returncode == 0, done.stderr
    docs = tuple(d for d in yaml.safe_load_all(done.stdout) if d)
    assert worker_queues(docs)["flk-worker-outbound"] == ["webhooks", "siem"]
    outbound = of_kind(docs, "Deployment")["flk-worker-outbound"]
    assert outbound["spec"]["replicas"] == 3
    command = outbound["spec"]["template"]["spec"]["containers"][0]["command"]
    assert command[command.index("--concurrency") + 1] == "8"


def test_wal_volume_is_shared_by_web_and_the_wal_and_crr_workers():
    docs = rendered("default")
    (claim,) = of_kind(docs, "PersistentVolumeClaim").values()
    assert claim["spec"]["accessModes"] == ["ReadWriteMany"]
    users = set()
    for name, deployment in of_kind(docs, "Deployment").items():
        for volume in deployment["spec"]["template"]["spec"]["volumes"]:
            if volume.get("persistentVolumeClaim", {}).get("claimName") == claim["metadata"]["name"]:
                users.add(name)
    assert users == {"flk-web", "flk-worker-wal", "flk-worker-crr"}
    wal_dir = env_of(container(docs, "flk-web", "web"))["WAL_DIR"]["value"]
    for name in users - {"flk-web"}:
        mounts = container(docs, name, "worker")["volumeMounts"]
        assert {"name": "wal", "mountPath": wal_dir} in mounts


@pytest.mark.parametrize("case", list(CASES))
def test_exactly_one_beat_replaced_with_recreate_never_scaled(case):
    docs = rendered(case)
    beats = {
        name: d
        for name, d in of_kind(docs, "Deployment").items()
        if any(c.get("command", [])[3:4] == ["beat"] for c in d["spec"]["template"]["spec"]["containers"])
    }
    assert list(beats) == ["flk-beat"]
    beat = beats["flk-beat"]
    assert beat["spec"]["replicas"] == 1
    assert beat["spec"]["strategy"] == {"type": "Recreate"}
    targets = {h["spec"]["scaleTargetRef"]["name"] for h in of_kind(docs, "HorizontalPodAutoscaler").values()}
    assert "flk-beat" not in targets


# --- scaling and disruptions ----------------------------------------------------------------------


def _selects(selector: dict[str, Any], labels: dict[str, str]) -> bool:
    return all(labels.get(k) == v for k, v in selector.get("matchLabels", {}).items())


def test_hpa_scales_web_and_workers_when_enabled():
    default = rendered("default")
    web_hpa = of_kind(default, "HorizontalPodAutoscaler")["flk-web"]
    assert web_hpa["spec"]["scaleTargetRef"] == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "name": "flk-web",
    }
    assert "replicas" not in of_kind(default, "Deployment")["flk-web"]["spec"], "the HPA owns web's replicas"
    scaled = rendered("workers-autoscaled")
    targets = {
        h["spec"]["scaleTargetRef"]["name"] for h in of_kind(scaled, "HorizontalPodAutoscaler").values()
    }
    assert set(worker_queues(scaled)) | {"flk-web"} == targets
    for name in worker_queues(scaled):
        assert "replicas" not in of_kind(scaled, "Deployment")[name]["spec"]


def test_disruption_budgets_cover_web_and_every_worker_but_not_beat():
    docs = rendered("default")
    deployments = of_kind(docs, "Deployment")
    covered = set()
    for pdb in of_kind(docs, "PodDisruptionBudget").values():
        matched = [
            n
            for n, d in deployments.items()
            if _selects(pdb["spec"]["selector"], d["spec"]["template"]["metadata"]["labels"])
        ]
        assert len(matched) == 1, (pdb["metadata"]["name"], matched)
        covered.update(matched)
    assert covered == set(deployments) - {"flk-beat"}
    assert of_kind(docs, "PodDisruptionBudget")["flk-web"]["spec"]["minAvailable"] == 1


# --- network policy, TLS, mTLS ------------------------------------------------------------------


def test_network_policy_web_only_from_the_ingress_on_nginx_port():
    docs = rendered("default")
    policies = of_kind(docs, "NetworkPolicy")
    web_policy = policies["flk-web"]
    web_labels = of_kind(docs, "Deployment")["flk-web"]["spec"]["template"]["metadata"]["labels"]
    assert _selects(web_policy["spec"]["podSelector"], web_labels)
    (rule,) = web_policy["spec"]["ingress"]
    assert rule["ports"] == [{"protocol": "TCP", "port": 8080}], "only nginx's port, never gunicorn's 8000"
    ingress_peer, monitoring_peer = rule["from"]
    # namespaceSelector and podSelector in one peer: both must match (the ingress controller's pods).
    assert ingress_peer["namespaceSelector"]["matchLabels"] == {
        "kubernetes.io/metadata.name": "ingress-nginx"
    }
    assert ingress_peer["podSelector"]["matchLabels"] == {"app.kubernetes.io/name": "ingress-nginx"}
    assert monitoring_peer["namespaceSelector"]["matchLabels"] == {
        "kubernetes.io/metadata.name": "monitoring"
    }
    assert web_policy["spec"]["policyTypes"] == ["Ingress"]
    # Workers, beat and the Job accept nothing.
    closed = policies["flk-no-ingress"]
    assert closed["spec"]["ingress"] == []
    expressions = {e["key"]: e for e in closed["spec"]["podSelector"]["matchExpressions"]}
    assert expressions["app.kubernetes.io/component"] == {
        "key": "app.kubernetes.io/component",
        "operator": "NotIn",
        "values": ["web"],
    }


def test_network_policy_databases_only_from_flk_pods():
    docs = rendered("default")
    policies = of_kind(docs, "NetworkPolicy")
    flk_pods = [t["metadata"]["labels"] for t in pod_templates(docs).values()]
    for name, port, db_label in (("flk-db-postgresql", 5432, "postgresql"), ("flk-db-redis", 6379, "redis")):
        spec = policies[name]["spec"]
        assert spec["podSelector"]["matchLabels"] == {"app.kubernetes.io/name": db_label}
        (rule,) = spec["ingress"]
        (peer,) = rule["from"]
        assert set(peer) == {"podSelector"}, "no namespaceSelector: only pods of this namespace"
        assert peer["podSelector"]["matchLabels"] == {
            "app.kubernetes.io/name": "flk",
            "app.kubernetes.io/instance": "flk",
        }
        assert rule["ports"] == [{"protocol": "TCP", "port": port}]
        # Every FLK pod (web, workers, beat, the migration Job) carries the labels the policy admits.
        for labels in flk_pods:
            assert _selects(peer["podSelector"], labels), labels
    # Managed databases outside the cluster: no policy for them.
    assert not [n for n in of_kind(rendered("region-a"), "NetworkPolicy") if n.startswith("flk-db-")]


@pytest.mark.parametrize(
    ("case", "host", "secret"),
    [
        ("region-a", "eu.flk.example.com", "flk-eu-west-1-tls"),
        ("region-b", "us.flk.example.com", "flk-us-east-1-tls"),
    ],
)
def test_tls_ingress_in_each_region(case, host, secret):
    docs = rendered(case)
    (ingress,) = of_kind(docs, "Ingress").values()
    assert ingress["spec"]["tls"] == [{"hosts": [host], "secretName": secret}]
    (rule,) = ingress["spec"]["rules"]
    assert rule["host"] == host
    backend = rule["http"]["paths"][0]["backend"]["service"]
    assert backend == {"name": "flk-web", "port": {"name": "http"}}
    assert host in env_of(container(docs, "flk-web", "web"))["ALLOWED_HOSTS"]["value"].split(",")
    assert not of_kind(rendered("default"), "Ingress"), "the ingress is optional and off by default"


def test_mtls_mesh_annotates_every_flk_pod():
    for name, template in pod_templates(rendered("mtls-mesh")).items():
        assert template["metadata"]["annotations"]["linkerd.io/inject"] == "enabled", name
    for name, template in pod_templates(rendered("default")).items():
        assert "linkerd.io/inject" not in template["metadata"].get("annotations", {}), name


def test_mtls_nginx_requires_client_certificates_end_to_end():
    docs = rendered("mtls-nginx")
    nginx = container(docs, "flk-web", "nginx")
    assert env_of(nginx)["FLK_LISTEN"]["value"] == "8443 ssl"
    assert {"name": "https", "containerPort": 8443} in nginx["ports"]
    config = of_kind(docs, "ConfigMap")["flk-nginx"]["data"]["mtls.conf.template"]
    assert "ssl_verify_client on;" in config
    volumes = {
        v["name"]: v for v in of_kind(docs, "Deployment")["flk-web"]["spec"]["template"]["spec"]["volumes"]
    }
    assert volumes["mtls"]["secret"]["secretName"] == "flk-web-mtls"
    (service,) = of_kind(docs, "Service").values()
    assert service["spec"]["ports"] == [{"name": "https", "port": 443, "targetPort": "https"}]
    (ingress,) = of_kind(docs, "Ingress").values()
    annotations = ingress["metadata"]["annotations"]
    assert annotations["nginx.ingress.kubernetes.io/backend-protocol"] == "HTTPS"
    assert annotations["nginx.ingress.kubernetes.io/proxy-ssl-secret"] == "ingress-nginx/flk-ingress-client"
    assert annotations["nginx.ingress.kubernetes.io/proxy-ssl-verify"] == "on"
    (rule,) = of_kind(docs, "NetworkPolicy")["flk-web"]["spec"]["ingress"]
    assert rule["ports"] == [{"protocol": "TCP", "port": 8443}]
    # Without the certificate's Secret the chart refuses to render rather than serve plain HTTP.
    done = _helm(*_template_args((), ("mtls.mode=nginx",)))
    assert done.returncode != 0
    assert "mtls.nginx.existingSecret" in done.stderr


def _self_signed(directory: Path) -> None:
    """tls.crt, tls.key and ca.crt as cert-manager writes them (here one self-signed certificate)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "flk-web.flk.svc")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    pem = cert.public_bytes(serialization.Encoding.PEM)
    (directory / "tls.crt").write_bytes(pem)
    (directory / "ca.crt").write_bytes(pem)
    (directory / "tls.key").write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )


@pytest.mark.parametrize("case", ["default", "mtls-nginx"])
def test_web_nginx_configuration_is_the_shipped_template_and_nginx_accepts_it(case, tmp_path):
    docs = rendered(case)
    data = of_kind(docs, "ConfigMap")["flk-nginx"]["data"]
    shipped = (ROOT / "deployments/nginx/flk.conf.template").read_text()
    assert data["flk.conf.template"].strip() == shipped.strip(), (
        "the sidecar must run deployments/nginx's template"
    )
    # Render the templates as the nginx image does (envsubst of the container's variables only),
    # with the certificate paths moved into tmp_path, and let the real nginx parse the result.
    env = {name: entry["value"] for name, entry in env_of(container(docs, "flk-web", "nginx")).items()}
    assert env["FLK_UPSTREAM"] == "127.0.0.1:8000"
    conf_d = tmp_path / "conf.d"
    conf_d.mkdir()
    for name, text in data.items():
        filled = re.sub(r"\$\{([A-Z_][A-Z0-9_]*)\}", lambda m: env.get(m.group(1), m.group(0)), text)
        assert "${" not in filled, f"{name}: a placeholder the nginx container does not set"
        (conf_d / name.removesuffix(".template")).write_text(filled.replace("/etc/flk/tls", str(tmp_path)))
    _self_signed(tmp_path)
    (tmp_path / "nginx.conf").write_text(
        f"pid {tmp_path}/nginx.pid;\nerror_log stderr;\nevents {{}}\n"
        f"http {{\n  access_log off;\n  client_body_temp_path {tmp_path}/body;\n"
        f"  proxy_temp_path {tmp_path}/proxy;\n"
        f"  include {conf_d}/*.conf;\n}}\n"
    )
    done = subprocess.run(
        [nginx_binary(), "-t", "-q", "-p", str(tmp_path), "-c", str(tmp_path / "nginx.conf"), "-e", "stderr"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 0, done.stderr
    if case == "mtls-nginx":
        assert sorted(p.name for p in conf_d.iterdir()) == ["flk.conf", "mtls.conf", "realip.conf"]
        assert "listen 8443 ssl;" in (conf_d / "flk.conf").read_text()


# --- two regions ----------------------------------------------------------------------------------


def _region_env() -> dict[str, dict[str, str]]:
    found = {}
    for case in ("region-a", "region-b"):
        env = env_of(container(rendered(case), "flk-web", "web"))
        found[case] = {name: entry.get("value", "") for name, entry in env.items()}
        found[case]["database secret"] = env["DATABASE_URL"]["valueFrom"]["secretKeyRef"]["name"]
        found[case]["redis secret"] = env["REDIS_URL"]["valueFrom"]["secretKeyRef"]["name"]
    return found


def test_two_regions_render_distinct_region_ids_buckets_and_stores():
    a, b = _region_env().values()
    for name in (
        "REGION_ID",
        "REGION_BUCKET",
        "AUDIT_ANCHOR_S3_BUCKET",
        "TIER_COLD_BUCKET",
        "REPORTS_BUCKET",
        "database secret",
        "redis secret",
    ):
        assert a[name] and b[name] and a[name] != b[name], name
    # Each region ships into the other's bucket, and replays its own.
    assert a["WAL_REMOTE_BUCKET"] == b["REGION_BUCKET"]
    assert b["WAL_REMOTE_BUCKET"] == a["REGION_BUCKET"]
    assert a["WAL_REPLICATION_ENABLED"] == b["WAL_REPLICATION_ENABLED"] == "true"
    # Every FLK process of a region gets the same REGION_ID (the Job and beat included).
    for case, env in (("region-a", a), ("region-b", b)):
        for name, template in pod_templates(rendered(case)).items():
            for c in template["spec"]["containers"]:
                if c["name"] != "nginx":
                    assert env_of(c)["REGION_ID"]["value"] == env["REGION_ID"], (case, name)


def test_the_audit_key_and_encryption_keys_come_from_the_same_secret_name_in_both_regions():
    # Replicated HMAC secrets are encrypted with FLK_ENCRYPTION_KEYS: both regions read the key from
    # a Secret of the same name (docs/deployment.md says its content must match).
    names = set()
    for case in ("region-a", "region-b"):
        env = env_of(container(rendered(case), "flk-web", "web"))
        names.add(env["FLK_ENCRYPTION_KEYS"]["valueFrom"]["secretKeyRef"]["name"])
    assert names == {"flk-app"}
