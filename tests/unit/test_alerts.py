"""The Prometheus alert rules, their promtool unit tests, runbooks and the scrape config.

promtool (Debian's `prometheus` package) checks the rules' syntax and runs the rule unit tests
in deploy/prometheus/tests/; the rest are static checks that every alert is documented, linked
to an existing runbook and covered by a test that both fires it and keeps it silent.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]
PROM_DIR = ROOT / "deploy" / "prometheus"
ALERTS = PROM_DIR / "alerts.yml"
ALERT_TESTS = PROM_DIR / "tests" / "alerts_test.yml"
PROM_CONFIG = PROM_DIR / "prometheus.yml"
RUNBOOKS = ROOT / "deploy" / "runbooks"

REQUIRED_ANNOTATIONS = ("summary", "description", "runbook")
SEVERITIES = {"info", "warning", "critical"}


# --------------------------------------------------------------------------- helpers


def _promtool() -> str:
    """promtool's path; a failure (not a skip) when it is missing: the rules must be checked."""
    path = shutil.which("promtool")
    if path is None:
        pytest.fail(
            "promtool not found on PATH: the alert rules cannot be checked. `make test` "
            "installs it with Debian's prometheus package (apt-get install prometheus).",
            pytrace=False,
        )
    return path


def _run(args: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, cwd=cwd, capture_output=True, text=True, timeout=120, check=False)


def _assert_ok(result: subprocess.CompletedProcess[str]) -> None:
    assert result.returncode == 0, (
        f"{' '.join(map(str, result.args))} exited {result.returncode}\n"
        f"--- stdout ---\n{result.stdout}\n--- stderr ---\n{result.stderr}"
    )


def _load(path: Path) -> dict[str, Any]:
    data = yaml.safe_load(path.read_text())
    assert isinstance(data, dict), f"{path.relative_to(ROOT)} is not a YAML mapping"
    return data


def _alert_rules() -> list[dict[str, Any]]:
    groups = _load(ALERTS).get("groups") or []
    rules = [rule for group in groups for rule in group.get("rules") or [] if "alert" in rule]
    assert rules, "alerts.yml defines no alerts"
    return rules


def _rule_tests() -> list[dict[str, Any]]:
    return [
        case
        for test in _load(ALERT_TESTS).get("tests") or []
        for case in test.get("alert_rule_test") or []
    ]


# --------------------------------------------------------------------------- promtool


def test_promtool_check_rules() -> None:
    promtool = _promtool()
    _assert_ok(_run([promtool, "check", "rules", str(ALERTS)], cwd=ROOT))


def test_promtool_rule_unit_tests_pass() -> None:
    promtool = _promtool()
    _assert_ok(_run([promtool, "test", "rules", "tests/alerts_test.yml"], cwd=PROM_DIR))


def test_promtool_check_config(tmp_path: Path) -> None:
    promtool = _promtool()
    config = _load(PROM_CONFIG)
    config["rule_files"] = [str(ALERTS)]
    copy = tmp_path / "prometheus.yml"
    copy.write_text(yaml.safe_dump(config, sort_keys=False))
    _assert_ok(_run([promtool, "check", "config", str(copy)], cwd=tmp_path))


# --------------------------------------------------------------------------- rules


def test_one_lead_router_group() -> None:
    names = [group.get("name") for group in _load(ALERTS).get("groups") or []]
    assert names == ["lead-router"]


def test_alert_names_are_unique() -> None:
    names = [rule["alert"] for rule in _alert_rules()]
    assert len(names) == len(set(names)), f"duplicate alert names: {names}"


@pytest.mark.parametrize("rule", _alert_rules(), ids=lambda rule: rule["alert"])
def test_alert_is_documented(rule: dict[str, Any]) -> None:
    annotations = rule.get("annotations") or {}
    missing = [key for key in REQUIRED_ANNOTATIONS if not str(annotations.get(key, "")).strip()]
    assert not missing, f"{rule['alert']} lacks annotations {missing}"
    assert (rule.get("labels") or {}).get("severity") in SEVERITIES, rule.get("labels")
    assert rule.get("for"), f"{rule['alert']} has no `for:` duration"


@pytest.mark.parametrize("rule", _alert_rules(), ids=lambda rule: rule["alert"])
def test_runbook_exists(rule: dict[str, Any]) -> None:
    runbook = str(rule["annotations"]["runbook"])
    assert not Path(runbook).is_absolute(), f"runbook path must be repo-relative: {runbook}"
    path = ROOT / runbook
    assert path.is_file(), f"{rule['alert']}: runbook {runbook} does not exist"
    assert path.parent == RUNBOOKS, f"{runbook} is not under deploy/runbooks/"
    assert path.read_text().startswith(f"# {rule['alert']}"), f"{runbook} is not titled by alert"


def test_every_alert_is_tested_and_only_those() -> None:
    in_rules = {rule["alert"] for rule in _alert_rules()}
    in_tests = {case["alertname"] for case in _rule_tests()}
    assert in_rules == in_tests, (
        f"alerts without tests: {sorted(in_rules - in_tests)}; "
        f"tests for unknown alerts: {sorted(in_tests - in_rules)}"
    )


def test_every_alert_has_a_firing_and_a_silent_case() -> None:
    firing = {case["alertname"] for case in _rule_tests() if case.get("exp_alerts")}
    silent = {case["alertname"] for case in _rule_tests() if not case.get("exp_alerts")}
    names = {rule["alert"] for rule in _alert_rules()}
    assert names <= firing, f"never shown to fire: {sorted(names - firing)}"
    assert names <= silent, f"never shown to stay silent: {sorted(names - silent)}"


# --------------------------------------------------------------------------- scrape config


def test_prometheus_config_loads_the_rules_and_scrapes_both_workers() -> None:
    config = _load(PROM_CONFIG)
    assert config.get("rule_files") == ["alerts.yml"], config.get("rule_files")
    assert (config.get("global") or {}).get("scrape_interval") == "15s"
    jobs = {job["job_name"]: job for job in config.get("scrape_configs") or []}
    assert "lead-router" in jobs, f"no lead-router scrape job in {sorted(jobs)}"
    job = jobs["lead-router"]
    assert job.get("metrics_path", "/metrics") == "/metrics"
    targets = {t for sc in job.get("static_configs") or [] for t in sc.get("targets") or []}
    assert targets == {"router-1:6066", "router-2:6066"}
