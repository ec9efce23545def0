"""``minerguard scan`` resolves ConfigMaps and Secrets from the same input, and names the rest."""

import json
from pathlib import Path

import yaml

from tests.unit.test_scan import run

CONFIG = json.dumps({"pools": [{"url": "198.51.100.4:80", "user": "rig01"}], "donate-level": 0})
POD = {
    "apiVersion": "v1",
    "kind": "Pod",
    "metadata": {"name": "agent", "namespace": "apps"},
    "spec": {
        "containers": [
            {
                "name": "agent",
                "image": "alpine:3.19",
                "command": ["/usr/local/bin/agent", "--config=/etc/agent/agent.json"],
                "volumeMounts": [{"name": "conf", "mountPath": "/etc/agent"}],
            }
        ],
        "volumes": [{"name": "conf", "configMap": {"name": "agent-conf"}}],
    },
}
CONFIGMAP = {
    "apiVersion": "v1",
    "kind": "ConfigMap",
    "metadata": {"name": "agent-conf", "namespace": "apps"},
    "data": {"agent.json": CONFIG},
}


def write(folder: Path, name: str, *docs: object) -> Path:
    path = folder / name
    path.write_text(yaml.safe_dump_all(docs))
    return path


def test_a_configmap_in_the_same_file_is_resolved_and_its_miner_config_denied(
    tmp_path: Path,
) -> None:
    result = run(str(write(tmp_path, "both.yaml", CONFIGMAP, POD)))
    assert result.returncode == 1, result
    assert "DENY  Pod/apps/agent" in result.stdout
    assert "file /etc/agent/agent.json" in result.stdout


def test_a_configmap_in_another_file_of_the_same_input_is_resolved(tmp_path: Path) -> None:
    pod = write(tmp_path, "pod.yaml", POD)
    config = write(tmp_path, "config.yaml", CONFIGMAP)
    assert run(str(pod), str(config)).returncode == 1
    assert run(str(tmp_path)).returncode == 1
    assert run("-", stdin=yaml.safe_dump_all([POD, CONFIGMAP])).returncode == 1


def test_a_reference_not_in_the_input_is_named(tmp_path: Path) -> None:
    result = run(str(write(tmp_path, "pod.yaml", POD)), "--output", "json")
    assert result.returncode == 0, result
    [entry] = json.loads(result.stdout)
    assert entry["verdict"] == "WARN"
    assert "ConfigMap apps/agent-conf not found" in entry["notes"][0]


def test_a_secret_given_with_string_data_is_resolved_and_never_printed(tmp_path: Path) -> None:
    secret = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": "agent-conf", "namespace": "apps"},
        "stringData": {"agent.json": CONFIG},
    }
    pod = json.loads(json.dumps(POD))
    pod["spec"]["volumes"] = [{"name": "conf", "secret": {"secretName": "agent-conf"}}]
    for output in ("text", "json", "sarif"):
        result = run(str(write(tmp_path, "s.yaml", secret, pod)), "--output", output)
        assert result.returncode == 1, result
        assert "198.51.100.4" not in result.stdout
        assert "rig01" not in result.stdout
