"""Cluster-wide pool blocking: the CNI's own policy objects, rendered from a MinerPolicy.

One MinerPolicy with ``spec.network.blockPoolTraffic`` becomes the strongest deny its cluster
can express, with the mechanism the cluster already runs:

- **AdminNetworkPolicy** (``policy.networking.k8s.io/v1alpha1``): ``Deny`` egress rules to the
  pool ports (any destination, in the cluster or not) and to the policy's pool networks, at
  priority :data:`ANP_PRIORITY` (evaluated before every NetworkPolicy, which cannot override
  it). Its ``domainNames`` peer (experimental channel only) is allowed in ``Allow`` rules only.
- **CiliumClusterwideNetworkPolicy** (``cilium.io/v2``): ``egressDeny`` with ``toPorts`` and
  ``toCIDRSet``, with ``enableDefaultDeny`` off in both directions: without that, any policy
  with egress rules puts every pod it selects into default-deny, and one pool block would cut
  the cluster off. Cilium's ``toFQDNs`` exists only in allow rules.
- **Calico GlobalNetworkPolicy** (``projectcalico.org/v3``, or ``crd.projectcalico.org/v1``
  where Calico's API server is not installed): ``Deny`` rules in a tier of minerguard's own
  whose default action is ``Pass``, each policy ending in an explicit ``Pass`` rule. In
  Calico's default tier a policy that selects a pod denies everything it does not allow at the
  end of the tier, and a ``Pass`` there would skip the tenants' NetworkPolicies; a tier of its
  own avoids both. Domains (``destination.domains``) are Calico Enterprise only, and allow-only.

So no engine denies by domain name: pool domains are listed as not expressed; the node agent
blocks the addresses it learns from pool-domain lookups, and the chart's optional CoreDNS
sinkhole answers them with nothing.

Who is covered follows the MinerPolicy exactly (:mod:`.pool_scope`); what is blocked is its
pool ports and networks plus the bundle's (:mod:`.pool_targets`).

Audit (and dryRun, and an open circuit) renders nothing that blocks: Calico gets ``Log``
rules instead of ``Deny`` (what would have been blocked reaches the node's log), the others
nothing; the status lists what would be blocked either way.

Ports that carry ordinary traffic (:data:`.pool_targets.PROTECTED_PORTS`) are never denied
cluster-wide, whoever lists them: a pool port list with 443 in it would otherwise be a cluster
outage. Pool traffic on those ports is the node agent's first-bytes and TLS-name inspection's.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from minerguard.api.meta import LabelSelectorRequirement
from minerguard.api.policy import MinerPolicySpec, NetworkEnforcement
from minerguard_operator.decide import marks, pool_scope, pool_targets

ANP_API = "policy.networking.k8s.io/v1alpha1"
CILIUM_API = "cilium.io/v2"
CALICO_API = "projectcalico.org/v3"
CALICO_CRD_API = "crd.projectcalico.org/v1"


@dataclass(frozen=True, slots=True)
class Resource:
    """One kind of object a mechanism is rendered into."""

    api_version: str
    kind: str
    plural: str


ANP = Resource(ANP_API, "AdminNetworkPolicy", "adminnetworkpolicies")
CCNP = Resource(CILIUM_API, "CiliumClusterwideNetworkPolicy", "ciliumclusterwidenetworkpolicies")
GNP = Resource(CALICO_API, "GlobalNetworkPolicy", "globalnetworkpolicies")
GNP_CRD = Resource(CALICO_CRD_API, "GlobalNetworkPolicy", "globalnetworkpolicies")
TIER = Resource(CALICO_API, "Tier", "tiers")
TIER_CRD = Resource(CALICO_CRD_API, "Tier", "tiers")

MANAGED_BY = "app.kubernetes.io/managed-by"
MANAGER = "minerguard"
POOL_BLOCK = f"{marks.PREFIX}/pool-block"
"""Label on every object rendered here: a short hash of the MinerPolicy's name (the operator
lists and deletes only objects carrying it and :data:`MANAGED_BY`)."""
POLICY_ANNOTATION = f"{marks.PREFIX}/policy"
"""Annotation: the MinerPolicy's name (a label value could not hold every name)."""

ANP_PRIORITY = 1
"""Just after the isolation policies (0): both deny, so their order does not matter."""
CALICO_TIER = "minerguard"
CALICO_TIER_ORDER = 100.0
"""Before Calico's ``kube-admin`` tier (1,000, AdminNetworkPolicies) and ``default`` (1e6)."""

DOMAINS_ELSEWHERE = (
    "they are answered with nothing by the chart's CoreDNS sinkhole (dns.sinkhole.enabled)"
    " and blocked by address on nodes where the agent enforces (enforcement Node)"
)
ANP_PORTS_PER_RULE = 100
ANP_NETWORKS_PER_PEER = 25
CILIUM_PORTS_PER_RULE = 40
"""A Cilium PortRule takes at most 40 ports (its schema's maxItems)."""
CALICO_PORTS_PER_RULE = 50
"""A Calico rule's destination.ports takes at most 50 entries (its schema's maxItems)."""
NAMESPACE_NAME = "kubernetes.io/metadata.name"
CILIUM_NAMESPACE = "k8s:io.kubernetes.pod.namespace"
CILIUM_NAMESPACE_LABEL = "k8s:io.cilium.k8s.namespace.labels."


# -- rendering --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Rendering:
    """The objects one policy needs, and what they cannot say."""

    mechanism: NetworkEnforcement
    resource: Resource | None
    objects: tuple[dict[str, Any], ...]
    not_expressed: tuple[str, ...]
    blocking: bool
    """Whether the objects deny (False: Audit, dryRun or an open circuit)."""
    support: tuple[tuple[Resource, dict[str, Any]], ...] = ()
    """Shared objects created if missing and never deleted (Calico's tier)."""


def object_name(policy: str, index: int = 0) -> str:
    """A DNS-1123 name for a policy's index-th object: readable, bounded, unique by hash."""
    base = f"minerguard-pool-{marks.dns_label(policy, 30)}-{marks.short_hash(policy)}"
    return base if index == 0 else f"{base}-{index}"


def metadata(policy: str, policy_uid: str | None, name: str) -> dict[str, Any]:
    """Labels that mark the object as minerguard's, and an owner reference to the policy.

    The MinerPolicy is cluster-scoped like these objects, so the garbage collector removes
    them with it even when the operator is not running.
    """
    found: dict[str, Any] = {
        "name": name,
        "labels": {MANAGED_BY: MANAGER, POOL_BLOCK: marks.short_hash(policy)},
        "annotations": {POLICY_ANNOTATION: policy},
    }
    if policy_uid:
        found["ownerReferences"] = [
            {
                "apiVersion": "minerguard.io/v1alpha1",
                "kind": "MinerPolicy",
                "name": policy,
                "uid": policy_uid,
            }
        ]
    return found


def _chunks(items: Sequence[Any], size: int) -> list[Sequence[Any]]:
    return [items[i : i + size] for i in range(0, len(items), size)]


def _anp_subject(
    scope_: pool_scope.Scope, subject: Sequence[LabelSelectorRequirement]
) -> dict[str, Any]:
    namespaces: dict[str, Any] = {}
    expressions = []
    if scope_.namespace_selector is not None:
        if scope_.namespace_selector.match_labels:
            namespaces["matchLabels"] = dict(sorted(scope_.namespace_selector.match_labels.items()))
        expressions += [
            pool_scope.expression(r) for r in scope_.namespace_selector.match_expressions
        ]
    if scope_.namespaces_out:
        expressions.append(
            {"key": NAMESPACE_NAME, "operator": "NotIn", "values": list(scope_.namespaces_out)}
        )
    if expressions:
        namespaces["matchExpressions"] = expressions
    pods: dict[str, Any] = {}
    if subject:
        pods["matchExpressions"] = [pool_scope.expression(r) for r in subject]
    return {"pods": {"namespaceSelector": namespaces, "podSelector": pods}}


def render_anp(
    policy: str,
    uid: str | None,
    scope_: pool_scope.Scope,
    goal: pool_targets.Targets,
    *,
    blocking: bool,
) -> Rendering:
    """AdminNetworkPolicies denying the covered pods' egress to pool ports and networks."""
    not_expressed = (
        [
            "pool domains: AdminNetworkPolicy's domainNames peer (experimental channel) is allowed"
            " in Allow rules only; " + DOMAINS_ELSEWHERE
        ]
        if goal.domains
        else []
    )
    if not blocking:
        return Rendering(
            NetworkEnforcement.ADMIN_NETWORK_POLICY, ANP, (), tuple(not_expressed), False
        )
    rules: list[dict[str, Any]] = []
    for index, ports in enumerate(_chunks(goal.ports, ANP_PORTS_PER_RULE)):
        rules.append(
            {
                "name": f"minerguard-pool-ports-{index}",
                "action": "Deny",
                "to": [{"namespaces": {}}, {"networks": ["0.0.0.0/0", "::/0"]}],
                "ports": [{"portNumber": {"protocol": "TCP", "port": p}} for p in ports],
            }
        )
    peers = [{"networks": list(chunk)} for chunk in _chunks(goal.networks, ANP_NETWORKS_PER_PEER)]
    if peers:
        rules.append({"name": "minerguard-pool-networks", "action": "Deny", "to": peers})
    objects = []
    if rules:
        for index, subject in enumerate(scope_.subjects):
            objects.append(
                {
                    "apiVersion": ANP.api_version,
                    "kind": ANP.kind,
                    "metadata": metadata(policy, uid, object_name(policy, index)),
                    "spec": {
                        "priority": ANP_PRIORITY,
                        "subject": _anp_subject(scope_, subject),
                        "egress": rules,
                    },
                }
            )
    return Rendering(
        NetworkEnforcement.ADMIN_NETWORK_POLICY, ANP, tuple(objects), tuple(not_expressed), True
    )


def _cilium_selector(
    scope_: pool_scope.Scope, subject: Sequence[LabelSelectorRequirement]
) -> dict[str, Any]:
    expressions: list[dict[str, Any]] = []
    selector = scope_.namespace_selector
    if selector is not None:
        for requirement in pool_scope.requirements(selector):
            key = CILIUM_NAMESPACE_LABEL + requirement.key
            expressions.append(pool_scope.expression(requirement, key))
    if scope_.namespaces_out:
        expressions.append(
            {"key": CILIUM_NAMESPACE, "operator": "NotIn", "values": list(scope_.namespaces_out)}
        )
    # Only pods: every pod carries its namespace label; host and world identities do not.
    expressions.append({"key": CILIUM_NAMESPACE, "operator": "Exists"})
    expressions += [pool_scope.expression(r, "k8s:" + r.key) for r in subject]
    return {"matchExpressions": expressions}


def render_cilium(
    policy: str,
    uid: str | None,
    scope_: pool_scope.Scope,
    goal: pool_targets.Targets,
    *,
    blocking: bool,
) -> Rendering:
    """CiliumClusterwideNetworkPolicies with egressDeny rules, default-deny left off."""
    not_expressed = (
        [
            "pool domains: Cilium's toFQDNs selects destinations for allow rules only (egressDeny"
            " has no toFQDNs); " + DOMAINS_ELSEWHERE
        ]
        if goal.domains
        else []
    )
    if not blocking:
        return Rendering(NetworkEnforcement.CILIUM, CCNP, (), tuple(not_expressed), False)
    rules: list[dict[str, Any]] = []
    if goal.ports:
        rules.append(
            {
                "toEntities": ["all"],
                "toPorts": [
                    {"ports": [{"port": str(p), "protocol": "TCP"} for p in chunk]}
                    for chunk in _chunks(goal.ports, CILIUM_PORTS_PER_RULE)
                ],
            }
        )
    if goal.networks:
        rules.append({"toCIDRSet": [{"cidr": n} for n in goal.networks]})
    objects = []
    if rules:
        for index, subject in enumerate(scope_.subjects):
            objects.append(
                {
                    "apiVersion": CCNP.api_version,
                    "kind": CCNP.kind,
                    "metadata": metadata(policy, uid, object_name(policy, index)),
                    "spec": {
                        "description": f"minerguard: pool traffic of MinerPolicy {policy}",
                        "endpointSelector": _cilium_selector(scope_, subject),
                        "enableDefaultDeny": {"egress": False, "ingress": False},
                        "egressDeny": rules,
                    },
                }
            )
    return Rendering(NetworkEnforcement.CILIUM, CCNP, tuple(objects), tuple(not_expressed), True)


def render_calico(
    policy: str,
    uid: str | None,
    scope_: pool_scope.Scope,
    goal: pool_targets.Targets,
    *,
    blocking: bool,
    crd: bool = False,
) -> Rendering:
    """One GlobalNetworkPolicy in minerguard's tier: Deny (Audit: Log) rules, then Pass."""
    resource, tier = (GNP_CRD, TIER_CRD) if crd else (GNP, TIER)
    not_expressed = (
        [
            "pool domains: destination.domains is Calico Enterprise only (not in the open-source"
            " API) and allow-only there; " + DOMAINS_ELSEWHERE
        ]
        if goal.domains
        else []
    )
    action = "Deny" if blocking else "Log"
    rules: list[dict[str, Any]] = []
    for chunk in _chunks(goal.ports, CALICO_PORTS_PER_RULE):
        rules.append({"action": action, "protocol": "TCP", "destination": {"ports": list(chunk)}})
    if goal.networks:
        rules.append({"action": action, "destination": {"nets": list(goal.networks)}})
    namespace_terms = []
    if scope_.namespace_selector is not None:
        namespace_terms += [
            pool_scope.calico_term(r) for r in pool_scope.requirements(scope_.namespace_selector)
        ]
    if scope_.namespaces_out:
        names = ", ".join(f"'{n}'" for n in scope_.namespaces_out)
        namespace_terms.append(f"{NAMESPACE_NAME} not in {{{names}}}")
    pod_selector = "all()"
    if scope_.exempt_pods is not None:
        exempt = pool_scope.calico_and(
            [pool_scope.calico_term(r) for r in pool_scope.requirements(scope_.exempt_pods)]
        )
        pod_selector = f"!({exempt})"
    objects = []
    if rules and scope_.subjects:
        objects.append(
            {
                "apiVersion": resource.api_version,
                "kind": resource.kind,
                "metadata": metadata(policy, uid, f"{CALICO_TIER}.{object_name(policy)}"),
                "spec": {
                    "tier": CALICO_TIER,
                    "order": 100.0,
                    "selector": pod_selector,
                    "namespaceSelector": pool_scope.calico_and(namespace_terms),
                    "types": ["Egress"],
                    "egress": [*rules, {"action": "Pass"}],
                },
            }
        )
    support = (
        (
            tier,
            {
                "apiVersion": tier.api_version,
                "kind": tier.kind,
                "metadata": {"name": CALICO_TIER, "labels": {MANAGED_BY: MANAGER}},
                "spec": {"order": CALICO_TIER_ORDER, "defaultAction": "Pass"},
            },
        ),
    )
    return Rendering(
        NetworkEnforcement.CALICO, resource, tuple(objects), tuple(not_expressed), blocking,
        support if objects else (),
    )  # fmt: skip


def render(
    mechanism: NetworkEnforcement,
    policy: str,
    uid: str | None,
    spec: MinerPolicySpec,
    goal: pool_targets.Targets,
    *,
    blocking: bool,
    calico_crd: bool = False,
) -> Rendering:
    """The objects for one policy and mechanism (Node: none; the agent blocks)."""
    scope_ = pool_scope.scope(spec)
    if mechanism is NetworkEnforcement.ADMIN_NETWORK_POLICY:
        return render_anp(policy, uid, scope_, goal, blocking=blocking)
    if mechanism is NetworkEnforcement.CILIUM:
        return render_cilium(policy, uid, scope_, goal, blocking=blocking)
    if mechanism is NetworkEnforcement.CALICO:
        return render_calico(policy, uid, scope_, goal, blocking=blocking, crd=calico_crd)
    return Rendering(NetworkEnforcement.NODE, None, (), (), blocking)


def differs(desired: Mapping[str, Any], current: Mapping[str, Any]) -> bool:
    """Whether an existing object needs an update to match the rendered one."""
    want_meta, have_meta = desired.get("metadata") or {}, current.get("metadata") or {}
    if desired.get("spec") != current.get("spec"):
        return True
    for key in ("labels", "annotations"):
        have = have_meta.get(key) or {}
        if any(have.get(k) != v for k, v in (want_meta.get(key) or {}).items()):
            return True
    return False


def contains(stored: Any, desired: Any) -> bool:
    """Whether what the server stored holds everything rendered (defaults it added aside).

    Mappings need every rendered key with a containing value; lists the same length and each
    item containing the rendered one; numbers compare by value (``100`` holds ``100.0``).
    """
    if isinstance(desired, Mapping):
        return isinstance(stored, Mapping) and all(
            key in stored and contains(stored[key], value) for key, value in desired.items()
        )
    if isinstance(desired, list):
        return (
            isinstance(stored, list)
            and len(stored) == len(desired)
            and all(contains(s, d) for s, d in zip(stored, desired, strict=True))
        )
    return bool(stored == desired)


def fingerprint(obj: Mapping[str, Any]) -> str:
    """A stable text of a rendered object's spec and marks, to tell renderings apart."""
    metadata = obj.get("metadata") or {}
    marks_ = {k: metadata.get(k) for k in ("labels", "annotations")}
    return json.dumps({"spec": obj.get("spec"), "marks": marks_}, sort_keys=True)


def merge_patch(current: Any, desired: Any) -> Any:
    """The JSON merge patch (RFC 7386) that turns ``current`` into ``desired``.

    Keys ``current`` has and ``desired`` lacks become null (deleted): a plain merge of the new
    spec would leave a dropped selector term or rule field in place and change what is denied.
    """
    if not isinstance(current, Mapping) or not isinstance(desired, Mapping):
        return desired
    patch: dict[str, Any] = {k: None for k in current if k not in desired}
    for key, value in desired.items():
        if key not in current:
            patch[key] = value
        elif current[key] != value:
            patch[key] = merge_patch(current[key], value)
    return patch


def update_patch(desired: Mapping[str, Any], current: Mapping[str, Any]) -> dict[str, Any]:
    """The patch bringing an owned object to the rendered one, guarded by its version and uid.

    Labels and annotations are only added or set (others' marks on it are kept); the spec is
    made exactly the rendered one.
    """
    want, have = desired.get("metadata") or {}, current.get("metadata") or {}
    metadata: dict[str, Any] = {
        key: dict(want.get(key) or {}) for key in ("labels", "annotations") if want.get(key)
    }
    metadata.update({k: have[k] for k in ("resourceVersion", "uid") if k in have})
    return {"metadata": metadata, "spec": merge_patch(current.get("spec") or {}, desired["spec"])}


def owned(obj: Mapping[str, Any], policy: str | None = None) -> bool:
    """Whether minerguard made this object (for ``policy``, when given).

    Only objects carrying both marks are ever updated or deleted: an object of the same name
    made by someone else is reported, never touched.
    """
    labels = (obj.get("metadata") or {}).get("labels") or {}
    if labels.get(MANAGED_BY) != MANAGER or POOL_BLOCK not in labels:
        return False
    return policy is None or labels.get(POOL_BLOCK) == marks.short_hash(policy)


def status(
    mechanism: NetworkEnforcement | None,
    rendering: Rendering | None,
    goal: pool_targets.Targets,
    *,
    applied: Sequence[str],
    why_not_blocking: str | None,
    problems: Sequence[str] = (),
) -> dict[str, Any]:
    """``status.network`` for a policy: mechanism, objects, what is (or would be) blocked."""
    not_expressed = list(rendering.not_expressed if rendering else ())
    if goal.refused_ports:
        listed = ", ".join(str(p) for p in goal.refused_ports)
        not_expressed.append(
            f"ports {listed}: they carry ordinary traffic and are never denied cluster-wide;"
            " pool traffic on them is the node agent's first-bytes inspection's"
        )
    blocking = bool(rendering and rendering.blocking) and why_not_blocking is None
    if mechanism is None:
        message = "the requested mechanism is not served by this cluster: nothing is blocked"
    elif why_not_blocking:
        message = f"{why_not_blocking}: nothing is blocked; the ports and domains listed would be"
    elif mechanism is NetworkEnforcement.NODE:
        message = "no cluster policy engine: each node's agent blocks in its own nftables table"
    else:
        message = f"{mechanism.value} denies covered pods' egress to pool ports and networks"
    if problems:
        message += "; " + "; ".join(problems)
    return {
        "enforcement": mechanism.value if mechanism else None,
        "objects": list(applied),
        "blockedPorts": list(goal.ports),
        "blockedDomains": list(goal.domains) if mechanism is NetworkEnforcement.NODE else [],
        "notExpressed": not_expressed,
        "enforced": blocking,
        "message": message[:1024],
    }
