import pytest
from pydantic import ValidationError

from minerguard.api.detection import ActionTaken, Layer, MinerDetection
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


@pytest.mark.parametrize(
    ("text", "name", "detail", "action"),
    [
        ("Alert", "Alert", "", RuntimeAction.ALERT),
        ("DeletePod: grace 0s", "DeletePod", "grace 0s", RuntimeAction.DELETE_POD),
        (
            "QuarantineImage: sha256:ab",
            "QuarantineImage",
            "sha256:ab",
            RuntimeAction.QUARANTINE_IMAGE,
        ),
        (
            "StopOwner: Deployment/web scaled 3->0",
            "StopOwner",
            "Deployment/web scaled 3->0",
            RuntimeAction.STOP_OWNER,
        ),
        ("KillProcess skipped: host process", "KillProcess skipped", "host process", None),
        ("RefuseExec", "RefuseExec", "", None),
    ],
)
def test_actions_taken_entries_are_read_and_written_in_one_format(
    text: str, name: str, detail: str, action: RuntimeAction | None
) -> None:
    entry = ActionTaken.parse(text)
    assert (entry.name, entry.detail, entry.action) == (name, detail, action)
    assert str(entry) == text


def test_a_failed_step_says_so_and_junk_in_a_status_is_skipped() -> None:
    failed = ActionTaken("Isolate", ActionTaken.FAILED)
    assert str(failed) == "Isolate: failed"
    assert ActionTaken.parse(str(failed)).failed
    assert not ActionTaken.parse("Isolate: NetworkPolicy/x").failed
    assert ActionTaken.parse_all(["Alert", 3, None, "DeletePod: grace 0s"]) == [
        ActionTaken("Alert"),
        ActionTaken("DeletePod", "grace 0s"),
    ]
    assert ActionTaken.parse_all(None) == []
    assert ActionTaken.parse_all("Alert") == []


def test_every_runtime_action_but_alert_is_destructive_and_the_agent_kills() -> None:
    assert [a for a in RuntimeAction if not a.destructive] == [RuntimeAction.ALERT]
    assert [a for a in RuntimeAction if a.by_agent] == [RuntimeAction.KILL_PROCESS]
