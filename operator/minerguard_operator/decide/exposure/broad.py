"""RBAC bindings that give real rights to every user or every service account.

``system:authenticated`` is every holder of any credential (on GKE before 1.28, any Google
account), ``system:serviceaccounts`` every pod's token in the cluster, and
``system:serviceaccounts:NS`` every pod of NS: binding rights to them is as wide a door as an
anonymous binding for an attacker who has any foothold. Unlike anonymous bindings (where any grant
is the finding) what matters here is what the role allows, so the role's rules are read
(:func:`rule_rights`), never the authorizer asked: the question is about a binding, not a user.
A compromised pod's token then counts as "every service account" and needs nothing else.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from minerguard.api.investigation import EntryPoint, Severity
from minerguard_operator.decide.exposure.anonymous import (
    ANONYMOUS_SUBJECTS,
    DISCOVERY_URLS,
    PUBLIC_INFO_URLS,
    creates_self_reviews,
    gets_urls,
)
from minerguard_operator.decide.exposure.fields import (
    as_list,
    as_map,
    as_str,
    as_strs,
    few,
    where_of,
)

RoleKey = tuple[str, str | None, str]
"""(``ClusterRole`` or ``Role``, namespace of a Role or None, name)."""

EVERY_USER = "system:authenticated"
EVERY_SERVICE_ACCOUNT = "system:serviceaccounts"
ADMIN_ROLES = frozenset({"cluster-admin", "admin", "edit"})
"""The built-in ClusterRoles that run pods, exec and read secrets: High by name, not read."""
ISSUER_URLS = frozenset(
    {
        "/.well-known/openid-configuration",
        "/.well-known/openid-configuration/",
        "/openid/v1/jwks",
        "/openid/v1/jwks/",
    }
)
BROAD_DEFAULTS: Mapping[str, tuple[str, Callable[[Mapping[str, Any]], bool]]] = {
    "system:basic-user": (EVERY_USER, creates_self_reviews),
    "system:discovery": (EVERY_USER, gets_urls(DISCOVERY_URLS)),
    "system:public-info-viewer": (EVERY_USER, gets_urls(PUBLIC_INFO_URLS)),
    "system:service-account-issuer-discovery": (EVERY_SERVICE_ACCOUNT, gets_urls(ISSUER_URLS)),
}
"""ClusterRole name -> (the group Kubernetes binds it to by default, a check of its default rules):
the defaults Kubernetes itself binds to these groups (kubeadm adds none). Not reported while the
role holds only its default rules and the binding names no other broad group."""

POD_RUNNERS = frozenset(
    {
        ("", "pods"),
        ("", "replicationcontrollers"),
        ("apps", "deployments"),
        ("apps", "daemonsets"),
        ("apps", "statefulsets"),
        ("apps", "replicasets"),
        ("batch", "jobs"),
        ("batch", "cronjobs"),
    }
)
"""What runs a container when created, or runs another image when updated or patched."""
RUN_VERBS = frozenset({"create", "update", "patch"})
READ_VERBS = frozenset({"get", "list", "watch"})
ESCALATION_VERBS = frozenset({"bind", "escalate", "impersonate"})
RIGHTS: tuple[tuple[str, frozenset[tuple[str, str]], frozenset[str]], ...] = (
    ("run code in pods", POD_RUNNERS, RUN_VERBS),
    (
        "exec into pods",
        frozenset({("", "pods/exec"), ("", "pods/attach")}),
        frozenset({"create", "get"}),
    ),
    ("read secrets", frozenset({("", "secrets")}), READ_VERBS),
    (
        "mint service account tokens",
        frozenset({("", "serviceaccounts/token")}),
        frozenset({"create"}),
    ),
    ("reach the kubelet API", frozenset({("", "nodes/proxy")}), frozenset({"get", "create"})),
)
"""(what it lets the holder do, (API group, resource) pairs, verbs): each one is High.
``get`` on ``pods/exec`` counts: a websocket exec is a GET, allowed by it before Kubernetes 1.31."""


def rule_rights(rule: Mapping[str, Any]) -> tuple[list[str], bool]:
    """(the High rights one PolicyRule gives, whether it allows any verb beyond reading).

    A wildcard verb or resource is High itself (it grants whatever exists, now or later).
    """
    verbs = set(as_strs(rule.get("verbs")))
    groups = {g for g in as_list(rule.get("apiGroups")) if isinstance(g, str)}  # "" is core
    resources = set(as_strs(rule.get("resources")))
    urls = as_strs(rule.get("nonResourceURLs"))
    if not verbs or not (resources or urls):
        return [], False
    rights: list[str] = []
    if "*" in verbs:
        rights.append("every verb (*)")
    if any("*" in r for r in resources):
        rights.append("every resource (*)")
    if ESCALATION_VERBS & verbs and resources:
        escalation = "/".join(sorted(ESCALATION_VERBS & verbs))
        rights.append(f"{escalation} {', '.join(sorted(resources))} (escalation)")
    for name, pairs, allowed in RIGHTS:
        hit = sorted(
            resource
            for group, resource in pairs
            if (group in groups or "*" in groups) and resource in resources
        )
        if verbs & allowed and hit:
            rights.append(f"{'/'.join(sorted(verbs & allowed))} {', '.join(hit)} ({name})")
    return rights, bool(verbs - READ_VERBS)


def role_rights(role: Mapping[str, Any]) -> tuple[list[str], bool, bool]:
    """(High rights, writes anything, grants anything) of a Role or ClusterRole's rules."""
    rights: list[str] = []
    writes = grants = False
    for rule in map(as_map, as_list(role.get("rules"))):
        found, writing = rule_rights(rule)
        rights += [r for r in found if r not in rights]
        writes = writes or writing
        grants = grants or bool(as_strs(rule.get("verbs")))
    return rights, writes, grants


def _broad(subject: Mapping[str, Any], namespace: str | None) -> str | None:
    """Who a subject stands for when it is every user or every (namespace's) service account."""
    if as_str(subject.get("kind")) != "Group":
        return None
    name = as_str(subject.get("name")) or ""
    if name == EVERY_USER:
        return f"Group/{name} (every user with any credential)"
    if name == EVERY_SERVICE_ACCOUNT:
        return f"Group/{name} (every service account: every pod in the cluster)"
    prefix = EVERY_SERVICE_ACCOUNT + ":"
    if name.startswith(prefix) and name[len(prefix) :] != namespace:
        return f"Group/{name} (every pod of namespace {name[len(prefix) :]})"
    return None


def _subjects(binding: Mapping[str, Any], namespace: str | None) -> list[str]:
    subjects = [as_map(s) for s in as_list(binding.get("subjects"))]
    if any((as_str(s.get("kind")), as_str(s.get("name"))) in ANONYMOUS_SUBJECTS for s in subjects):
        return []  # reported as an anonymous binding, at High
    return [who for who in (_broad(s, namespace) for s in subjects) if who]


def _default(
    kind: str, key: RoleKey, binding: Mapping[str, Any]
) -> Callable[[Mapping[str, Any]], bool] | None:
    """The default-rules check when this is one of :data:`BROAD_DEFAULTS` as Kubernetes binds it."""
    group, allows = BROAD_DEFAULTS.get(key[2], ("", None))
    broad = {
        str(as_str(s.get("name")))
        for s in map(as_map, as_list(binding.get("subjects")))
        if _broad(s, None) is not None
    }
    if kind != "ClusterRoleBinding" or key[0] != "ClusterRole" or broad != {group}:
        return None
    return allows


def _role_key(binding: Mapping[str, Any], namespace: str | None) -> RoleKey | None:
    ref = as_map(binding.get("roleRef"))
    kind, name = as_str(ref.get("kind")), as_str(ref.get("name"))
    if name is None or kind not in ("ClusterRole", "Role") or (kind == "Role" and not namespace):
        return None
    return kind, namespace if kind == "Role" else None, name


def _each(
    cluster_role_bindings: Sequence[Any], role_bindings: Sequence[Any]
) -> list[tuple[str, Mapping[str, Any], str | None, str, list[str], RoleKey | None]]:
    """(kind, binding, namespace, name, broad subjects, role) of each binding to broad subjects."""
    found = []
    for kind, bindings in (
        ("ClusterRoleBinding", cluster_role_bindings),
        ("RoleBinding", role_bindings),
    ):
        for binding in map(as_map, bindings):  # junk becomes {}: no subjects
            namespace, name = where_of(binding)
            if kind == "ClusterRoleBinding":
                namespace = None
            subjects = _subjects(binding, namespace)
            if subjects:
                found.append(
                    (kind, binding, namespace, name, subjects, _role_key(binding, namespace))
                )
    return found


def broad_roles_bound(
    cluster_role_bindings: Sequence[Any], role_bindings: Sequence[Any]
) -> list[RoleKey]:
    """The roles bound to every user or every service account: read to judge their rules.

    The built-in admin roles (:data:`ADMIN_ROLES`) are judged by name and not listed.
    """
    keys: dict[RoleKey, None] = {}
    for _, _, _, _, _, key in _each(cluster_role_bindings, role_bindings):
        if key is not None and not (key[0] == "ClusterRole" and key[2] in ADMIN_ROLES):
            keys[key] = None
    return list(keys)


def broad_bindings(
    cluster_role_bindings: Sequence[Any],
    role_bindings: Sequence[Any],
    *,
    roles: Mapping[RoleKey, Mapping[str, Any] | None],
) -> list[EntryPoint]:
    """Bindings that give every user or every (other namespace's) service account some rights.

    ``roles`` holds what was read of each :func:`broad_roles_bound` role: the role, or None when
    it does not exist (the binding grants nothing); a role missing from it could not be read and
    the binding is reported Medium, saying so. Severity: High for pod-running, exec, secret
    reading, token minting, escalation or wildcard rights (and ``cluster-admin``/``admin``/
    ``edit``), Medium for other writes, Low for read-only. The Kubernetes defaults
    (:data:`BROAD_DEFAULTS`) are not reported unless their role was widened.
    """
    found: list[EntryPoint] = []
    for kind, binding, namespace, name, subjects, key in _each(
        cluster_role_bindings, role_bindings
    ):
        role_text = f"{key[0]} {key[2]}" if key else "an unknown role"
        where = f" -n {namespace}" if namespace else ""
        delete = f"kubectl delete {kind.lower()} {name}{where}"
        remedy = (
            f"Bind the role to the users, groups or service accounts that need it instead:"
            f" kubectl edit {kind.lower()} {name}{where} (or {delete})"
        )
        detail = f"{kind} {name} gives {role_text} to {few(subjects)}"
        if key is None:
            continue  # no role: grants nothing
        default = _default(kind, key, binding)
        if key[0] == "ClusterRole" and key[2] in ADMIN_ROLES:
            severity = Severity.HIGH
            detail += ": it runs pods, execs into them and reads secrets"
        elif key not in roles:
            if default is not None:
                continue  # a default, trusted by name when its role cannot be read
            severity = Severity.MEDIUM
            detail += ": the role could not be read, so what it allows is not known"
        else:
            role = roles[key]
            if role is None:
                continue  # bound to a role that does not exist: grants nothing
            rules = [as_map(rule) for rule in as_list(role.get("rules"))]
            if default is not None:
                if not as_map(role).get("aggregationRule") and all(map(default, rules)):
                    continue
                detail += (
                    "; the role was widened beyond its Kubernetes default: look for who in the"
                    " audit log"
                )
                remedy = (
                    f"Restore {role_text} to its default rules (kubectl edit clusterrole"
                    f" {key[2]}), or {delete}"
                )
            rights, writes, grants = role_rights(role)
            if not grants:
                continue
            if rights:
                severity = Severity.HIGH
                detail += f": it allows {few(rights)}"
            elif writes:
                severity = Severity.MEDIUM
                detail += ": it allows changing objects (no pod, exec, secret or escalation rights)"
            else:
                severity = Severity.LOW
                detail += ": read-only"
        found.append(
            EntryPoint(
                kind="BroadBinding",
                name=f"{namespace}/{name}" if namespace else name,
                detail=detail,
                severity=severity,
                remedy=remedy,
            )
        )
    return found
