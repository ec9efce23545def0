"""The end-to-end cases (tests/data/e2e/) stay valid while no cluster runs them here."""

from __future__ import annotations

import pathlib
import string

import jsonschema
import kubernetes_validate
import pytest
import yaml

from tests.integration.chart import chart

_DATA = chart.REPO / "tests" / "data" / "e2e"
_CASES = sorted(p for p in _DATA.iterdir() if p.is_dir())


def test_there_are_cases_for_each_layer() -> None:
    assert {p.name for p in _CASES} >= {
        "admission-miner-pod",
        "admission-image-entrypoint",
        "runtime-exec-later",
    }


@pytest.mark.parametrize("folder", _CASES, ids=lambda p: p.name)
def test_each_case_has_a_policy_a_good_and_a_bad_manifest(folder: pathlib.Path) -> None:
    names = {p.name for p in folder.glob("*.yaml")}
    assert "policy.yaml" in names
    assert any(n.endswith("-good.yaml") for n in names)
    assert any(n.endswith("-bad.yaml") for n in names)


@pytest.mark.parametrize("folder", _CASES, ids=lambda p: p.name)
def test_each_case_policy_passes_the_crd_schema_and_selects_its_namespace(
    folder: pathlib.Path,
) -> None:
    policy = yaml.safe_load((folder / "policy.yaml").read_text())
    errors = list(
        jsonschema.Draft7Validator(chart.crd_json_schema("MinerPolicy")).iter_errors(policy)
    )
    assert not errors, [f"{list(e.path)}: {e.message}" for e in errors]
    labels = policy["spec"]["namespaceSelector"]["matchLabels"]
    assert labels == {"minerguard.io/e2e-case": folder.name}


@pytest.mark.parametrize(
    "manifest",
    sorted(p for p in _DATA.glob("*/*.yaml") if p.name != "policy.yaml"),
    ids=lambda p: f"{p.parent.name}/{p.name}",
)
def test_each_case_manifest_passes_the_kubernetes_schema(manifest: pathlib.Path) -> None:
    text = string.Template(manifest.read_text()).safe_substitute(
        E2E_REGISTRY="registry.minerguard-e2e-registry.svc.cluster.local:5000"
    )
    for doc in yaml.safe_load_all(text):
        kubernetes_validate.validate(doc, chart.KUBE_VERSION, strict=True)


def test_the_e2e_values_pass_the_chart_schema() -> None:
    values = yaml.safe_load((_DATA / "values.yaml").read_text())
    rendered = chart.render(values)
    assert rendered.of_kind("MinerPolicy") == []
