"""Whether cutting a pod's egress with a NetworkPolicy can be trusted to hold.

NetworkPolicies only ever add permissions: a pod selected by any policy that allows egress may
send wherever that policy allows, whatever deny-all policy minerguard adds beside it. So an
isolation by NetworkPolicy is only claimed when no other policy in the namespace selects the pod
and allows egress (the selectors are evaluated here against the pod's labels, as the network
plugin would). An AdminNetworkPolicy's ``Deny`` is evaluated before namespace policies and
cannot be overridden by them, so where the cluster serves one, that is what isolates.

Either way the pod is selected by the ``minerguard.io/isolated`` label, which whoever may patch
the pod can remove: isolation is only claimed when the label is guarded (a
ValidatingAdmissionPolicy lets only the operator change it; the operator's
``isolationLabelGuarded`` setting says the cluster has one).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from minerguard_operator.decide import marks

ANP_GROUP_VERSION = "policy.networking.k8s.io/v1alpha1"
ANP_PLURAL = "adminnetworkpolicies"
NOT_GUARANTEED = "not guaranteed"
"""Said in the ``Isolate`` step's detail when the isolation cannot be trusted to hold."""
ISOLATED_POD = f"{marks.PREFIX}/isolated-pod"
"""Annotation on an AdminNetworkPolicy: ``namespace/name`` of the pod it isolates. Cluster-scoped,
it cannot be owned by the pod; housekeeping deletes it once that pod (by uid) is gone."""
ANP_PRIORITY = 0
"""The highest precedence an AdminNetworkPolicy can have (0..1000, lower wins)."""


def _requirement(requirement: Any, labels: Mapping[str, str]) -> bool:
    if not isinstance(requirement, Mapping):
        return False
    key, operator = requirement.get("key"), requirement.get("operator")
    values = requirement.get("values") or []
    present = isinstance(key, str) and key in labels
    if operator == "Exists":
        return present
    if operator == "DoesNotExist":
        return not present
    if operator == "In":
        return present and labels[str(key)] in values
    if operator == "NotIn":
        return not present or labels[str(key)] not in values
    return False  # an unknown operator: the API server would have refused it


def selects(selector: Any, labels: Mapping[str, str]) -> bool:
    """Whether a LabelSelector selects these labels (``{}`` selects everything; None nothing)."""
    if not isinstance(selector, Mapping):
        return False
    match = selector.get("matchLabels") or {}
    if not isinstance(match, Mapping):
        return False
    if any(labels.get(str(k)) != v for k, v in match.items()):
        return False
    expressions = selector.get("matchExpressions") or []
    return all(_requirement(item, labels) for item in expressions)


def allows_egress(policy: Mapping[str, Any]) -> bool:
    """Whether a NetworkPolicy allows some egress of the pods it selects.

    It affects egress when ``policyTypes`` names Egress, or when ``policyTypes`` is unset and it
    has an ``egress`` section; it allows something when it has at least one egress rule (an
    empty rule ``{}`` allows everything).
    """
    spec = policy.get("spec") or {}
    rules = spec.get("egress")
    types = spec.get("policyTypes")
    affects = "Egress" in types if isinstance(types, list) else rules is not None
    return bool(affects and isinstance(rules, list) and rules)


def undermining(
    policies: Iterable[Mapping[str, Any]], pod_labels: Mapping[str, str], own: str
) -> list[str]:
    """Names of the NetworkPolicies (other than ``own``) that select the pod and allow egress."""
    found = []
    for policy in policies:
        name = str((policy.get("metadata") or {}).get("name") or "")
        if name == own:
            continue
        if selects((policy.get("spec") or {}).get("podSelector"), pod_labels) and allows_egress(
            policy
        ):
            found.append(name)
    return sorted(found)


def orphaned(anp: Mapping[str, Any], pod: Mapping[str, Any] | None) -> bool:
    """Whether an isolating AdminNetworkPolicy outlived its pod (gone, or another uid)."""
    metadata = anp.get("metadata") or {}
    uid = (metadata.get("labels") or {}).get(marks.ISOLATED)
    if not uid or ISOLATED_POD not in (metadata.get("annotations") or {}):
        return False  # not one of ours
    return pod is None or (pod.get("metadata") or {}).get("uid") != uid


def admin_network_policy(
    name: str, namespace: str, pod: str, pod_uid: str, detection: str
) -> dict[str, Any]:
    """An AdminNetworkPolicy denying all egress of the pod labelled as isolated (its uid)."""
    return {
        "apiVersion": ANP_GROUP_VERSION,
        "kind": "AdminNetworkPolicy",
        "metadata": {
            "name": name,
            "labels": {marks.ISOLATED: pod_uid},
            "annotations": {marks.ISOLATED_BY: detection, ISOLATED_POD: f"{namespace}/{pod}"},
        },
        "spec": {
            "priority": ANP_PRIORITY,
            "subject": {
                "pods": {
                    "namespaceSelector": {
                        "matchLabels": {"kubernetes.io/metadata.name": namespace}
                    },
                    "podSelector": {"matchLabels": {marks.ISOLATED: pod_uid}},
                }
            },
            "egress": [
                {
                    "name": "minerguard-isolate",
                    "action": "Deny",
                    "to": [{"namespaces": {}}, {"networks": ["0.0.0.0/0", "::/0"]}],
                }
            ],
        },
    }
