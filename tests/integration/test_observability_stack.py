"""A real Prometheus scrapes a real worker under traffic; every dashboard panel and alert
expression is evaluated through Prometheus' HTTP API."""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
import threading
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

import pytest
import yaml
from conftest import wait_for
from test_pipeline import write_buyers

from router import embedded
from router.loadgen import produce

pytestmark = pytest.mark.integration

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"


def panel_queries() -> list[tuple[str, str]]:
    queries = []
    for path in sorted((DEPLOY / "grafana" / "dashboards").glob("*.json")):
        dashboard = json.loads(path.read_text())
        stack = list(dashboard["panels"])
        while stack:
            panel = stack.pop()
            stack.extend(panel.get("panels", []))
            for target in panel.get("targets", []):
                if target.get("expr"):
                    queries.append((f"{path.stem}: {panel['title']}", target["expr"]))
    return queries


def alert_queries() -> list[tuple[str, str]]:
    rules = yaml.safe_load((DEPLOY / "prometheus" / "alerts.yml").read_text())
    return [(r["alert"], r["expr"]) for g in rules["groups"] for r in g["rules"]]


def api(port: int, path: str, **params: str) -> Any:
    url = f"http://127.0.0.1:{port}/api/v1/{path}?{urllib.parse.urlencode(params)}"
    with urllib.request.urlopen(url, timeout=5) as response:
        return json.loads(response.read())


@pytest.fixture
def prometheus(tmp_path: Path, workers) -> Any:  # type: ignore[no-untyped-def]
    binary = shutil.which("prometheus")
    assert binary, "Debian's prometheus package is missing: `make test` installs it"
    buyers_file, _ = write_buyers(tmp_path)
    group = workers(buyers_file)
    web_port = embedded.free_port()
    group.start(ROUTER_WEB_PORT=str(web_port))
    prom_port = embedded.free_port()
    config = {
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "rule_files": [str(DEPLOY / "prometheus" / "alerts.yml")],
        "scrape_configs": [
            {
                "job_name": "lead-router",
                "static_configs": [{"targets": [f"127.0.0.1:{web_port}"]}],
            }
        ],
    }
    (tmp_path / "prometheus.yml").write_text(yaml.safe_dump(config))
    log = open(tmp_path / "prometheus.log", "wb")  # noqa: SIM115
    server = subprocess.Popen(
        [
            binary,
            f"--config.file={tmp_path / 'prometheus.yml'}",
            f"--storage.tsdb.path={tmp_path / 'tsdb'}",
            f"--web.listen-address=127.0.0.1:{prom_port}",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    log.close()
    try:
        yield group, prom_port
    finally:
        server.terminate()
        server.wait(20)


def test_every_panel_returns_data_and_every_alert_expression_is_valid(prometheus) -> None:  # type: ignore[no-untyped-def]
    group, port = prometheus
    stop_feeding = threading.Event()
    feeder = threading.Thread(
        target=lambda: asyncio.run(
            produce(group.broker.bootstrap_servers, 2400, rate=40, seed=3, stop=stop_feeding.is_set)
        ),
        daemon=True,
    )
    feeder.start()
    try:
        check_panels_and_alerts(port)
    finally:
        # Stop the feed before the fixture stops the broker under it.
        stop_feeding.set()
        feeder.join(timeout=30)


def check_panels_and_alerts(port: int) -> None:
    def scraped() -> tuple[bool, object]:
        try:
            targets = api(port, "targets")["data"]["activeTargets"]
        except OSError as exc:
            return False, exc
        return any(t["health"] == "up" for t in targets), targets

    wait_for(scraped, timeout=60)

    panels = panel_queries()
    assert len(panels) >= 20

    def all_panels_have_data() -> tuple[bool, object]:
        empty = []
        for name, expr in panels:
            answer = api(port, "query", query=expr)
            assert answer["status"] == "success", (name, expr, answer)
            if not answer["data"]["result"]:
                empty.append(name)
        return not empty, empty

    wait_for(all_panels_have_data, timeout=90, interval=3)

    for name, expr in alert_queries():
        answer = api(port, "query", query=expr)
        assert answer["status"] == "success", (name, answer)

    rules = api(port, "rules")["data"]["groups"]
    loaded = {r["name"]: r["health"] for g in rules for r in g["rules"]}
    assert {name for name, _ in alert_queries()} == set(loaded)
    assert set(loaded.values()) == {"ok"}, loaded
