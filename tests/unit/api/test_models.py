import pytest
from pydantic import ValidationError

from minerguard.api.detection import Layer, MinerDetection
from minerguard.api.policy import MinerPolicy, Mode, RuntimeAction


def test_policy_defaults_are_enforce_with_builtin_signatures() -> None:
    policy = MinerPolicy.model_validate({"metadata": {"name": "p"}})
    assert policy.spec.mode is Mode.ENFORCE
    assert policy.spec.builtin_signatures
    assert policy.spec.excluded_namespaces == ["kube-system"]
    assert policy.spec.actions.runtime == [RuntimeAction.ALERT, RuntimeAction.DELETE_POD]


def test_models_round_trip_in_camel_case() -> None:
    raw = {
        "apiVersion": "minerguard.io/v1alpha1",
        "kind": "MinerDetection",
        "metadata": {"name": "d", "namespace": "ns"},
        "spec": {
            "layer": "Exec",
            "score": 1.5,
            "podName": "p",
            "podUID": "u",
            "evidence": {"pid": 7, "commandLine": "xmrig", "containerID": "c"},
        },
    }
    detection = MinerDetection.model_validate(raw)
    assert detection.spec.layer is Layer.EXEC
    out = detection.to_k8s()
    assert out["spec"]["podUID"] == "u"
    assert out["spec"]["evidence"]["containerID"] == "c"
    assert out["kind"] == "MinerDetection"


@pytest.mark.parametrize(
    ("spec", "field"),
    [
        ({"mode": "Sometimes"}, "mode"),
        ({"signatures": {"poolPorts": [70000]}}, "poolPorts"),
        ({"behaviour": {"cpuFraction": 2}}, "cpuFraction"),
        ({"actions": {"runtime": ["Nuke"]}}, "runtime"),
    ],
)
def test_invalid_policies_are_refused_naming_the_field(spec: dict[str, object], field: str) -> None:
    with pytest.raises(ValidationError) as err:
        MinerPolicy.model_validate({"metadata": {"name": "p"}, "spec": spec})
    assert field in str(err.value)
