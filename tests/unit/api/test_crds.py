"""The CRD YAML in the chart is generated from the models; drift fails here."""

from pathlib import Path
from typing import Any

import yaml

from minerguard.api import crds

ROOT = Path(__file__).resolve().parents[3]


def walk(node: Any, path: str = "") -> list[tuple[str, dict[str, Any]]]:
    found = []
    if isinstance(node, dict):
        found.append((path, node))
        for key, value in node.items():
            found += walk(value, f"{path}.{key}")
    elif isinstance(node, list):
        for index, value in enumerate(node):
            found += walk(value, f"{path}[{index}]")
    return found


def test_committed_crds_match_the_models() -> None:
    for name, text in crds.rendered().items():
        committed = ROOT / crds.CRD_DIR / name
        assert committed.read_text() == text, (
            f"{committed} is stale: run `python -m minerguard.api.crds`"
        )


def test_schemas_are_structural() -> None:
    for text in crds.rendered().values():
        schema = yaml.safe_load(text)["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
        for path, node in walk(schema):
            assert "$ref" not in node, path
            assert "anyOf" not in node or all("type" not in o for o in node["anyOf"]), path
            assert node.get("type") != "null", path
            assert not ("properties" in node and "additionalProperties" in node), path
            assert "title" not in node or isinstance(node.get("title"), dict), path
            assert "default" not in node or node["default"] is not None, path


def test_resources_have_short_names_status_and_readable_columns() -> None:
    by_kind = {
        yaml.safe_load(t)["spec"]["names"]["kind"]: yaml.safe_load(t)
        for t in crds.rendered().values()
    }
    detection, policy = by_kind["MinerDetection"]["spec"], by_kind["MinerPolicy"]["spec"]
    assert detection["names"]["shortNames"] == ["md"]
    assert policy["names"]["shortNames"] == ["mp"]
    assert policy["scope"] == "Cluster"
    assert detection["scope"] == "Namespaced"
    columns = [
        c["name"]
        for c in detection["versions"][0]["additionalPrinterColumns"]
        if "priority" not in c
    ]
    assert columns == ["Pod", "Node", "Layer", "Reason", "Score", "Action", "Origin", "Via", "Age"]
    wide = {c["name"]: c for c in detection["versions"][0]["additionalPrinterColumns"]}
    assert wide["Summary"] == {  # -o wide: the summary describe's sorted fields bury
        "name": "Summary",
        "type": "string",
        "jsonPath": ".status.investigation.summary",
        "priority": 1,
    }
    for spec in (detection, policy):
        assert spec["versions"][0]["subresources"] == {"status": {}}


def test_descriptions_enums_and_bounds_survive_generation() -> None:
    policy = yaml.safe_load(crds.rendered()["minerpolicies.yaml"])
    spec = policy["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]
    assert spec["properties"]["mode"]["enum"] == ["Enforce", "Audit"]
    threshold = spec["properties"]["behaviour"]["properties"]["scoreThreshold"]
    assert threshold["minimum"] == 0
    assert threshold["exclusiveMinimum"] is True  # OpenAPI v3.0, as the API server wants it
    assert threshold["description"]


def test_check_mode_reports_stale_files(tmp_path: Path) -> None:
    assert crds.main(["--out", str(tmp_path), "--check"]) == 1
    assert crds.main(["--out", str(tmp_path)]) == 0
    assert crds.main(["--out", str(tmp_path), "--check"]) == 0
