"""RBAC bindings that give anything to ``system:anonymous`` or ``system:unauthenticated``.

Read off the bindings themselves: binding anything to an anonymous subject is the finding,
except the few defaults Kubernetes and kubeadm create (:data:`DEFAULT_GRANTS`), whose roles
are checked against their default rules when given (a widened default role is a known way to
hide a backdoor).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from minerguard.api.investigation import EntryPoint, Severity
from minerguard_operator.decide.exposure.fields import (
    as_list,
    as_map,
    as_str,
    as_strs,
    few,
    where_of,
)

ANONYMOUS_SUBJECTS = frozenset(
    {
        ("Group", "system:unauthenticated"),
        ("Group", "system:anonymous"),
        ("User", "system:anonymous"),
    }
)
PUBLIC_INFO_URLS = frozenset({"/healthz", "/livez", "/readyz", "/version", "/version/"})
DISCOVERY_URLS = PUBLIC_INFO_URLS | {"/api", "/api/*", "/apis", "/apis/*", "/openapi", "/openapi/*"}


def gets_urls(urls: frozenset[str]) -> Callable[[Mapping[str, Any]], bool]:
    """A check that a rule only GETs some of these non-resource URLs (a default role's rule)."""

    def allows(rule: Mapping[str, Any]) -> bool:
        return (
            not as_list(rule.get("resources"))
            and set(as_strs(rule.get("verbs"))) <= {"get"}
            and set(as_strs(rule.get("nonResourceURLs"))) <= urls
        )

    return allows


def creates_self_reviews(rule: Mapping[str, Any]) -> bool:
    """Whether a rule only lets its holder ask about their own access (system:basic-user)."""
    return (
        set(as_strs(rule.get("apiGroups"))) <= {"authorization.k8s.io", "authentication.k8s.io"}
        and set(as_strs(rule.get("verbs"))) <= {"create"}
        and all(r.startswith("selfsubject") for r in as_strs(rule.get("resources")))
        and not as_list(rule.get("nonResourceURLs"))
    )


def _reads_cluster_info(rule: Mapping[str, Any]) -> bool:
    return (
        set(as_strs(rule.get("apiGroups"))) <= {""}
        and set(as_strs(rule.get("resources"))) <= {"configmaps"}
        and set(as_strs(rule.get("verbs"))) <= {"get"}
        and as_strs(rule.get("resourceNames")) == ["cluster-info"]
    )


@dataclass(frozen=True, slots=True)
class DefaultGrant:
    """A role Kubernetes or kubeadm binds to anonymous users by default, and its default rules."""

    role_kind: str
    role: str
    namespace: str | None
    """Where the binding must be (None: anywhere, as a ClusterRoleBinding)."""
    allows: Callable[[Mapping[str, Any]], bool]
    severity: Severity | None
    """None: harmless, not reported; else reported at this severity while unchanged."""
    note: str


DEFAULT_GRANTS = (
    DefaultGrant(
        "ClusterRole",
        "system:public-info-viewer",
        None,
        gets_urls(PUBLIC_INFO_URLS),
        None,
        "the default: health and version endpoints",
    ),
    DefaultGrant(
        "Role",
        "kubeadm:bootstrap-signer-clusterinfo",
        "kube-public",
        _reads_cluster_info,
        None,
        "kubeadm's default: the kube-public/cluster-info ConfigMap for joining nodes",
    ),
    DefaultGrant(
        "ClusterRole",
        "system:discovery",
        None,
        gets_urls(DISCOVERY_URLS),
        Severity.LOW,
        "kept from a cluster created before Kubernetes 1.14: anyone can list the APIs and CRDs",
    ),
    DefaultGrant(
        "ClusterRole",
        "system:basic-user",
        None,
        creates_self_reviews,
        Severity.LOW,
        "kept from a cluster created before Kubernetes 1.14: anyone can review their own access",
    ),
)


def _default(role_ref: Mapping[str, Any], namespace: str | None) -> DefaultGrant | None:
    for grant in DEFAULT_GRANTS:
        if (
            role_ref.get("kind") == grant.role_kind
            and role_ref.get("name") == grant.role
            and (grant.namespace is None or grant.namespace == namespace)
        ):
            return grant
    return None


def _widened(
    grant: DefaultGrant,
    namespace: str | None,
    cluster_roles: Sequence[Mapping[str, Any]] | None,
    roles: Sequence[Mapping[str, Any]] | None,
) -> bool | None:
    """Whether the default role now grants more than its defaults; None when not given."""
    given = cluster_roles if grant.role_kind == "ClusterRole" else roles
    if given is None:
        return None
    for role in given:
        role_namespace, name = where_of(role) if isinstance(role, Mapping) else (None, "")
        if name == grant.role and (grant.role_kind == "ClusterRole" or role_namespace == namespace):
            if as_map(role).get("aggregationRule"):
                return True  # an aggregated role grants whatever is labelled into it
            return not all(grant.allows(as_map(rule)) for rule in as_list(role.get("rules")))
    return False  # bound to a role that does not exist: grants nothing


def _anonymous(binding: Mapping[str, Any]) -> list[str]:
    """``Kind/name`` of the binding's subjects that are anonymous users."""
    subjects = map(as_map, as_list(binding.get("subjects")))
    pairs = ((as_str(s.get("kind")), as_str(s.get("name"))) for s in subjects)
    return [f"{kind}/{name}" for kind, name in pairs if (kind, name) in ANONYMOUS_SUBJECTS]


def default_roles_bound(
    cluster_role_bindings: Sequence[Mapping[str, Any]],
    role_bindings: Sequence[Mapping[str, Any]],
) -> list[tuple[str, str | None, str]]:
    """(kind, namespace, name) of the default roles bound to anonymous users: read to verify."""
    found: dict[tuple[str, str | None, str], None] = {}
    for cluster, bindings in ((True, cluster_role_bindings), (False, role_bindings)):
        for binding in map(as_map, bindings):
            namespace = None if cluster else where_of(binding)[0]
            grant = (
                _default(as_map(binding.get("roleRef")), namespace) if _anonymous(binding) else None
            )
            if grant is not None:
                where = namespace if grant.role_kind == "Role" else None
                found[(grant.role_kind, where, grant.role)] = None
    return list(found)


def anonymous_bindings(
    cluster_role_bindings: Sequence[Mapping[str, Any]],
    role_bindings: Sequence[Mapping[str, Any]],
    *,
    cluster_roles: Sequence[Mapping[str, Any]] | None = None,
    roles: Sequence[Mapping[str, Any]] | None = None,
) -> list[EntryPoint]:
    """Bindings that give anything to ``system:anonymous`` or ``system:unauthenticated``.

    High each, but for the defaults (:data:`DEFAULT_GRANTS`): ``system:public-info-viewer`` and
    kubeadm's ``cluster-info`` reader are not reported, the discovery roles an upgrade from before
    1.14 kept are Low. A default is trusted by name unless its role is given
    (``cluster_roles``/``roles``) and grants more than the default rules: then it is High.
    """
    found: list[EntryPoint] = []
    for kind, bindings in (
        ("ClusterRoleBinding", cluster_role_bindings),
        ("RoleBinding", role_bindings),
    ):
        for binding in map(as_map, bindings):  # junk becomes {}: no subjects
            subjects = _anonymous(binding)
            if not subjects:
                continue
            namespace, name = where_of(binding)
            if kind == "ClusterRoleBinding":
                namespace = None
            role_ref = as_map(binding.get("roleRef"))
            role = f"{as_str(role_ref.get('kind')) or '?'} {as_str(role_ref.get('name')) or '?'}"
            detail = f"{kind} {name} gives {role} to {few(subjects)}"
            delete = (
                f"kubectl delete rolebinding {name} -n {namespace}"
                if namespace
                else f"kubectl delete clusterrolebinding {name}"
            )
            severity = Severity.HIGH
            remedy = delete
            grant = _default(role_ref, namespace)
            if grant is not None:
                widened = _widened(grant, namespace, cluster_roles, roles)
                if widened:
                    detail += (
                        f"; the role was widened beyond its default rules ({grant.note}): someone"
                        " changed it, look for who in the audit log"
                    )
                    remedy = (
                        f"Restore {role} to its default rules (kubectl edit"
                        f" {grant.role_kind.lower()} {grant.role}"
                        + (f" -n {namespace}" if grant.role_kind == "Role" else "")
                        + f"), or {delete}"
                    )
                elif grant.severity is None:
                    continue
                else:
                    severity = grant.severity
                    detail += f" ({grant.note})"
                    remedy = (
                        f"Remove the anonymous subjects: kubectl edit {kind.lower()} {name}"
                        + (f" -n {namespace}" if namespace else "")
                    )
            found.append(
                EntryPoint(
                    kind="AnonymousBinding",
                    name=f"{namespace}/{name}" if namespace else name,
                    detail=detail,
                    severity=severity,
                    remedy=remedy,
                )
            )
    return found
