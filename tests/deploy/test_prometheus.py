"""Prometheus rules and scrape: promtool on the rules, and a real Prometheus scraping a real FLK.

The metric names the rules (and, in test_dashboards.py, the Grafana panels) query must be names FLK can
export. Metrics of features that need setup first (tiering, regions, webhooks, SIEM, reviews...) are not
in a scrape of a fresh server, so the names FLK can export are read from the code's declarations
(every ``Counter(…)``, ``Gauge(…)``, ``Histogram(…)`` and ``…MetricFamily(…)`` under apps/ and
flk_project/, named by its first argument) and completed by a live scrape for what libraries export
(django-prometheus's ``django_http_*``). Names from other exporters are listed in ``EXTERNAL_METRICS``
with the exporter that provides them.
"""

from __future__ import annotations

import ast
import re
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import yaml
from django.conf import settings

from tests.conftest import submit
from tests.support.servers import ROOT, free_port, gunicorn, kill_group

PROMETHEUS_DIR = ROOT / "deployments/prometheus"
RULE_FILES = sorted((PROMETHEUS_DIR / "rules").glob("*.yml"))
RULE_TESTS = sorted((PROMETHEUS_DIR / "tests").glob("*.yml"))
RUNBOOKS = ROOT / "docs/runbooks"

# Metrics the rules and dashboards read from other exporters (FLK exports no host, Redis or PostgreSQL
# health of its own); docs/observability.md lists them too.
EXTERNAL_METRICS = {
    "up": "Prometheus itself (one series per scrape target)",
    "node_filesystem_avail_bytes": "node_exporter",
    "node_filesystem_size_bytes": "node_exporter",
    "node_cpu_seconds_total": "node_exporter",
    "node_memory_MemAvailable_bytes": "node_exporter",
    "node_memory_MemTotal_bytes": "node_exporter",
    "redis_up": "redis_exporter",
    "redis_commands_duration_seconds_total": "redis_exporter",
    "redis_commands_total": "redis_exporter",
    "pg_up": "postgres_exporter",
}

# The seed's names (DESIGN §8) that recording rules must provide where prometheus_client's differ.
SEED_NAMES = {
    "flk_dedup_hits",
    "flk_accepted",
    "flk_escalated",
    "flk_signature_errors",
    "flk_wal_errors",
    "flk_ingest_total_by_tenant",
    "flk_dedup_hits_by_tenant",
    "flk_accepted_by_tenant",
    "flk_escalated_by_tenant",
    "flk_signature_errors_by_tenant",
    "flk_quota_exceeded_by_tenant",
    "tier_hot_hits",
    "tier_warm_hits",
    "tier_cold_hits",
    "tier_promotions",
    "tier_demotions",
    "tier_evictions",
}

_DECLARATIONS = {
    "Counter": ("_total",),
    "Gauge": ("",),
    "Histogram": ("_bucket", "_count", "_sum"),
    "Summary": ("", "_count", "_sum"),
    "Info": ("_info",),
    "Enum": ("",),
    "GaugeMetricFamily": ("",),
    "CounterMetricFamily": ("_total",),
    "HistogramMetricFamily": ("_bucket", "_count", "_sum"),
    "SummaryMetricFamily": ("", "_count", "_sum"),
}

# PromQL words that look like metric names but are not.
_KEYWORDS = {
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
    "bool",
    "and",
    "or",
    "unless",
    "offset",
    "inf",
    "nan",
}


# -- helpers (test_dashboards.py uses them too) --------------------------------------------------------


def declared_metrics(roots: tuple[Path, ...] = (ROOT / "apps", ROOT / "flk_project")) -> dict[str, Path]:
    """Every exposition name the code declares, mapped to the file that declares it.

    A Counter named ``flk_ingest`` (or ``flk_ingest_total``) is exposed as ``flk_ingest_total``; a
    Histogram as ``_bucket``, ``_count`` and ``_sum``.
    """
    names: dict[str, Path] = {}
    for root in roots:
        for path in root.rglob("*.py"):
            if "migrations" in path.parts:
                continue
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                if not isinstance(node, ast.Call) or not node.args:
                    continue
                func = node.func
                kind = func.id if isinstance(func, ast.Name) else getattr(func, "attr", "")
                first = node.args[0]
                if kind not in _DECLARATIONS or not isinstance(first, ast.Constant):
                    continue
                if not isinstance(first.value, str):
                    continue
                base = first.value
                if _DECLARATIONS[kind][0] == "_total":
                    base = base.removesuffix("_total")
                for suffix in _DECLARATIONS[kind]:
                    names[base + suffix] = path
    return names


def promql_metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression selects (functions, keywords and label names left out)."""
    text = re.sub(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'', '""', expr)  # strings
    text = re.sub(r"\{[^}]*\}", " ", text)  # label matchers
    text = re.sub(r"\[[^\]]*\]", " ", text)  # ranges and subqueries
    text = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", text)
    text = re.sub(r"\$\w+", " ", text)  # Grafana variables ($tenant, $__rate_interval)
    names = set()
    for match in re.finditer(r"(?<![\w.:])([a-zA-Z_:][a-zA-Z0-9_:]*)(\s*\()?", text):
        word, call = match.group(1), match.group(2)
        if call or word.lower() in _KEYWORDS:
            continue
        if re.fullmatch(r"\d+[smhdwy]", word):
            continue
        names.add(word)
    return names


def rules() -> list[dict]:
    """Every rule (alerting and recording) of deployments/prometheus/rules/."""
    found = []
    for path in RULE_FILES:
        for group in yaml.safe_load(path.read_text(encoding="utf-8"))["groups"]:
            found.extend(group["rules"])
    return found


def recorded_names() -> set[str]:
    """The names recording rules create."""
    return {rule["record"] for rule in rules() if "record" in rule}


def runbook_path(url: str) -> Path:
    """The docs/runbooks/ file a runbook_url points to."""
    match = re.fullmatch(r"\{\{ \$externalLabels\.flk_docs_url \}\}/docs/(runbooks/[a-z0-9-]+\.md)", url)
    assert match, f"runbook_url {url!r} is not <flk_docs_url>/docs/runbooks/<name>.md"
    return ROOT / "docs" / match.group(1)


def promtool(*args: str) -> subprocess.CompletedProcess:
    """Run promtool; the test fails with its output when it does."""
    binary = shutil.which("promtool")
    assert binary, "promtool is missing: run deployments/local/ensure-services.sh"
    done = subprocess.run([binary, *args], capture_output=True, text=True, timeout=60, cwd=PROMETHEUS_DIR)
    assert done.returncode == 0, f"promtool {' '.join(args)}:\n{done.stdout}\n{done.stderr}"
    return done


# -- promtool ------------------------------------------------------------------------------------------


def test_promtool_check_rules():
    out = promtool("check", "rules", *map(str, RULE_FILES)).stdout
    assert out.count("SUCCESS") == len(RULE_FILES)


def test_promtool_test_rules():
    out = promtool("test", "rules", *map(str, RULE_TESTS)).stdout
    assert out.count("SUCCESS") == len(RULE_TESTS)


def test_promtool_check_config(tmp_path):
    # password_file is a mounted secret in a deployment; give promtool one in a copy of the directory.
    copy = tmp_path / "prometheus"
    shutil.copytree(PROMETHEUS_DIR, copy)
    (copy / "secrets").mkdir()
    (copy / "secrets/metrics_pass").write_text("x")
    done = subprocess.run(
        [shutil.which("promtool") or "promtool", "check", "config", str(copy / "prometheus.yml")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stdout + done.stderr


# -- what the rules say --------------------------------------------------------------------------------


ALERTS = [rule for rule in rules() if "alert" in rule]


@pytest.mark.parametrize("rule", ALERTS, ids=lambda rule: rule["alert"])
def test_alert_has_severity_summary_description_and_an_existing_runbook(rule):
    assert rule["labels"]["severity"] in {"page", "ticket"}
    annotations = rule["annotations"]
    assert annotations.get("summary") and annotations.get("description")
    runbook = runbook_path(annotations["runbook_url"])
    assert runbook.is_file(), f"{rule['alert']}: {runbook} does not exist"
    assert rule["alert"] in runbook.read_text(encoding="utf-8"), f"{runbook.name} must name {rule['alert']}"


def test_every_alert_is_fired_and_silenced_by_the_unit_tests():
    fired: set[str] = set()
    silenced: set[str] = set()
    for path in RULE_TESTS:
        for test in yaml.safe_load(path.read_text(encoding="utf-8"))["tests"]:
            for case in test.get("alert_rule_test", []):
                (fired if case.get("exp_alerts") else silenced).add(case["alertname"])
    names = {rule["alert"] for rule in ALERTS}
    assert names - fired == set(), "alerts no unit test fires"
    assert names - silenced == set(), "alerts no unit test checks silent"
    assert len(names) >= 19


def test_recording_rules_provide_the_seed_names():
    assert recorded_names() >= SEED_NAMES


def test_every_metric_a_rule_reads_can_be_exported():
    known = set(declared_metrics()) | recorded_names() | set(EXTERNAL_METRICS)
    unknown = {}
    for rule in rules():
        names = promql_metric_names(str(rule["expr"]))
        # django-prometheus's metrics are checked against the live scrape (test below).
        missing = {name for name in names - known if not name.startswith("django_http_")}
        if missing:
            unknown[rule.get("alert") or rule.get("record")] = sorted(missing)
    assert unknown == {}


def test_the_promql_name_extractor():
    expr = (
        'sum by (tenant_id) (rate(flk_x_total{view=~"a|b",status="5.."}[5m] offset 1h)) / '
        "on (le) group_left histogram_quantile(0.9, rate(y_bucket[$__rate_interval])) "
        'and deriv(sum(flk_z)[15m:1m]) > 1e-9 or vector(0) unless absent(up{job="flk"})'
    )
    assert promql_metric_names(expr) == {"flk_x_total", "y_bucket", "flk_z", "up"}


# -- a real Prometheus scraping a real FLK -------------------------------------------------------------


def _prometheus_config(tmp_path: Path, target: str) -> Path:
    """deployments/prometheus/prometheus.yml with the FLK job pointed at ``target`` every second."""
    config = yaml.safe_load((PROMETHEUS_DIR / "prometheus.yml").read_text(encoding="utf-8"))
    config["global"].update({"scrape_interval": "1s", "evaluation_interval": "1s"})
    config["rule_files"] = [str(PROMETHEUS_DIR / "rules/*.yml")]
    (flk,) = [job for job in config["scrape_configs"] if job["job_name"] == "flk"]
    assert flk["basic_auth"]["username"] == settings.METRICS_USER
    password = tmp_path / "metrics_pass"
    password.write_text(settings.METRICS_PASS)
    flk["basic_auth"]["password_file"] = str(password)
    flk["static_configs"] = [{"targets": [target]}]
    config["scrape_configs"] = [flk]  # the exporters are not running here
    path = tmp_path / "prometheus.yml"
    path.write_text(yaml.safe_dump(config))
    return path


def _start_prometheus(config: Path, data: Path) -> tuple[subprocess.Popen, str, Path]:
    port = free_port()
    log = data.parent / "prometheus.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [
                shutil.which("prometheus") or "prometheus",
                f"--config.file={config}",
                f"--storage.tsdb.path={data}",
                f"--web.listen-address=127.0.0.1:{port}",
                "--storage.tsdb.retention.time=1h",
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:  # Prometheus answers 503 until its storage and rules are loaded
        try:
            if httpx.get(f"{url}/-/ready", timeout=1).status_code == 200:
                return proc, url, log
        except httpx.TransportError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            kill_group(proc)
            raise AssertionError(f"prometheus did not start:\n{log.read_text(errors='replace')[-4000:]}")
        time.sleep(0.2)


def _query(url: str, expr: str) -> list[dict]:
    answer = httpx.get(f"{url}/api/v1/query", params={"query": expr}, timeout=5).json()
    assert answer["status"] == "success", answer
    return answer["data"]["result"]


def _wait_for(url: str, expr: str, predicate: object, timeout: float = 30) -> list[dict]:
    deadline = time.monotonic() + timeout
    while True:
        try:
            result = _query(url, expr)
            if predicate(result):  # type: ignore[operator]
                return result
        except httpx.TransportError:
            result = []
        if time.monotonic() > deadline:
            raise AssertionError(f"{expr}: {result}")
        time.sleep(0.5)


def _label_values(url: str) -> list[str]:
    """Every metric name Prometheus holds (asked again if an answer comes back empty or cut)."""
    for _ in range(10):
        answer = httpx.get(f"{url}/api/v1/label/__name__/values", timeout=5)
        try:
            return answer.json()["data"]
        except ValueError:
            time.sleep(0.5)
    raise AssertionError(f"label values: {answer.status_code} {answer.text[:200]!r}")


@pytest.fixture
def scraped_flk(transactional_db, tenant, pcs_factory, tmp_path) -> Iterator[tuple[str, dict[str, int]]]:
    """A gunicorn FLK that served a demo load, scraped by a real Prometheus; yields (its URL, counts)."""
    accepted = [pcs_factory(epoch=i) for i in range(24)]
    escalated = [pcs_factory(epoch=100 + i, D_hat=0.1) for i in range(8)]
    with gunicorn(workers=2, PROMETHEUS_MULTIPROC_DIR=str(tmp_path / "multiproc")) as server:
        for pcs in accepted + escalated:
            with httpx.Client(base_url=server.url) as client:  # new connections: both workers serve
                assert submit(client, pcs).status_code in (200, 202)
        with httpx.Client(base_url=server.url) as client:
            assert submit(client, accepted[0]).headers["Idempotent-Replayed"] == "true"
            assert submit(client, {**accepted[1], "sig": "AAAA"}).status_code == 401
            assert client.get("/readyz").status_code == 200
        config = _prometheus_config(tmp_path, server.url.removeprefix("http://"))
        proc, url, log = _start_prometheus(config, tmp_path / "prometheus-data")
        try:
            decided = len(accepted) + len(escalated)
            # flk_ingest counts every answer of the pipeline (the 401 too); the per-tenant count decisions.
            yield url, {"ingest": decided + 1, "decided": decided, "accepted": len(accepted)}
        except BaseException:
            print(log.read_text(errors="replace")[-4000:])
            raise
        finally:
            kill_group(proc)


@pytest.mark.slow
def test_prometheus_scrapes_flk_through_basic_auth_and_evaluates_the_rules(scraped_flk):
    url, counts = scraped_flk
    up = _wait_for(url, 'up{job="flk"}', lambda r: r and r[0]["value"][1] == "1")
    assert up[0]["metric"]["job"] == "flk"
    ingest = _wait_for(url, "sum(flk_ingest_total)", lambda r: r and float(r[0]["value"][1]) > 0)
    assert float(ingest[0]["value"][1]) == counts["ingest"]
    # The recording rules run on the scraped series: the seed's names carry the same values.
    by_tenant = _wait_for(url, "flk_ingest_total_by_tenant", bool)
    per_tenant = {series["metric"]["tenant_id"]: float(series["value"][1]) for series in by_tenant}
    assert per_tenant == {"default": counts["decided"]}
    accepted = _wait_for(url, "sum(flk_accepted)", bool)
    assert float(accepted[0]["value"][1]) == counts["accepted"]
    assert float(_wait_for(url, "sum(flk_dedup_hits)", bool)[0]["value"][1]) == 1
    assert float(_wait_for(url, "sum(flk_signature_errors_by_tenant)", bool)[0]["value"][1]) == 1

    # Every name a rule or dashboard reads is exported by FLK's code, a recording rule, another
    # exporter, or (django-prometheus) seen in this scrape; and those FLK exports from its first
    # requests on are in this scrape.
    from tests.deploy.test_dashboards import dashboard_metric_names

    live = set(_label_values(url))
    used = set().union(*(promql_metric_names(str(rule["expr"])) for rule in rules()))
    used |= dashboard_metric_names()
    declared = declared_metrics()
    known = set(declared) | recorded_names() | set(EXTERNAL_METRICS) | live
    assert sorted(used - known) == []
    core = {ROOT / "apps/pcs/metrics.py", ROOT / "apps/audit/metrics.py"}
    # Labelled by what only happens later (a 429, a policy decision by version is there already).
    needs_an_event = {"flk_quota_exceeded_by_tenant_total", "flk_wal_quarantined_total"}
    always = {name for name in used if declared.get(name) in core} - needs_an_event
    always |= {name for name in used if name.startswith("django_http_responses_total_by_status")}
    assert sorted(always - live) == []
