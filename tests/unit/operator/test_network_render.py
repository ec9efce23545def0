"""Cluster-wide pool blocking: what each engine's objects say, checked against its own schema.

The schemas are the projects' published CRDs (``tests/data/schemas/``, each with its
provenance in its header): AdminNetworkPolicy from kubernetes-sigs/network-policy-api (both
channels), Calico's GlobalNetworkPolicy (both API groups) and Cilium's
CiliumClusterwideNetworkPolicy. Unknown fields fail (as ``kubectl --validate=strict`` would;
the API server would otherwise drop them silently and the rule would mean something else).
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from minerguard.api.policy import MinerPolicy, MinerPolicySpec, NetworkEnforcement
from minerguard.policy_book import PolicyBook
from minerguard.signatures import bundle
from minerguard.signatures.bundle import Kind
from minerguard_operator.decide import isolation, pool_scope, pool_targets
from minerguard_operator.decide import network as net
from tests import support

SCHEMAS = Path(__file__).resolve().parents[2] / "data" / "schemas"
ENGINES = (
    NetworkEnforcement.ADMIN_NETWORK_POLICY,
    NetworkEnforcement.CILIUM,
    NetworkEnforcement.CALICO,
)


def _load(name: str) -> Any:
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    return yaml.load((SCHEMAS / name).read_text(), Loader=loader)  # noqa: S506 - a safe loader


@functools.cache
def _crd_schema(name: str, version: str) -> dict[str, Any]:
    crd = _load(name)
    for served in crd["spec"]["versions"]:
        if served["name"] == version:
            schema: dict[str, Any] = support.json_schema(served["schema"]["openAPIV3Schema"])
            return schema
    raise AssertionError(f"{name} has no version {version}")


@functools.cache
def _cilium_schema() -> dict[str, Any]:
    schema: dict[str, Any] = _load("cilium-ccnp-v2.yaml")
    return schema


def _schemas_for(obj: Mapping[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    kind, api = obj["kind"], obj["apiVersion"]
    if kind == "AdminNetworkPolicy":
        return [
            ("anp standard", _crd_schema("anp-standard.yaml", "v1alpha1")),
            ("anp experimental", _crd_schema("anp-experimental.yaml", "v1alpha1")),
        ]
    if kind == "CiliumClusterwideNetworkPolicy":
        return [("cilium", _cilium_schema())]
    if kind == "GlobalNetworkPolicy" and api == net.CALICO_API:
        return [("calico v3", _crd_schema("calico-projectcalico.org.yaml", "v3"))]
    if kind == "GlobalNetworkPolicy":
        return [("calico crd v1", _crd_schema("calico-crd.projectcalico.org.yaml", "v1"))]
    if kind == "Tier" and api == net.CALICO_API:
        return [("calico tier v3", _crd_schema("calico-projectcalico.org-tiers.yaml", "v3"))]
    if kind == "Tier":
        return [("calico tier v1", _crd_schema("calico-crd.projectcalico.org-tiers.yaml", "v1"))]
    raise AssertionError(f"no schema for {api} {kind}")


def _validate(obj: Mapping[str, Any]) -> None:
    for label, schema in _schemas_for(obj):
        errors = sorted(
            jsonschema.Draft7Validator(schema).iter_errors(obj), key=lambda e: list(e.path)
        )
        assert not errors, f"{label}: " + "; ".join(
            f"{'/'.join(map(str, e.path))}: {e.message[:200]}" for e in errors[:5]
        )


def _spec(**raw: Any) -> MinerPolicySpec:
    return MinerPolicySpec.model_validate(raw)


WIDE = _spec(
    namespaceSelector={
        "matchLabels": {"team": "apps"},
        "matchExpressions": [{"key": "tier", "operator": "In", "values": ["web", "batch"]}],
    },
    excludedNamespaces=["kube-system", "monitoring"],
    exemptions={
        "namespaces": ["ci"],
        "podLabels": {
            "matchLabels": {"minerguard.io/exempt": "true"},
            "matchExpressions": [{"key": "benchmark", "operator": "Exists"}],
        },
    },
    signatures={"poolPorts": [4444, 3333], "poolHosts": ["pool.example.org", "bücher.example"]},
    network={
        "blockPoolTraffic": True,
        "poolNetworks": [
            "203.0.113.7/32",
            "2001:db8::/64",
            *(f"198.51.100.{i}/32" for i in range(30)),
        ],
    },
)


def _render(
    mechanism: NetworkEnforcement,
    spec: MinerPolicySpec,
    *,
    blocking: bool = True,
    crd: bool = False,
) -> net.Rendering:
    goal = pool_targets.targets(spec, bundle.builtin())
    return net.render(mechanism, "guard", "uid-1", spec, goal, blocking=blocking, calico_crd=crd)


@pytest.mark.parametrize("blocking", [True, False], ids=["enforce", "audit"])
@pytest.mark.parametrize(
    ("mechanism", "crd"),
    [
        (NetworkEnforcement.ADMIN_NETWORK_POLICY, False),
        (NetworkEnforcement.CILIUM, False),
        (NetworkEnforcement.CALICO, False),
        (NetworkEnforcement.CALICO, True),
    ],
)
@pytest.mark.parametrize("spec", [WIDE, _spec()], ids=["scoped-exempt", "defaults"])
def test_every_rendered_object_validates_against_its_project_schema(
    mechanism: NetworkEnforcement, crd: bool, blocking: bool, spec: MinerPolicySpec
) -> None:
    rendering = _render(mechanism, spec, blocking=blocking, crd=crd)
    for obj in rendering.objects:
        _validate(obj)
    for resource, obj in rendering.support:
        assert obj["apiVersion"] == resource.api_version
        _validate(obj)
    if blocking or mechanism is NetworkEnforcement.CALICO:
        assert rendering.objects, "something must be rendered"


def test_the_calico_tier_passes_what_its_policies_do_not_deny() -> None:
    rendering = _render(NetworkEnforcement.CALICO, WIDE)
    ((resource, tier),) = rendering.support
    assert resource.kind == "Tier"
    assert tier["spec"] == {"order": net.CALICO_TIER_ORDER, "defaultAction": "Pass"}


def _builtin_ports() -> set[int]:
    return {
        int(e.value)
        for e in bundle.builtin().signatures
        if e.kind is Kind.POOL_PORT and e.tier != "experimental"
    } - pool_targets.PROTECTED_PORTS


def _anp_ports(obj: Mapping[str, Any]) -> set[int]:
    return {
        p["portNumber"]["port"]
        for rule in obj["spec"]["egress"]
        for p in rule.get("ports", [])
        if rule["action"] == "Deny"
    }


def test_each_engine_denies_every_bundle_pool_port_and_the_policys_own() -> None:
    wanted = _builtin_ports() | {4444, 3333}
    anp = _render(NetworkEnforcement.ADMIN_NETWORK_POLICY, WIDE).objects[0]
    assert _anp_ports(anp) == wanted
    cilium = _render(NetworkEnforcement.CILIUM, WIDE).objects[0]
    (rule,) = [r for r in cilium["spec"]["egressDeny"] if "toPorts" in r]
    assert {int(p["port"]) for group in rule["toPorts"] for p in group["ports"]} == wanted
    assert all(len(group["ports"]) <= net.CILIUM_PORTS_PER_RULE for group in rule["toPorts"])
    calico = _render(NetworkEnforcement.CALICO, WIDE).objects[0]
    denied = [r for r in calico["spec"]["egress"] if r["action"] == "Deny" and r.get("protocol")]
    assert {p for rule in denied for p in rule["destination"]["ports"]} == wanted


def test_each_engine_denies_the_policys_pool_networks_on_every_port() -> None:
    wanted = {"203.0.113.7/32", "2001:db8::/64"} | {f"198.51.100.{i}/32" for i in range(30)}
    anp = _render(NetworkEnforcement.ADMIN_NETWORK_POLICY, WIDE).objects[0]
    (rule,) = [r for r in anp["spec"]["egress"] if r["name"] == "minerguard-pool-networks"]
    assert "ports" not in rule
    assert {n for peer in rule["to"] for n in peer["networks"]} == wanted
    cilium = _render(NetworkEnforcement.CILIUM, WIDE).objects[0]
    (rule,) = [r for r in cilium["spec"]["egressDeny"] if "toCIDRSet" in r]
    assert {c["cidr"] for c in rule["toCIDRSet"]} == wanted
    calico = _render(NetworkEnforcement.CALICO, WIDE).objects[0]
    (rule,) = [r for r in calico["spec"]["egress"] if "nets" in r.get("destination", {})]
    assert set(rule["destination"]["nets"]) == wanted
    assert "protocol" not in rule


def test_an_experimental_bundle_port_is_never_blocked_cluster_wide() -> None:
    experimental = {
        int(e.value)
        for e in bundle.builtin().signatures
        if e.kind is Kind.POOL_PORT and e.tier == "experimental"
    }
    assert experimental, "the bundle has no experimental pool port left to test with"
    goal = pool_targets.targets(_spec(), bundle.builtin())
    assert not experimental & set(goal.ports)


def test_a_pool_port_that_carries_ordinary_traffic_is_never_denied() -> None:
    """An admin (or a bad bundle) listing 443 or 53 must not take the cluster's egress down."""
    spec = _spec(signatures={"poolPorts": [443, 53, 80, 3333]}, network={"blockPoolTraffic": True})
    goal = pool_targets.targets(spec, None)
    assert goal.ports == (3333,)
    assert goal.refused_ports == (53, 80, 443)
    for mechanism in ENGINES:
        rendering = _render(mechanism, spec)
        status = net.status(mechanism, rendering, goal, applied=[], why_not_blocking=None)
        assert any("53, 80, 443" in line for line in status["notExpressed"])
        assert status["blockedPorts"] == [3333]


def test_cilium_never_puts_covered_pods_into_default_deny() -> None:
    """A CCNP with egress rules defaults to default-deny for every pod it selects."""
    for obj in _render(NetworkEnforcement.CILIUM, WIDE).objects:
        assert obj["spec"]["enableDefaultDeny"] == {"egress": False, "ingress": False}
        assert "egress" not in obj["spec"]
        assert "ingress" not in obj["spec"]


def test_calico_policy_passes_what_it_does_not_deny_in_its_own_tier() -> None:
    """In the default tier a selecting policy denies the rest; a Pass there skips tenants' NPs."""
    (obj,) = _render(NetworkEnforcement.CALICO, WIDE).objects
    assert obj["spec"]["tier"] == net.CALICO_TIER != "default"
    assert obj["metadata"]["name"].startswith(net.CALICO_TIER + ".")
    assert obj["spec"]["egress"][-1] == {"action": "Pass"}
    assert "Allow" not in {r["action"] for r in obj["spec"]["egress"]}


def _anp_selects(
    obj: Mapping[str, Any], namespace: str, ns_labels: dict[str, str], pod: dict[str, str]
) -> bool:
    pods = obj["spec"]["subject"]["pods"]
    ns = {**ns_labels, net.NAMESPACE_NAME: namespace}
    return isolation.selects(pods["namespaceSelector"], ns) and isolation.selects(
        pods["podSelector"], pod
    )


def _cilium_selects(
    obj: Mapping[str, Any], namespace: str, ns_labels: dict[str, str], pod: dict[str, str]
) -> bool:
    identity = {net.CILIUM_NAMESPACE: namespace}
    identity.update({net.CILIUM_NAMESPACE_LABEL + k: v for k, v in ns_labels.items()})
    identity.update({"k8s:" + k: v for k, v in pod.items()})
    return isolation.selects(obj["spec"]["endpointSelector"], identity)


COVERED_NS = {"team": "apps", "tier": "web"}
CASES = [
    ("apps", COVERED_NS, {"app": "web"}, True),
    ("apps", COVERED_NS, {"minerguard.io/exempt": "true"}, True),  # half the exemption only
    ("apps", COVERED_NS, {"benchmark": ""}, True),
    ("apps", COVERED_NS, {"minerguard.io/exempt": "true", "benchmark": "x"}, False),
    ("ci", COVERED_NS, {"app": "web"}, False),  # exempt namespace
    ("monitoring", COVERED_NS, {"app": "web"}, False),  # excluded namespace
    ("other", {"team": "other"}, {"app": "web"}, False),  # not selected
    ("apps", {"team": "apps", "tier": "db"}, {"app": "web"}, False),
]


@pytest.mark.parametrize(("namespace", "ns_labels", "pod", "covered"), CASES)
def test_exactly_the_covered_pods_are_subjects(
    namespace: str, ns_labels: dict[str, str], pod: dict[str, str], covered: bool
) -> None:
    anp = _render(NetworkEnforcement.ADMIN_NETWORK_POLICY, WIDE).objects
    cilium = _render(NetworkEnforcement.CILIUM, WIDE).objects
    assert len(anp) == len(cilium) == 2  # one subject per exemption requirement
    assert any(_anp_selects(o, namespace, ns_labels, pod) for o in anp) is covered
    assert any(_cilium_selects(o, namespace, ns_labels, pod) for o in cilium) is covered


def test_calico_selectors_say_the_same_scope_in_calicos_language() -> None:
    (obj,) = _render(NetworkEnforcement.CALICO, WIDE).objects
    assert obj["spec"]["selector"] == "!(minerguard.io/exempt in {'true'} && has(benchmark))"
    assert obj["spec"]["namespaceSelector"] == (
        "team in {'apps'} && tier in {'batch', 'web'}"
        " && kubernetes.io/metadata.name not in {'ci', 'kube-system', 'monitoring'}"
    )


def test_an_exemption_of_every_pod_renders_nothing() -> None:
    spec = _spec(exemptions={"podLabels": {}}, network={"blockPoolTraffic": True})
    for mechanism in ENGINES:
        assert _render(mechanism, spec).objects == ()


@pytest.mark.parametrize(
    "selector",
    [
        {"matchLabels": {"app": "x' || all() || 'y"}},
        {"matchExpressions": [{"key": "a) || all() || (b", "operator": "Exists"}]},
    ],
)
def test_a_label_that_would_rewrite_a_calico_selector_is_refused(selector: dict[str, Any]) -> None:
    spec = _spec(exemptions={"podLabels": selector}, network={"blockPoolTraffic": True})
    with pytest.raises(pool_scope.RenderError, match="label"):
        _render(NetworkEnforcement.CALICO, spec)


def test_audit_renders_nothing_that_blocks_and_calico_logs_instead() -> None:
    for mechanism in (NetworkEnforcement.ADMIN_NETWORK_POLICY, NetworkEnforcement.CILIUM):
        assert _render(mechanism, WIDE, blocking=False).objects == ()
    (obj,) = _render(NetworkEnforcement.CALICO, WIDE, blocking=False).objects
    assert {r["action"] for r in obj["spec"]["egress"]} == {"Log", "Pass"}


def test_audit_status_records_what_would_have_been_blocked() -> None:
    goal = pool_targets.targets(WIDE, bundle.builtin())
    rendering = _render(NetworkEnforcement.NODE, WIDE, blocking=False)
    status = net.status(
        NetworkEnforcement.NODE, rendering, goal, applied=[], why_not_blocking="mode Audit"
    )
    assert status["enforced"] is False
    assert status["blockedPorts"] == list(goal.ports)
    assert 3333 in status["blockedPorts"]
    assert "pool.example.org" in status["blockedDomains"]
    assert "xn--bcher-kva.example" in status["blockedDomains"]  # IDNA, as DNS carries it
    assert status["message"].startswith("mode Audit: nothing is blocked")


def test_no_engine_can_deny_by_domain_and_each_says_so() -> None:
    goal = pool_targets.targets(WIDE, bundle.builtin())
    for mechanism in ENGINES:
        rendering = _render(mechanism, WIDE)
        status = net.status(mechanism, rendering, goal, applied=[], why_not_blocking=None)
        assert status["blockedDomains"] == []
        assert any(line.startswith("pool domains:") for line in status["notExpressed"])
        text = yaml.safe_dump([dict(o) for o in rendering.objects])
        assert "pool.example.org" not in text


@pytest.mark.parametrize(
    ("requested", "served", "chosen"),
    [
        ("Auto", {"AdminNetworkPolicy", "Cilium", "Calico"}, "AdminNetworkPolicy"),
        ("Auto", {"Cilium", "Calico"}, "Cilium"),
        ("Auto", {"Calico"}, "Calico"),
        ("Auto", set(), "Node"),
        ("Calico", {"AdminNetworkPolicy", "Calico"}, "Calico"),
        ("Cilium", {"Calico"}, None),
        ("Node", {"AdminNetworkPolicy"}, "Node"),
    ],
)
def test_auto_chooses_the_strongest_served_engine_and_a_named_one_is_never_swapped(
    requested: str, served: set[str], chosen: str | None
) -> None:
    found = pool_targets.choose(
        NetworkEnforcement(requested), {NetworkEnforcement(s) for s in served}
    )
    assert (found.value if found else None) == chosen


def test_objects_are_marked_owned_by_minerguard_and_by_their_policy() -> None:
    (obj, *_) = _render(NetworkEnforcement.ADMIN_NETWORK_POLICY, WIDE).objects
    assert net.owned(obj, "guard")
    assert not net.owned(obj, "other")
    assert obj["metadata"]["ownerReferences"][0]["uid"] == "uid-1"
    foreign = {"metadata": {"name": obj["metadata"]["name"], "labels": {"team": "net"}}}
    assert not net.owned(foreign)


def test_an_update_removes_what_the_new_rendering_dropped() -> None:
    """A plain merge would keep a dropped selector term, and the subject would shrink."""
    before = _render(NetworkEnforcement.ADMIN_NETWORK_POLICY, WIDE).objects[0]
    narrower = _spec(network={"blockPoolTraffic": True}, signatures={"poolPorts": [4444]})
    after = _render(NetworkEnforcement.ADMIN_NETWORK_POLICY, narrower).objects[0]
    current = {**before, "metadata": {**before["metadata"], "resourceVersion": "7", "uid": "u"}}
    patch = net.update_patch(after, current)
    assert patch["metadata"]["resourceVersion"] == "7"
    assert patch["metadata"]["uid"] == "u"

    def apply(doc: Any, change: Any) -> Any:  # RFC 7386, as the API server applies it
        if not isinstance(change, dict):
            return change
        merged = dict(doc) if isinstance(doc, dict) else {}
        for key, value in change.items():
            if value is None:
                merged.pop(key, None)
            else:
                merged[key] = apply(merged.get(key), value)
        return merged

    assert apply(current["spec"], patch["spec"]) == after["spec"]
    assert net.differs(after, current)
    assert not net.differs(after, {**after, "metadata": {**after["metadata"], "uid": "x"}})


@pytest.mark.parametrize("mechanism", ENGINES)
def test_a_long_port_list_is_split_into_rules_each_engine_accepts(
    mechanism: NetworkEnforcement,
) -> None:
    ports = list(range(20000, 20250))
    spec = _spec(
        builtinSignatures=False, signatures={"poolPorts": ports}, network={"blockPoolTraffic": True}
    )
    (obj,) = _render(mechanism, spec).objects
    _validate(obj)
    text = yaml.safe_dump(obj)
    assert all(f" {p}\n" in text or f"'{p}'" in text for p in ports)


def test_a_spec_the_server_pruned_is_told_from_one_it_only_defaulted() -> None:
    """An older Cilium drops enableDefaultDeny silently: every covered pod would be cut off."""
    (obj, *_) = _render(NetworkEnforcement.CILIUM, WIDE).objects
    pruned = {k: v for k, v in obj["spec"].items() if k != "enableDefaultDeny"}
    assert not net.contains(pruned, obj["spec"])
    defaulted = {**obj["spec"], "ingressDeny": [], "labels": []}
    assert net.contains(defaulted, obj["spec"])
    (gnp,) = _render(NetworkEnforcement.CALICO, WIDE).objects
    assert net.contains({**gnp["spec"], "order": 100}, gnp["spec"])  # 100.0 read back as 100
    assert not net.contains({**gnp["spec"], "egress": gnp["spec"]["egress"][:-1]}, gnp["spec"])


@pytest.mark.parametrize("mechanism", ENGINES)
def test_the_example_policy_renders_valid_objects_for_every_engine(
    mechanism: NetworkEnforcement,
) -> None:
    example = Path(__file__).resolve().parents[3] / "examples/policies/block-pool-traffic.yaml"
    policy = MinerPolicy.model_validate(yaml.safe_load(example.read_text()))
    goal = pool_targets.targets(policy.spec, bundle.builtin())
    rendering = net.render(mechanism, "block-pools", None, policy.spec, goal, blocking=True)
    assert rendering.objects
    for obj in rendering.objects:
        _validate(obj)
    assert 14444 in goal.ports
    assert goal.networks == ("203.0.113.0/28",)


@pytest.mark.parametrize("network", ["0.0.0.0/0", "10.0.0.0/8", "::/0", "2001:db8::/16", "pool"])
def test_a_pool_network_that_is_not_one_pools_addresses_is_refused(network: str) -> None:
    """A typo'd /0 in a pool list would deny all egress of every covered pod."""
    with pytest.raises(ValueError, match=r"poolNetworks\[0\]"):
        _spec(network={"blockPoolTraffic": True, "poolNetworks": [network]})


def test_the_policy_book_sees_the_enforcement_the_operator_reports_next() -> None:
    """The agents read status.network.enforcement from their policy book: a status-only change
    (the CNI's CRDs removed, the operator now reporting Node) must reach them, or a node keeps
    leaving blocking to an engine that is gone."""
    book = PolicyBook()
    body: dict[str, Any] = {
        "kind": "MinerPolicy",
        "metadata": {"name": "p", "uid": "u", "generation": 1},
        "spec": {"network": {"blockPoolTraffic": True}},
        "status": {"network": {"enforcement": "AdminNetworkPolicy"}},
    }
    first = book.update(body)
    assert first.compiled is not None
    assert first.compiled.network_enforcement == "AdminNetworkPolicy"
    later = book.update({**body, "status": {"network": {"enforcement": "Node"}}})
    assert later.compiled is not None
    assert later.compiled.network_enforcement == "Node"
