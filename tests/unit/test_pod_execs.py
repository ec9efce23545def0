"""Exec probes and lifecycle hooks are judged like the container's own command.

The kubelet has the runtime run a probe's or hook's ``exec.command`` in the container, without
a shell and without ``$(VAR)`` expansion, so a miner there runs just as surely as one in
``command``; the denial names where it was declared.
"""

import base64
from typing import Any

import pytest

from minerguard import evaluate, podspec
from minerguard.compiled_policy import default_policy
from minerguard.signatures import engine
from tests.support import policy

WALLET = "4" + "A" + "1" * 93
SCRIPT = f"xmrig -o stratum+tcp://pool.example:3333 -u {WALLET} --donate-level 1"
MINER_SH = ["sh", "-c", SCRIPT]


def pod(container: dict[str, Any], kind: str = "containers") -> dict[str, Any]:
    base = {"name": "app", "image": "nginx:1.27", "command": ["nginx", "-g", "daemon off;"]}
    return {
        "kind": "Pod",
        "metadata": {"name": "x", "namespace": "apps"},
        "spec": {kind: [{**base, **container}]},
    }


def decide(obj: dict[str, Any]) -> evaluate.Decision:
    return evaluate.evaluate_object(obj, [default_policy()])


@pytest.mark.parametrize(
    ("field", "origin"),
    [
        ({"livenessProbe": {"exec": {"command": MINER_SH}}}, "livenessProbe"),
        ({"readinessProbe": {"exec": {"command": MINER_SH}}}, "readinessProbe"),
        ({"lifecycle": {"postStart": {"exec": {"command": MINER_SH}}}}, "lifecycle.postStart"),
        ({"lifecycle": {"preStop": {"exec": {"command": MINER_SH}}}}, "lifecycle.preStop"),
    ],
)
def test_a_miner_in_a_probe_or_hook_of_a_benign_container_is_denied_naming_it(
    field: dict[str, Any], origin: str
) -> None:
    decision = decide(pod(field))
    assert not decision.allowed
    assert f'container "app" {origin} exec would run a cryptominer' in decision.message
    assert decide(pod({})).allowed


def test_a_base64_miner_in_a_startup_probe_is_denied() -> None:
    encoded = base64.b64encode(SCRIPT.encode()).decode()
    probe = {"exec": {"command": ["sh", "-c", f"echo {encoded} | base64 -d | sh"]}}
    decision = decide(pod({"startupProbe": probe}))
    assert not decision.allowed
    assert "startupProbe exec" in decision.message


def test_benign_probes_and_hooks_stay_allowed() -> None:
    healthy = {"exec": {"command": ["cat", "/tmp/healthy"]}}
    fields = {
        "livenessProbe": healthy,
        "readinessProbe": {"httpGet": {"path": "/", "port": 80}},
        "lifecycle": {"preStop": {"exec": {"command": ["nginx", "-s", "quit"]}}},
    }
    assert decide(pod(fields)).allowed


def test_hooks_of_sidecar_init_containers_and_probes_of_ephemeral_ones_are_judged() -> None:
    sidecar = {
        "restartPolicy": "Always",
        "lifecycle": {"postStart": {"exec": {"command": MINER_SH}}},
    }
    assert (
        'container "app" lifecycle.postStart exec' in decide(pod(sidecar, "initContainers")).message
    )
    probe = {"readinessProbe": {"exec": {"command": MINER_SH}}}
    assert not decide(pod(probe, "ephemeralContainers")).allowed


def test_probe_commands_are_not_expanded_but_the_environment_is_judged() -> None:
    declared = podspec.container(
        {
            "name": "app",
            "image": "busybox",
            "env": [{"name": "POOL", "value": "stratum+tcp://pool.example:3333"}],
            "livenessProbe": {"exec": {"command": ["run", "$(POOL)"]}},
        },
        podspec.ContainerKind.CONTAINER,
    )
    (probe,) = declared.execs
    assert probe == podspec.Exec("livenessProbe", ("run", "$(POOL)"))
    decision = evaluate.evaluate_containers([declared], {}, "apps", {}, [default_policy()])
    origins = {f.origin for f in decision.findings}
    assert "livenessProbe" in origins  # the pool URL reached it through the environment


def test_an_image_exemption_does_not_cover_a_probe_the_pod_sets() -> None:
    exempting = policy(exemptions={"images": ["nginx"]})
    obj = pod({"livenessProbe": {"exec": {"command": MINER_SH}}})
    del obj["spec"]["containers"][0]["command"]  # the image's entrypoint: exempt
    decision = evaluate.evaluate_object(obj, [exempting])
    assert not decision.allowed
    assert "livenessProbe exec" in decision.message


def test_a_probe_past_the_reviews_budget_is_refused_as_not_fully_examined() -> None:
    padded = ["sh", "-c", "true " * 400 + SCRIPT]
    obj = pod({"command": ["nginx"], "livenessProbe": {"exec": {"command": padded}}})
    with engine.budget(words=50, chars=10_000):
        decision = decide(obj)
    assert not decision.allowed
    assert 'container "app" livenessProbe exec not fully examined' in decision.message
