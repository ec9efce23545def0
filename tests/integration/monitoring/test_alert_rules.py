"""The chart's alerts, unit-tested with Prometheus' own ``promtool`` on synthetic series.

``data/alerts.test.yaml`` feeds series shaped as a ServiceMonitor scrape delivers them to the
rules the chart renders, and says when each alert fires and when it stays quiet.
``promtool check rules`` parses every profile's rules and every dashboard query besides.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import require
from tests.integration.chart import chart
from tests.integration.monitoring import queries

CASES = Path(__file__).parent / "data" / "alerts.test.yaml"


def promtool() -> str:
    found = shutil.which("promtool")
    require(found is not None, "promtool is not installed (apt-get install prometheus)")
    assert found is not None
    return found


def run_promtool(*args: str, cwd: Path) -> None:
    done = subprocess.run(
        [promtool(), *args], cwd=cwd, capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, f"promtool {' '.join(args)}:\n{done.stdout}\n{done.stderr}"


def write_rules(path: Path, groups: list[dict[str, Any]]) -> Path:
    path.write_text(yaml.safe_dump({"groups": groups}, sort_keys=False))
    return path


def _alert_names() -> set[str]:
    return {
        str(rule["alert"])
        for group in queries.rule_groups(queries.monitoring_render())
        for rule in group["rules"]
    }


def test_each_alert_fires_when_it_should_and_stays_quiet_otherwise(tmp_path: Path) -> None:
    write_rules(tmp_path / "rules.yaml", queries.rule_groups(queries.monitoring_render()))
    shutil.copy(CASES, tmp_path / CASES.name)
    run_promtool("test", "rules", CASES.name, cwd=tmp_path)


def test_every_alert_has_a_case_where_it_fires_and_one_where_it_stays_quiet() -> None:
    cases = yaml.safe_load(CASES.read_text())
    checks = [check for test in cases["tests"] for check in test["alert_rule_test"]]
    fires = {check["alertname"] for check in checks if check["exp_alerts"]}
    quiet = {check["alertname"] for check in checks if not check["exp_alerts"]}
    assert fires == _alert_names()
    assert quiet == _alert_names()


@pytest.mark.parametrize("profile", chart.PROFILES)
def test_promtool_accepts_the_rules_under_every_profile(profile: str, tmp_path: Path) -> None:
    values = chart.profile_values(profile)
    values.setdefault("metrics", {}).setdefault("prometheusRule", {})["enabled"] = True
    namespace = "security" if profile == "custom-namespace" else chart.NAMESPACE
    rendered = chart.render(values, namespace=namespace)
    write_rules(tmp_path / "rules.yaml", queries.rule_groups(rendered))
    run_promtool("check", "rules", "rules.yaml", cwd=tmp_path)


def test_promtool_accepts_every_dashboard_query(tmp_path: Path) -> None:
    dashboard = queries.dashboard_queries(queries.monitoring_render())
    group = {
        "name": "dashboard",
        "rules": [
            {"record": f"dashboard:query_{index}", "expr": query.promql}
            for index, query in enumerate(dashboard)
        ],
    }
    write_rules(tmp_path / "dashboard.yaml", [group])
    run_promtool("check", "rules", "dashboard.yaml", cwd=tmp_path)
