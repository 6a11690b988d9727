"""Static checks of the Grafana dashboards and their provisioning (no Grafana needed).

A dashboard breaks silently: a renamed metric, a Grafana-only macro, a datasource uid that
nothing provides all render as an empty panel. These tests read the JSON models as Grafana
would and check every query against the metrics the worker really exports.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client import CollectorRegistry

from router import metrics

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]
GRAFANA = ROOT / "deploy" / "grafana"
DASHBOARDS = GRAFANA / "dashboards"
DATASOURCES = GRAFANA / "provisioning" / "datasources" / "prometheus.yml"
PROVIDERS = GRAFANA / "provisioning" / "dashboards" / "router.yml"

DASHBOARD_FILES = sorted(DASHBOARDS.glob("*.json"))
METRIC = re.compile(r"\brouter_[a-z_]+")
HISTOGRAM_SUFFIXES = ("_bucket", "_count", "_sum")
PANEL_TYPES = {"timeseries", "stat"}


# --------------------------------------------------------------------------- helpers


def _load(path: Path) -> dict[str, Any]:
    data = json.loads(path.read_text())
    assert isinstance(data, dict), f"{path.name} is not a JSON object"
    return data


def _panels(dashboard: dict[str, Any]) -> list[dict[str, Any]]:
    """Every panel, including those nested in collapsed rows."""
    out: list[dict[str, Any]] = []
    for panel in dashboard.get("panels") or []:
        out.append(panel)
        out.extend(panel.get("panels") or [])
    return [p for p in out if p.get("type") != "row"]


def _all_targets() -> list[tuple[str, dict[str, Any], dict[str, Any]]]:
    return [
        (path.name, panel, target)
        for path in DASHBOARD_FILES
        for panel in _panels(_load(path))
        for target in panel.get("targets") or []
    ]


def _exprs() -> list[tuple[str, str]]:
    return [
        (f"{name} / {panel['title']} / {target.get('refId')}", target["expr"])
        for name, panel, target in _all_targets()
    ]


def _exported() -> tuple[set[str], set[str]]:
    """(series names a scrape shows, histogram base names) of router/metrics.py."""
    registry = CollectorRegistry()
    metrics.create(registry)
    names: set[str] = set()
    histograms: set[str] = set()
    # Families are listed even before any label set is used (their samples are not).
    for family in registry.collect():
        if family.type == "counter":
            names.add(f"{family.name}_total")
        elif family.type == "histogram":
            histograms.add(family.name)
            names.update(family.name + suffix for suffix in HISTOGRAM_SUFFIXES)
        else:
            names.add(family.name)
    return names, histograms


def _datasource_uid() -> str:
    data = yaml.safe_load(DATASOURCES.read_text())
    sources = data["datasources"]
    prometheus = [s for s in sources if s["type"] == "prometheus"]
    assert len(prometheus) == 1, "provision exactly one Prometheus datasource"
    return prometheus[0]["uid"]


# --------------------------------------------------------------------------- dashboards


def test_both_dashboards_exist() -> None:
    names = {p.name for p in DASHBOARD_FILES}
    assert {"router-overview.json", "buyers.json"} <= names


@pytest.mark.parametrize("path", DASHBOARD_FILES, ids=lambda p: p.name)
def test_dashboard_model_is_well_formed(path: Path) -> None:
    dashboard = _load(path)
    assert dashboard.get("title")
    assert re.fullmatch(r"[A-Za-z0-9_-]{1,40}", dashboard.get("uid") or ""), "stable uid"
    assert dashboard.get("id") is None, "provisioned dashboards get their id from Grafana"
    assert dashboard.get("schemaVersion", 0) >= 36
    assert not (dashboard.get("templating") or {}).get("list"), "no template variables"
    panels = _panels(dashboard)
    assert panels, "no panels"
    ids = [p.get("id") for p in panels]
    assert all(isinstance(i, int) for i in ids), "every panel needs an integer id"
    assert len(ids) == len(set(ids)), f"duplicate panel ids in {path.name}"
    titles = [p.get("title") for p in panels]
    assert all(titles) and len(titles) == len(set(titles)), "panel titles must be unique"


def test_dashboard_uids_are_unique() -> None:
    uids = [_load(p)["uid"] for p in DASHBOARD_FILES]
    assert len(uids) == len(set(uids))


@pytest.mark.parametrize("path", DASHBOARD_FILES, ids=lambda p: p.name)
def test_panels_fit_the_grid_without_overlap(path: Path) -> None:
    taken: set[tuple[int, int]] = set()
    for panel in _panels(_load(path)):
        pos = panel["gridPos"]
        x, y, w, h = pos["x"], pos["y"], pos["w"], pos["h"]
        assert w > 0 and h > 0 and x >= 0 and y >= 0, panel["title"]
        assert x + w <= 24, f"{panel['title']} overflows the 24-column grid"
        cells = {(cx, cy) for cx in range(x, x + w) for cy in range(y, y + h)}
        assert not cells & taken, f"{panel['title']} overlaps another panel"
        taken |= cells


def test_every_panel_queries_prometheus() -> None:
    uid = _datasource_uid()
    for path in DASHBOARD_FILES:
        for panel in _panels(_load(path)):
            where = f"{path.name} / {panel['title']}"
            assert panel["type"] in PANEL_TYPES, f"{where}: unexpected type {panel['type']}"
            assert panel["datasource"] == {"type": "prometheus", "uid": uid}, where
            targets = panel.get("targets") or []
            assert targets, f"{where} has no targets"
            refs = [t.get("refId") for t in targets]
            assert all(refs) and len(refs) == len(set(refs)), f"{where}: refIds"
            for target in targets:
                assert (target.get("expr") or "").strip(), f"{where}: empty expr"
                source = target.get("datasource", panel["datasource"])
                assert source["uid"] == uid, f"{where}: target datasource uid"


def test_exprs_use_only_exported_metrics() -> None:
    names, histograms = _exported()
    for where, expr in _exprs():
        for name in METRIC.findall(expr):
            base = name
            for suffix in HISTOGRAM_SUFFIXES:
                if name.endswith(suffix) and name.removesuffix(suffix) in histograms:
                    base = name.removesuffix(suffix)
            assert base in names or base in histograms, f"{where}: {name} is not exported"
            # A histogram's bare name is not a series: query _bucket, _count or _sum.
            assert name not in histograms, f"{where}: use {name}_bucket/_count/_sum"


def test_exprs_cover_the_dashboards_promises() -> None:
    used = {name for _, expr in _exprs() for name in METRIC.findall(expr)}
    for name in (
        "router_intake_events_total",
        "router_decisions_total",
        "router_dead_letters_total",
        "router_end_to_end_latency_seconds_bucket",
        "router_stage_seconds_bucket",
        "router_consumer_lag_messages",
        "router_rebalances_total",
        "router_assigned_partitions",
        "router_producer_send_errors_total",
        "router_leads_sold_total",
        "router_revenue_dollars_total",
        "router_buyer_cap_used",
        "router_buyer_cap_limit",
    ):
        assert name in used, f"no panel shows {name}"
    assert any('up{job="lead-router"}' in expr for _, expr in _exprs()), "no workers-up panel"


def test_exprs_are_plain_promql() -> None:
    """Literal ranges only: Grafana macros and variables do not exist in Prometheus."""
    for where, expr in _exprs():
        assert "$" not in expr, f"{where}: Grafana macro or variable in {expr!r}"
        for opening, closing in ("()", "[]", "{}"):
            assert expr.count(opening) == expr.count(closing), f"{where}: unbalanced"
        for window in re.findall(r"\[([^\]]*)\]", expr):
            assert re.fullmatch(r"\d+[smhd]", window), f"{where}: range [{window}]"
        for call in re.finditer(r"\b(rate|increase|irate|deriv|delta)\(([^()]*)\)", expr):
            assert "[" in call.group(2), f"{where}: {call.group(1)}() needs a range vector"


def test_quantiles_aggregate_by_le() -> None:
    for where, expr in _exprs():
        for match in re.finditer(r"histogram_quantile\(\s*([0-9.]+)\s*,\s*(\w+)", expr):
            assert 0 < float(match.group(1)) < 1, f"{where}: quantile out of range"
            rest = expr[match.start() :]
            by = re.search(r"\bby\s*\(([^)]*)\)", rest)
            assert by and "le" in {s.strip() for s in by.group(1).split(",")}, (
                f"{where}: histogram_quantile over a sum must keep le"
            )
            assert "_bucket[" in rest, f"{where}: histogram_quantile needs rate(..._bucket[..])"


@pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool not installed")
def test_exprs_parse(tmp_path: Path) -> None:
    rules = [
        {"record": f"dashboard:check:{i}", "expr": expr} for i, (_, expr) in enumerate(_exprs())
    ]
    path = tmp_path / "exprs.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboards", "rules": rules}]}))
    result = subprocess.run(
        ["promtool", "check", "rules", str(path)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stdout + result.stderr


# --------------------------------------------------------------------------- provisioning


def test_datasource_provisioning() -> None:
    data = yaml.safe_load(DATASOURCES.read_text())
    assert data["apiVersion"] == 1
    (source,) = [s for s in data["datasources"] if s["type"] == "prometheus"]
    assert source["uid"] == "prometheus"
    assert source["url"] == "http://prometheus:9090"
    assert source.get("isDefault") is True
    assert source.get("access", "proxy") == "proxy", "the browser cannot resolve `prometheus`"
    defaults = [s for s in data["datasources"] if s.get("isDefault")]
    assert len(defaults) == 1, "at most one default datasource per org"


def test_dashboard_provider_loads_the_dashboards_directory() -> None:
    data = yaml.safe_load(PROVIDERS.read_text())
    assert data["apiVersion"] == 1
    (provider,) = data["providers"]
    assert provider["type"] == "file"
    assert provider["options"]["path"] == "/var/lib/grafana/dashboards"
