"""Values from ConfigMaps and Secrets, resolved as the kubelet does and judged as literals."""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping
from typing import Any

import pytest

from minerguard import evaluate, podspec, references
from minerguard.compiled_policy import CompiledPolicy, default_policy
from tests.support import policy as make_policy

POOL = "stratum+tcp://pool.supportxmr.com:3333"
WALLET = (
    "4ATitEF4LaHCHf6AUuLB7HrF1wZ73rzBmWSYpHD7b6h8MupXLXAo"
    "JFsR5HxVH8MfBSoZbTcK1D3WbismnZETNHZVTBXxpFo"
)
XMRIG_CONFIG = json.dumps(
    {
        "autosave": True,
        "cpu": {"enabled": True},
        "pools": [{"url": "203.0.113.7:14444", "user": "worker1", "pass": "x"}],
    },
    indent=2,
)
NS = "apps"


@pytest.fixture(scope="module")
def policy() -> CompiledPolicy:
    return default_policy()


def cm(name: str, data: Mapping[str, str], kind: str = "ConfigMap") -> dict[str, Any]:
    if kind == "Secret":
        encoded = {k: base64.b64encode(v.encode()).decode() for k, v in data.items()}
        return {"kind": kind, "metadata": {"name": name, "namespace": NS}, "data": encoded}
    return {"kind": kind, "metadata": {"name": name, "namespace": NS}, "data": dict(data)}


class Store:
    """A lookup over objects, recording what was asked."""

    def __init__(self, *objects: Mapping[str, Any], fail: Mapping[str, Any] | None = None):
        self.objects = {(o["kind"], o["metadata"]["name"]): o for o in objects}
        self.fail = dict(fail or {})
        self.asked: list[tuple[str, str, str]] = []

    def __call__(
        self, kind: str, namespace: str, name: str
    ) -> references.Data | references.Unreadable | None:
        self.asked.append((kind, namespace, name))
        if name in self.fail:
            found: references.Unreadable = self.fail[name]
            return found
        obj = self.objects.get((kind, name))
        return references.object_data(obj) if obj is not None else None


def pod(container: Mapping[str, Any], volumes: list[Any] | None = None) -> dict[str, Any]:
    spec: dict[str, Any] = {"containers": [{"name": "app", "image": "busybox", **container}]}
    if volumes:
        spec["volumes"] = volumes
    return {"kind": "Pod", "metadata": {"name": "p", "namespace": NS}, "spec": spec}


def decide(obj: Mapping[str, Any], store: Store, policy: CompiledPolicy) -> evaluate.Decision:
    return evaluate.evaluate_object(obj, [policy], lookup=store)


def resolved(obj: Mapping[str, Any], store: Store) -> references.Resolved:
    containers = podspec.template(obj).containers
    spec, _ = podspec.pod_spec(obj)
    return references.resolve(containers, spec, NS, store)


# -- environment ----------------------------------------------------------------------------


def test_a_pool_url_in_a_configmap_key_is_denied(policy: CompiledPolicy) -> None:
    ref = {"configMapKeyRef": {"name": "conf", "key": "pool"}}
    obj = pod({"command": ["/app"], "env": [{"name": "POOL", "valueFrom": ref}]})
    store = Store(cm("conf", {"pool": POOL}))
    assert evaluate.evaluate_object(obj, [policy]).allowed  # without a lookup: unseen
    decision = decide(obj, store, policy)
    assert not decision.allowed
    assert "pool-url" in decision.message


def test_a_pool_url_expanded_from_a_configmap_into_args_is_denied(policy: CompiledPolicy) -> None:
    obj = pod(
        {
            "command": ["/usr/local/bin/agent"],
            "args": ["-o", "$(P)", "-u", "$(W)"],
            "envFrom": [{"configMapRef": {"name": "conf"}}],
        }
    )
    decision = decide(obj, Store(cm("conf", {"P": POOL, "W": WALLET})), policy)
    assert not decision.allowed
    assert decision.findings[0].argv == ("/usr/local/bin/agent", "-o", POOL, "-u", WALLET)


def test_env_from_prefix_later_env_overrides_and_expansion_sees_only_earlier_vars() -> None:
    obj = pod(
        {
            "command": ["run", "$(X_HOST)", "$(LATE)"],
            "envFrom": [
                {"configMapRef": {"name": "a"}, "prefix": "X_"},
                {"configMapRef": {"name": "b"}},
            ],
            "env": [
                {"name": "EARLY", "value": "$(X_HOST):$(LATE)"},
                {"name": "X_HOST", "value": "override"},
                {"name": "LATE", "value": "late"},
                {"name": "RAW", "valueFrom": {"configMapKeyRef": {"name": "b", "key": "tpl"}}},
            ],
        }
    )
    keys = {"HOST": "from-a", "spaced name": "x", "a=b": "y"}
    store = Store(cm("a", keys), cm("b", {"tpl": "$(LATE)$$"}))
    container = resolved(obj, store).containers[0]
    env = dict(podspec.effective_env(container, None))
    assert env["EARLY"] == "from-a:$(LATE)"  # X_HOST from envFrom; LATE not yet defined
    assert env["X_HOST"] == "override"  # a later env entry wins over envFrom
    assert env["RAW"] == "$(LATE)$$"  # values read from a ConfigMap are never expanded
    assert env["tpl"] == "$(LATE)$$"  # envFrom without a prefix
    assert env["X_spaced name"] == "x"  # printable names are set (relaxed validation)
    assert "X_a=b" not in env  # "=" never
    # command and args expand from the final environment
    assert podspec.effective_argv(container, None) == ("run", "override", "late")


def test_secret_values_are_judged_but_never_shown(policy: CompiledPolicy) -> None:
    obj = pod(
        {
            "command": ["/app", "--url=$(POOL)", "--user=$(WALLET)"],
            "env": [
                {"name": "POOL", "valueFrom": {"secretKeyRef": {"name": "s", "key": "pool"}}},
                {"name": "WALLET", "valueFrom": {"secretKeyRef": {"name": "s", "key": "w"}}},
            ],
        }
    )
    store = Store(cm("s", {"pool": POOL, "w": WALLET}, kind="Secret"))
    decision = decide(obj, store, policy)
    assert not decision.allowed
    shown = json.dumps(
        [decision.message, decision.warnings]
        + [[f.argv, [(s.detail, s.where) for s in f.verdict.signals]] for f in decision.findings]
    )
    for secret in (WALLET, WALLET[:20], "pool.supportxmr.com", POOL):
        assert secret not in shown
    assert references.SECRET_NOTE in shown


# -- what cannot be resolved ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("ref", "fail", "expected"),
    [
        ({"configMapKeyRef": {"name": "gone", "key": "k"}}, None, "ConfigMap apps/gone not found"),
        ({"configMapKeyRef": {"name": "conf", "key": "nokey"}}, None, 'has no key "nokey"'),
        (
            {"configMapKeyRef": {"name": "slow", "key": "k"}},
            references.Unreadable("timed out"),
            "ConfigMap apps/slow not read (timed out)",
        ),
        (
            {"configMapKeyRef": {"name": "denied", "key": "k"}},
            references.Unreadable("forbidden", forbidden=True),
            "not read (forbidden)",
        ),
    ],
)
def test_what_cannot_be_resolved_is_named_and_weighed_like_a_registry_failure(
    ref: dict[str, Any], fail: references.Unreadable | None, expected: str
) -> None:
    obj = pod({"command": ["/app"], "env": [{"name": "V", "valueFrom": ref}]})
    name = ref["configMapKeyRef"]["name"]
    store = Store(cm("conf", {"k": "v"}), fail={name: fail} if fail else None)
    allow = default_policy()  # onRegistryFailure Allow: a warning naming it
    decision = decide(obj, store, allow)
    assert decision.allowed
    assert expected in decision.warnings[0]
    strict = make_policy(actions={"onRegistryFailure": "Deny"})
    refused = decide(obj, store, strict)
    assert not refused.allowed
    assert expected in refused.message


def test_an_optional_reference_that_is_missing_is_left_out_silently(
    policy: CompiledPolicy,
) -> None:
    obj = pod(
        {
            "command": ["/app"],
            "env": [
                {
                    "name": "V",
                    "valueFrom": {
                        "configMapKeyRef": {"name": "gone", "key": "k", "optional": True}
                    },
                }
            ],
            "envFrom": [{"secretRef": {"name": "gone2", "optional": True}}],
        }
    )
    decision = decide(obj, Store(), policy)
    assert decision.allowed
    assert decision.warnings == []


def test_a_secret_the_webhook_may_not_read_is_a_note_never_a_refusal_or_warning() -> None:
    obj = pod({"command": ["/app"], "envFrom": [{"secretRef": {"name": "db"}}]})
    store = Store(fail={"db": references.Unreadable("forbidden", forbidden=True)})
    strict = make_policy(actions={"onRegistryFailure": "Deny"})
    decision = decide(obj, store, strict)
    assert decision.allowed
    assert decision.warnings == []  # every pod with a database password would warn
    assert "Secret apps/db not read (forbidden)" in decision.unverified[0].message()


# -- files ----------------------------------------------------------------------------------

CONFIG_VOLUME = {"name": "cfg", "configMap": {"name": "miner-conf"}}


@pytest.mark.parametrize(
    "args",
    [
        ["-c", "/etc/app/config.json"],
        ["--config", "/etc/app/config.json"],
        ["--config=/etc/app/config.json"],
        ["-c", "config.json"],  # relative to workingDir
    ],
)
def test_an_xmrig_config_named_on_the_command_line_is_denied(
    args: list[str], policy: CompiledPolicy
) -> None:
    obj = pod(
        {
            "command": ["/usr/sbin/syslogd", *args],
            "workingDir": "/etc/app",
            "volumeMounts": [{"name": "cfg", "mountPath": "/etc/app"}],
        },
        [CONFIG_VOLUME],
    )
    decision = decide(obj, Store(cm("miner-conf", {"config.json": XMRIG_CONFIG})), policy)
    assert not decision.allowed
    top = decision.findings[0].verdict.signals[0]
    assert top.name == "miner-json-config"
    assert top.where == "file /etc/app/config.json"


def test_items_sub_path_and_projected_sources_put_keys_where_the_process_reads_them(
    policy: CompiledPolicy,
) -> None:
    volumes = [
        {
            "name": "proj",
            "projected": {
                "sources": [
                    {
                        "configMap": {
                            "name": "miner-conf",
                            "items": [{"key": "k", "path": "d/x.json"}],
                        }
                    },
                    {"serviceAccountToken": {"path": "token"}},
                ]
            },
        }
    ]
    mounts = [{"name": "proj", "mountPath": "/opt/run.json", "subPath": "d/x.json"}]
    obj = pod({"command": ["/bin/app", "-c", "/opt/run.json"], "volumeMounts": mounts}, volumes)
    decision = decide(obj, Store(cm("miner-conf", {"k": XMRIG_CONFIG})), policy)
    assert not decision.allowed
    assert decision.findings[0].verdict.signals[0].where == "file /opt/run.json"


def test_a_script_in_a_configmap_given_to_sh_is_judged_as_a_script(policy: CompiledPolicy) -> None:
    script = f"#!/bin/sh\nexec /usr/bin/agent --url={POOL} --user={WALLET}\n"
    obj = pod(
        {
            "command": ["sh", "/scripts/start.sh"],
            "volumeMounts": [{"name": "s", "mountPath": "/scripts"}],
        },
        [{"name": "s", "configMap": {"name": "scripts", "defaultMode": 493}}],
    )
    decision = decide(obj, Store(cm("scripts", {"start.sh": script})), policy)
    assert not decision.allowed


def test_a_secret_volume_file_is_read_and_its_contents_never_shown(
    policy: CompiledPolicy,
) -> None:
    config = json.dumps({"pools": [{"url": "hidden-pool.example.org:3333", "user": WALLET}]})
    obj = pod(
        {
            "command": ["/bin/app", "-c", "/s/c.json"],
            "volumeMounts": [{"name": "v", "mountPath": "/s"}],
        },
        [{"name": "v", "secret": {"secretName": "sec", "items": [{"key": "k", "path": "c.json"}]}}],
    )
    decision = decide(obj, Store(cm("sec", {"k": config}, kind="Secret")), policy)
    assert not decision.allowed
    shown = decision.message + repr([f.verdict.signals for f in decision.findings])
    assert "hidden-pool" not in shown
    assert WALLET[:20] not in shown


def test_mounted_files_the_command_line_does_not_name_are_not_read(
    policy: CompiledPolicy,
) -> None:
    obj = pod(
        {
            "command": ["/usr/bin/app", "-c", "/etc/app/app.json"],
            "volumeMounts": [{"name": "r", "mountPath": "/etc/app"}],
        },
        [{"name": "r", "configMap": {"name": "conf"}}],
    )
    store = Store(cm("conf", {"app.json": '{"listen": ":80"}', "other.json": XMRIG_CONFIG}))
    decision = decide(obj, store, policy)
    assert decision.allowed
    assert decision.warnings == []
    files = resolved(obj, store).containers[0].files
    assert [path for path, _ in files] == ["/etc/app/app.json"]


@pytest.mark.parametrize(
    ("command", "name", "text"),
    [
        (
            ["yara", "-r", "/rules/miners.yar", "/host"],
            "miners.yar",
            'rule X { strings: $a = "stratum+tcp://" $b = "--donate-level" '
            "condition: any of them }",
        ),
        (
            ["/usr/bin/falco", "-r", "/rules/miners.yaml"],
            "miners.yaml",
            "- list: miner_domains\n  items: [pool.supportxmr.com, gulf.moneroocean.stream]\n"
            "- rule: stratum\n  condition: proc.cmdline contains 'stratum+tcp://' or "
            "proc.name in (xmrig)\n",
        ),
    ],
)
def test_a_detectors_rules_file_named_on_the_command_line_is_data_not_what_it_runs(
    command: list[str], name: str, text: str, policy: CompiledPolicy
) -> None:
    """Only scripts (a shebang, or given to a shell) and JSON configs are judged as run."""
    obj = pod(
        {"command": command, "volumeMounts": [{"name": "r", "mountPath": "/rules"}]},
        [{"name": "r", "configMap": {"name": "rules"}}],
    )
    decision = decide(obj, Store(cm("rules", {name: text})), policy)
    assert decision.allowed
    assert decision.warnings == []


@pytest.mark.parametrize(
    "command",
    [
        ["sh", "/hooks/warm.sh"],
        ["/bin/bash", "-e", "/hooks/warm.sh"],
        ["sh", "-c", ". /hooks/warm.sh && exec redis-server"],
    ],
)
def test_a_script_without_a_shebang_given_to_a_shell_is_judged_as_a_script(
    command: list[str], policy: CompiledPolicy
) -> None:
    script = f"cd /tmp\nnohup ./kswapd0 --url={POOL} --user={WALLET} >/dev/null 2>&1 &\n"
    obj = pod(
        {"command": command, "volumeMounts": [{"name": "h", "mountPath": "/hooks"}]},
        [{"name": "h", "configMap": {"name": "hooks"}}],
    )
    decision = decide(obj, Store(cm("hooks", {"warm.sh": script})), policy)
    assert not decision.allowed
    assert "file /hooks/warm.sh" in decision.message


def test_a_missing_volume_object_is_named_only_when_the_command_line_reads_from_it() -> None:
    volume = {"name": "cfg", "configMap": {"name": "later"}}
    mount = [{"name": "cfg", "mountPath": "/etc/app"}]
    reads = pod({"command": ["/app", "-c", "/etc/app/c.json"], "volumeMounts": mount}, [volume])
    ignores = pod({"command": ["/app"], "volumeMounts": mount}, [volume])
    assert [p.what for p in resolved(reads, Store()).problems] == ["ConfigMap apps/later not found"]
    assert resolved(ignores, Store()).problems == ()


# -- hostile objects ------------------------------------------------------------------------


def test_binary_data_is_decoded_and_a_huge_configmap_is_bounded(policy: CompiledPolicy) -> None:
    huge = "#" * (references.MAX_FILE_CHARS + 4096)
    binary = {
        "kind": "ConfigMap",
        "metadata": {"name": "bin", "namespace": NS},
        "binaryData": {
            "c.json": base64.b64encode(XMRIG_CONFIG.encode()).decode(),
            "junk": "!!! not base64",
            "blob": base64.b64encode(b"\xff\xfe\x00binary").decode(),
        },
        "data": {"huge": huge},
    }
    data = references.object_data(binary)
    assert data is not None
    assert set(data) == {"c.json", "blob", "huge"}
    assert len(data["huge"]) == references.MAX_FILE_CHARS
    obj = pod(
        {
            "command": ["/app", "-c", "/c/c.json", "/c/huge"],
            "volumeMounts": [{"name": "v", "mountPath": "/c"}],
        },
        [{"name": "v", "configMap": {"name": "bin"}}],
    )
    assert not decide(obj, Store(binary), policy).allowed


def test_each_object_is_looked_up_once_per_resolution() -> None:
    obj = pod(
        {
            "command": ["/app", "-c", "/a/x"],
            "envFrom": [{"configMapRef": {"name": "a"}}],
            "env": [{"name": "V", "valueFrom": {"configMapKeyRef": {"name": "a", "key": "x"}}}],
            "volumeMounts": [{"name": "v", "mountPath": "/a"}],
        },
        [{"name": "v", "configMap": {"name": "a"}}],
    )
    store = Store(cm("a", {"x": "1"}))
    resolved(obj, store)
    assert store.asked == [("ConfigMap", NS, "a")]
    spec, _ = podspec.pod_spec(obj)
    assert references.wanted(podspec.template(obj).containers, spec) == [("ConfigMap", "a")]


# -- values from the pod's own metadata (the downward API) ----------------------------------


def test_a_pool_url_in_a_pod_annotation_read_through_field_ref_is_denied(
    policy: CompiledPolicy,
) -> None:
    obj = pod(
        {
            "command": ["/bin/agent", "-o", "$(UPSTREAM)", "-u", "$(ACCOUNT)"],
            "env": [
                {
                    "name": "UPSTREAM",
                    "valueFrom": {"fieldRef": {"fieldPath": "metadata.annotations['upstream']"}},
                },
                {"name": "ACCOUNT", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
            ],
        }
    )
    obj["metadata"]["annotations"] = {"upstream": POOL}
    decision = decide(obj, Store(), policy)
    assert not decision.allowed
    assert decision.findings[0].argv[2] == POOL


def test_a_config_in_a_workload_annotation_mounted_by_the_downward_api_is_denied(
    policy: CompiledPolicy,
) -> None:
    template = pod(
        {
            "command": ["/bin/agent", "--config=/etc/podinfo/agent.json"],
            "volumeMounts": [{"name": "info", "mountPath": "/etc/podinfo"}],
        },
        [
            {
                "name": "info",
                "downwardAPI": {
                    "items": [
                        {
                            "path": "agent.json",
                            "fieldRef": {"fieldPath": "metadata.annotations['agent-config']"},
                        }
                    ]
                },
            }
        ],
    )
    deployment = {
        "kind": "Deployment",
        "metadata": {"name": "d", "namespace": NS},
        "spec": {
            "template": {
                "metadata": {"annotations": {"agent-config": XMRIG_CONFIG}},
                "spec": template["spec"],
            }
        },
    }
    decision = decide(deployment, Store(), policy)
    assert not decision.allowed
    assert "file /etc/podinfo/agent.json" in decision.message


def test_an_optional_volume_missing_while_the_command_line_reads_from_it_is_named() -> None:
    """The kubelet fills an optional volume in once its object exists: a late miner config."""
    volume = {"name": "cfg", "configMap": {"name": "later", "optional": True}}
    mount = [{"name": "cfg", "mountPath": "/etc/app"}]
    reads = pod({"command": ["/app", "-c", "/etc/app/c.json"], "volumeMounts": mount}, [volume])
    ignores = pod({"command": ["/app"], "volumeMounts": mount}, [volume])
    [problem] = resolved(reads, Store()).problems
    assert problem.what.startswith("ConfigMap apps/later not found (optional")
    assert resolved(ignores, Store()).problems == ()


def test_env_from_of_a_huge_configmap_into_many_containers_is_bounded() -> None:
    many = cm("wide", {f"K{i}": "v" for i in range(5000)})
    spec = {
        "containers": [
            {"name": f"c{i}", "image": "x", "envFrom": [{"configMapRef": {"name": "wide"}}]}
            for i in range(10)
        ]
    }
    obj = {"kind": "Pod", "metadata": {"name": "p", "namespace": NS}, "spec": spec}
    found = resolved(obj, Store(many))
    copied = sum(len(c.env) for c in found.containers)
    assert copied == references.MAX_VALUES
    assert any("rest not read" in p.what for p in found.problems)
