"""``minerguard scan`` never skips a kind silently: workload CRDs are judged, the rest named.

Runs the command in-process, as tests/unit/test_scan.py does.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from minerguard import scan
from tests.unit.test_scan import run

POOL = "stratum+tcp://pool.supportxmr.com:3333"
MINER = ["xmrig", "-o", POOL, "--donate-level", "1", "--cpu-max-threads-hint", "90"]

WORKFLOW: dict[str, Any] = {
    "apiVersion": "argoproj.io/v1alpha1",
    "kind": "Workflow",
    "metadata": {"name": "nightly", "namespace": "ci"},
    "spec": {
        "entrypoint": "main",
        "templates": [{"name": "main", "container": {"image": "alpine", "command": MINER}}],
    },
}
ROLLOUT: dict[
    str, Any
] = {  # Argo Rollouts: not in the table, but its pod template is found by shape
    "apiVersion": "argoproj.io/v1alpha1",
    "kind": "Rollout",
    "metadata": {"name": "web", "namespace": "apps"},
    "spec": {"template": {"spec": {"containers": [{"name": "web", "image": "nginx:1.27"}]}}},
}
SPARK: dict[str, Any] = {  # no pod template anywhere: minerguard cannot tell what it runs
    "apiVersion": "sparkoperator.k8s.io/v1beta2",
    "kind": "SparkApplication",
    "metadata": {"name": "etl", "namespace": "data"},
    "spec": {"image": "spark:3.5", "mainApplicationFile": "local:///opt/app.py"},
}
CONFIGMAP: dict[str, Any] = {
    "apiVersion": "v1",
    "kind": "ConfigMap",
    "metadata": {"name": "c"},
    "data": {},
}


def write(tmp_path: Path, *objects: Mapping[str, Any]) -> str:
    path = tmp_path / "input.yaml"
    path.write_text(yaml.safe_dump_all(objects))
    return str(path)


def test_a_miner_in_an_argo_workflow_is_denied_by_scan(tmp_path: Path) -> None:
    result = run(write(tmp_path, WORKFLOW))
    assert result.returncode == scan.EXIT_DENY
    assert "DENY  Workflow/ci/nightly" in result.stdout
    assert 'container "main/main" would run a cryptominer' in result.stdout


def test_unjudged_kinds_are_named_with_their_counts_in_text(tmp_path: Path) -> None:
    result = run(write(tmp_path, SPARK, SPARK, ROLLOUT, CONFIGMAP))
    assert result.returncode == scan.EXIT_CLEAN
    lines = result.stdout.splitlines()
    assert sum(line.startswith("UNJUDGED  SparkApplication/data/etl") for line in lines) == 2
    assert "OK    Rollout/apps/web" in result.stdout  # found by shape, and said so
    assert scan.BY_SHAPE in result.stdout
    assert "ConfigMap" not in result.stdout  # declares no container: nothing left out
    assert lines[-1] == (
        "not judged: 2 object(s) of 1 kind(s): SparkApplication.sparkoperator.k8s.io (2)"
    )


def test_a_kind_found_by_shape_is_explained_like_any_other(tmp_path: Path) -> None:
    result = run("--explain", write(tmp_path, ROLLOUT))
    assert result.returncode == scan.EXIT_CLEAN, result.stderr
    assert 'policy "default"' in result.stdout


def test_unjudged_kinds_are_in_the_json_and_sarif_outputs(tmp_path: Path) -> None:
    path = write(tmp_path, SPARK, ROLLOUT)
    payload = json.loads(run("--output", "json", path).stdout)
    unjudged = [entry for entry in payload if entry["verdict"] == scan.UNJUDGED]
    assert [(e["object"], e["kind"]) for e in unjudged] == [
        ("SparkApplication/data/etl", "SparkApplication.sparkoperator.k8s.io")
    ]
    sarif = json.loads(run("--output", "sarif", path).stdout)["runs"][0]
    assert sarif["properties"]["unjudgedKinds"] == {"SparkApplication.sparkoperator.k8s.io": 1}
    notes = [r for r in sarif["results"] if r["ruleId"] == scan.UNJUDGED_RULE]
    assert len(notes) == 1
    assert notes[0]["level"] == "note"


def test_fail_on_unjudged_exits_with_its_own_status_unless_something_is_denied(
    tmp_path: Path,
) -> None:
    unjudged = write(tmp_path, SPARK)
    assert run(unjudged).returncode == scan.EXIT_CLEAN
    assert run("--fail-on-unjudged", unjudged).returncode == scan.EXIT_UNJUDGED == 3
    both = tmp_path / "both.yaml"
    both.write_text(yaml.safe_dump_all([SPARK, WORKFLOW]))
    assert run("--fail-on-unjudged", str(both)).returncode == scan.EXIT_DENY
    clean = write(tmp_path, ROLLOUT, CONFIGMAP)
    assert run("--fail-on-unjudged", clean).returncode == scan.EXIT_CLEAN
