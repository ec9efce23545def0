"""What the reviewer decides for each kind of request, with image configs primed in its cache."""

from __future__ import annotations

from minerguard.podspec import ImageConfig
from tests.support import policy
from tests.unit.webhook.helpers import (
    CLOSED,
    MINER_COMMAND,
    WALLET,
    Sink,
    container,
    pod,
    request,
    reviewer,
)

MINER_IMAGE = "registry.example/tools/worker:1"
MINER_CONFIG = ImageConfig(
    entrypoint=("/usr/bin/xmrig",), cmd=("-o", "stratum+tcp://pool.supportxmr.com:3333")
)
BENIGN_IMAGE = "registry.example/shop/web:2"
BENIGN_CONFIG = ImageConfig(
    entrypoint=("/docker-entrypoint.sh",), cmd=("nginx", "-g", "daemon off;")
)


async def test_a_pod_command_that_mines_is_refused_naming_container_signal_and_policy() -> None:
    sink = Sink()
    answer = await reviewer([policy()], sink=sink).review(
        request(pod(container("miner", command=MINER_COMMAND)))
    )
    assert not answer.allowed
    assert "\n" not in answer.message
    assert 'container "miner"' in answer.message
    assert "pool-url" in answer.message
    assert 'MinerPolicy "guard"' in answer.message
    assert answer.annotations["verdict"] == "denied"
    assert len(sink.items) == 1


async def test_a_benign_pod_is_allowed_without_warnings() -> None:
    answer = await reviewer([policy()], {BENIGN_IMAGE: BENIGN_CONFIG}).review(
        request(pod(container(image=BENIGN_IMAGE)))
    )
    assert answer.allowed
    assert answer.warnings == ()
    assert answer.annotations == {}


async def test_the_image_entrypoint_decides_when_the_pod_sets_no_command() -> None:
    answer = await reviewer([policy()], {MINER_IMAGE: MINER_CONFIG}).review(
        request(pod(container(image=MINER_IMAGE)))
    )
    assert not answer.allowed
    assert "stratum+tcp://" in answer.message


async def test_a_pod_command_replaces_the_entrypoint_and_drops_the_cmd() -> None:
    answer = await reviewer([policy()], {MINER_IMAGE: MINER_CONFIG}).review(
        request(pod(container(image=MINER_IMAGE, command=["/bin/sleep", "3600"])))
    )
    assert answer.allowed


async def test_pod_args_alone_keep_the_image_entrypoint() -> None:
    config = ImageConfig(entrypoint=("/usr/bin/xmrig",), cmd=("--help",))
    answer = await reviewer([policy()], {MINER_IMAGE: config}).review(
        request(pod(container(image=MINER_IMAGE, args=["--donate-level", "1", "-u", WALLET])))
    )
    assert not answer.allowed
    assert answer.findings[0].argv[0] == "/usr/bin/xmrig"


async def test_image_environment_and_var_expansion_reach_the_engine() -> None:
    config = ImageConfig(
        entrypoint=("/run.sh",), env=(("POOL", "stratum+tcp://pool.supportxmr.com:3333"),)
    )
    answer = await reviewer([policy()], {MINER_IMAGE: config}).review(
        request(pod(container(image=MINER_IMAGE, args=["--pool=$(POOL)"])))
    )
    assert not answer.allowed


async def test_an_unreachable_registry_follows_the_policy_allow_with_a_warning() -> None:
    answer = await reviewer([policy()]).review(
        request(pod(container(image=f"{CLOSED}/team/app:1")))
    )
    assert answer.allowed
    assert any("not verified" in w for w in answer.warnings)
    assert "unverified" in answer.annotations


async def test_an_unreachable_registry_follows_the_policy_deny() -> None:
    strict = policy(actions={"onRegistryFailure": "Deny"})
    answer = await reviewer([strict]).review(request(pod(container(image=f"{CLOSED}/team/app:1"))))
    assert not answer.allowed
    assert "not verified" in answer.message


async def test_audit_mode_allows_with_warnings_and_annotations_and_records() -> None:
    sink = Sink()
    answer = await reviewer([policy(mode="Audit")], sink=sink).review(
        request(pod(container("miner", command=MINER_COMMAND)))
    )
    assert answer.allowed
    assert answer.warnings
    assert "would run a cryptominer" in answer.warnings[0]
    assert answer.annotations["verdict"] == "warned"
    detection = sink.items[0][0]
    assert detection is not None
    assert detection.spec.mode == "Audit"
    assert detection.spec.actions_requested == ["Warn"]


async def test_a_detection_says_who_asked_and_what_ran() -> None:
    sink = Sink()
    obj = pod(container("miner", image=MINER_IMAGE))
    obj["metadata"]["ownerReferences"] = [
        {
            "apiVersion": "apps/v1",
            "kind": "ReplicaSet",
            "name": "web-5f",
            "uid": "u-1",
            "controller": True,
        }
    ]
    config = ImageConfig(MINER_CONFIG.entrypoint, MINER_CONFIG.cmd, (), "sha256:" + "ab" * 32)
    await reviewer([policy()], {MINER_IMAGE: config}, sink=sink).review(request(obj))
    detection, event = sink.items[0]
    assert detection is not None
    assert event is not None
    spec = detection.spec
    assert spec.layer.value == "Admission"
    assert spec.requesting_user == "mallory@example.com"
    assert spec.requesting_groups == ["devs", "system:authenticated"]
    assert spec.image == MINER_IMAGE
    assert spec.image_digest == "sha256:" + "ab" * 32
    assert spec.owner is not None
    assert spec.owner.kind == "ReplicaSet"
    assert spec.policy == "guard"
    assert spec.evidence.command_line is not None
    assert spec.evidence.command_line.startswith("/usr/bin/xmrig -o stratum+tcp://")
    assert detection.metadata.namespace == "apps"
    assert event.reason == "MinerAdmissionDenied"
    assert "mallory@example.com" in event.message


async def test_a_dry_run_decides_but_records_nothing() -> None:
    sink = Sink()
    answer = await reviewer([policy()], sink=sink).review(
        request(pod(container(command=MINER_COMMAND)), dry_run=True)
    )
    assert not answer.allowed
    assert sink.items == []


async def test_workloads_are_judged_by_their_pod_template() -> None:
    template = {
        "metadata": {"labels": {"app": "x"}},
        "spec": {"containers": [container(command=MINER_COMMAND)]},
    }
    deployment = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "x"},
        "spec": {"template": template},
    }
    cronjob = {
        "apiVersion": "batch/v1",
        "kind": "CronJob",
        "metadata": {"name": "x"},
        "spec": {"jobTemplate": {"spec": {"template": template}}},
    }
    judge = reviewer([policy()])
    for obj, kind, group in ((deployment, "Deployment", "apps"), (cronjob, "CronJob", "batch")):
        answer = await judge.review(
            request(obj, kind=kind, group=group, resource=kind.lower() + "s")
        )
        assert not answer.allowed, kind


async def test_init_containers_are_judged_too() -> None:
    obj = pod(container(), initContainers=[container("setup", command=MINER_COMMAND)])
    answer = await reviewer([policy()], {"nginx:1.27": BENIGN_CONFIG}).review(request(obj))
    assert not answer.allowed
    assert 'container "setup"' in answer.message


async def test_kubectl_debug_judges_only_the_ephemeral_containers_it_adds() -> None:
    old = pod(
        container(command=["sleep", "1d"]),
        ephemeralContainers=[container("dbg1", command=MINER_COMMAND)],
    )
    new = pod(
        container(command=["sleep", "1d"]),
        ephemeralContainers=[
            container("dbg1", command=MINER_COMMAND),
            container("dbg2", command=["sh"]),
        ],
    )
    judge = reviewer([policy()])
    answer = await judge.review(
        request(new, operation="UPDATE", sub_resource="ephemeralcontainers", old=old)
    )
    assert answer.allowed  # dbg1 was already there; dbg2 is a shell
    added = pod(
        container(command=["sleep", "1d"]),
        ephemeralContainers=[container("dbg3", command=MINER_COMMAND)],
    )
    refused = await judge.review(
        request(added, operation="UPDATE", sub_resource="ephemeralcontainers", old=pod(container()))
    )
    assert not refused.allowed


async def test_kubectl_exec_of_a_miner_command_is_refused() -> None:
    options = {
        "kind": "PodExecOptions",
        "apiVersion": "v1",
        "container": "c",
        "command": MINER_COMMAND,
    }
    answer = await reviewer([policy()]).review(
        request(
            options, kind="PodExecOptions", sub_resource="exec", operation="CONNECT", name="web"
        )
    )
    assert not answer.allowed
    assert 'container "c"' in answer.message


async def test_kubectl_exec_of_a_shell_is_allowed() -> None:
    options = {"kind": "PodExecOptions", "command": ["/bin/sh", "-c", "ls /"]}
    answer = await reviewer([policy()]).review(
        request(
            options, kind="PodExecOptions", sub_resource="exec", operation="CONNECT", name="web"
        )
    )
    assert answer.allowed


async def test_exec_command_exemptions_are_honoured() -> None:
    exempt = policy(exemptions={"commandPatterns": ["^xmrig .*pool\\.supportxmr\\.com"]})
    options = {"kind": "PodExecOptions", "command": MINER_COMMAND}
    answer = await reviewer([exempt]).review(
        request(
            options, kind="PodExecOptions", sub_resource="exec", operation="CONNECT", name="web"
        )
    )
    assert answer.allowed


async def test_exempt_images_and_excluded_namespaces_are_not_judged() -> None:
    exempt = policy(exemptions={"images": ["registry.example/tools/*"]}, excludedNamespaces=["lab"])
    judge = reviewer([exempt], {MINER_IMAGE: MINER_CONFIG})
    assert (await judge.review(request(pod(container(image=MINER_IMAGE))))).allowed
    lab = pod(container(command=MINER_COMMAND), namespace="lab")
    assert (await judge.review(request(lab, namespace="lab"))).allowed


async def test_deletes_status_updates_and_unknown_kinds_are_allowed() -> None:
    judge = reviewer([policy()])
    miner = pod(container(command=MINER_COMMAND))
    assert (await judge.review(request(miner, operation="DELETE"))).allowed
    assert (await judge.review(request(miner, operation="UPDATE", sub_resource="status"))).allowed
    assert (
        await judge.review(request({"kind": "ConfigMap", "data": {"x": "xmrig"}}, kind="ConfigMap"))
    ).allowed
    assert (await judge.review(request(None))).allowed


async def test_a_pod_missing_its_spec_is_answered_not_crashed() -> None:
    answer = await reviewer([policy()]).review(request({"kind": "Pod", "metadata": {}}))
    assert answer.allowed
    assert "not inspected" in answer.warnings[0]


async def test_more_containers_than_the_limit_are_refused_under_enforce() -> None:
    many = pod(*[container(f"c{i}", command=["sleep", "1"]) for i in range(30)])
    judge = reviewer([policy()], max_containers=20)
    answer = await judge.review(request(many))
    assert not answer.allowed
    assert "exceed" in answer.message
    audit = reviewer([policy(mode="Audit")], max_containers=20)
    assert (await audit.review(request(many))).allowed


async def test_replicas_of_one_template_get_the_same_decision_from_memory() -> None:
    judge = reviewer([policy()])
    first = await judge.review(request(pod(container(command=MINER_COMMAND))))
    second = await judge.review(request(pod(container(command=MINER_COMMAND))))
    assert first.message == second.message
    assert judge._memo.hits == 1
