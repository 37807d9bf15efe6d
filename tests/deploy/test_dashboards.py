"""Grafana: the provisioned data source, the dashboard provider, and every dashboard's JSON.

Each dashboard must parse, name the provisioned Prometheus data source by its uid in every panel and
target, give every data panel at least one query, and query only metrics FLK can export (its code's
declarations, the recording rules, the exporters listed in test_prometheus.EXTERNAL_METRICS, and
django-prometheus's names; test_prometheus's live test also checks them against a real scrape).
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml

from tests.deploy.test_prometheus import (
    EXTERNAL_METRICS,
    declared_metrics,
    promql_metric_names,
    recorded_names,
)
from tests.support.servers import ROOT

GRAFANA = ROOT / "deployments/grafana"
DASHBOARDS = sorted((GRAFANA / "dashboards").glob("*.json"))
EXPECTED = {"flk-overview", "flk-tenants", "flk-tiering", "flk-regions", "flk-containment"}
# Panels that show text, not data.
TEXT_PANELS = {"text", "row"}


def _datasource_uid() -> str:
    config = yaml.safe_load((GRAFANA / "provisioning/datasources/prometheus.yml").read_text(encoding="utf-8"))
    (source,) = config["datasources"]
    assert source["type"] == "prometheus"
    return source["uid"]


def _panels(dashboard: dict) -> list[dict]:
    found = []
    for panel in dashboard["panels"]:
        found.append(panel)
        found.extend(panel.get("panels", []))  # collapsed rows
    return found


def _queries(dashboard: dict) -> list[str]:
    """Every PromQL expression of a dashboard: panel targets and query variables."""
    exprs = [target["expr"] for panel in _panels(dashboard) for target in panel.get("targets", [])]
    for variable in dashboard.get("templating", {}).get("list", []):
        if variable.get("type") == "query":
            query = variable["query"]
            exprs.append(query["query"] if isinstance(query, dict) else query)
    return exprs


def _metric_names(expr: str) -> set[str]:
    # label_values(metric, label): the second argument is a label, not a metric.
    match = re.fullmatch(r"\s*label_values\(\s*(.+?)\s*,\s*\w+\s*\)\s*", expr)
    return promql_metric_names(match.group(1) if match else expr)


def dashboard_metric_names() -> set[str]:
    """Every metric name any dashboard queries."""
    names: set[str] = set()
    for path in DASHBOARDS:
        for expr in _queries(json.loads(path.read_text(encoding="utf-8"))):
            names |= _metric_names(expr)
    return names


def test_the_seed_dashboards_and_the_buyer_dashboard_are_there():
    uids = {json.loads(path.read_text(encoding="utf-8"))["uid"] for path in DASHBOARDS}
    assert uids == EXPECTED


def test_the_provider_loads_the_directory_compose_mounts_the_dashboards_at():
    config = yaml.safe_load((GRAFANA / "provisioning/dashboards/flk.yml").read_text(encoding="utf-8"))
    (provider,) = config["providers"]
    assert provider["type"] == "file"
    assert provider["options"]["path"] == "/var/lib/grafana/dashboards"


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda path: path.name)
def test_dashboard_structure(path: Path):
    dashboard = json.loads(path.read_text(encoding="utf-8"))
    uid = _datasource_uid()
    assert dashboard["title"] and dashboard["uid"] == path.stem
    panels = _panels(dashboard)
    assert panels
    ids = [panel["id"] for panel in panels]
    assert len(ids) == len(set(ids)), "panel ids must be unique"
    for panel in panels:
        grid = panel["gridPos"]
        assert grid["x"] >= 0 and grid["x"] + grid["w"] <= 24 and grid["h"] > 0, panel["title"]
        if panel["type"] in TEXT_PANELS:
            continue
        assert panel["datasource"] == {"type": "prometheus", "uid": uid}, panel["title"]
        assert panel["targets"], f"{panel['title']} has no query"
        ref_ids = [target["refId"] for target in panel["targets"]]
        assert len(ref_ids) == len(set(ref_ids)), panel["title"]
        for target in panel["targets"]:
            assert target["datasource"]["uid"] == uid and target["expr"].strip(), panel["title"]
    for variable in dashboard.get("templating", {}).get("list", []):
        if variable.get("type") == "query":
            assert variable["datasource"]["uid"] == uid


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda path: path.name)
def test_dashboard_queries_only_known_metrics(path: Path):
    known = set(declared_metrics()) | recorded_names() | set(EXTERNAL_METRICS)
    unknown = {}
    for expr in _queries(json.loads(path.read_text(encoding="utf-8"))):
        missing = {name for name in _metric_names(expr) - known if not name.startswith("django_http_")}
        if missing:
            unknown[expr] = sorted(missing)
    assert unknown == {}


def test_the_buyer_dashboard_measures_containment_as_escalated_and_rejected_over_decided():
    dashboard = json.loads((GRAFANA / "dashboards/flk-containment.json").read_text(encoding="utf-8"))
    (stat,) = [panel for panel in dashboard["panels"] if panel["title"].startswith("Contained before action")]
    expr = stat["targets"][0]["expr"]
    assert 'outcome=~"escalated|rejected"' in expr and expr.count("flk_decisions_by_policy_total") == 2
