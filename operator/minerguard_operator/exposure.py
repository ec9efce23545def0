"""Reading what the entry-point decisions need from the API server, and asking its authorizer.

The decisions are in :mod:`minerguard_operator.decide.exposure`; this module lists the objects
they judge (Services, Ingresses, Gateway API routes and Gateways, RBAC bindings and the roles
they bind) and asks one
SubjectAccessReview per :data:`~minerguard_operator.decide.exposure.ACCESS_CHECKS` entry. It never
raises for an API failure: what could not be read (forbidden, not served, unreachable, cut at a
bound) becomes a sentence in ``unknowns``, so an investigation says "could not see" rather than
"nothing there". Every call is bounded (a timeout, a page limit) and counted through ``calls``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from kubernetes import client

from minerguard.api.investigation import EntryPoint
from minerguard.kube import discovery, errors, resources
from minerguard_operator.decide import exposure

log = logging.getLogger(__name__)

Calls = Callable[[], None] | None
TIMEOUT_SECONDS = 5.0
"""One API call's limit: an investigation must finish within seconds."""
MAX_OBJECTS = 500
"""Objects listed per kind; more are said in ``unknowns``, not read."""
GATEWAY_API = "gateway.networking.k8s.io/v1"
GATEWAY_API_ALPHA = "gateway.networking.k8s.io/v1alpha2"
ROUTES = (
    (GATEWAY_API, "httproutes", "HTTPRoute"),
    (GATEWAY_API, "grpcroutes", "GRPCRoute"),
    (GATEWAY_API_ALPHA, "tlsroutes", "TLSRoute"),
    (GATEWAY_API_ALPHA, "tcproutes", "TCPRoute"),
)
"""(version, plural, kind) of each Gateway API route read: the version each is served at in the
Gateway API's standard and experimental channels."""
MAX_ROLE_READS = 50
"""Roles read per reading to judge broad bindings; the bindings to the rest are said unread."""
RBAC = "rbac.authorization.k8s.io/v1"
REVIEWS = resources.path("authorization.k8s.io/v1", "subjectaccessreviews")


def _count(calls: Calls) -> None:
    if calls is not None:
        calls()


def _why(err: errors.ApiError) -> str:
    if isinstance(err, errors.Forbidden):
        return f"forbidden to the operator ({err})"
    if isinstance(err, errors.NotFound):
        return "not served by this cluster"
    if isinstance(err, errors.Unavailable):
        return f"API server unavailable ({err})"
    return str(err)


def _list(
    api: client.ApiClient,
    api_version: str,
    plural: str,
    namespace: str | None,
    *,
    unknowns: list[str],
    calls: Calls,
) -> list[dict[str, Any]] | None:
    """Up to :data:`MAX_OBJECTS` objects; None (and an unknown said) when they cannot be read."""
    where = f" in {namespace}" if namespace else ""
    _count(calls)
    try:
        raw = resources.request(
            api,
            "GET",
            resources.path(api_version, plural, namespace),
            query={"limit": MAX_OBJECTS},
            timeout=TIMEOUT_SECONDS,
        )
        listed = resources.read_json(raw)
    except errors.ApiError as err:
        unknowns.append(f"{plural}{where} could not be listed: {_why(err)}")
        return None
    items = [item for item in listed.get("items") or () if isinstance(item, dict)]
    if (listed.get("metadata") or {}).get("continue") or len(items) > MAX_OBJECTS:
        unknowns.append(f"more than {MAX_OBJECTS} {plural}{where}: only the first were checked")
    return items[:MAX_OBJECTS]


def _served(
    api: client.ApiClient, version: str, unknowns: list[str], calls: Calls
) -> frozenset[str]:
    _count(calls)
    try:
        return discovery.served(api, version)
    except errors.ApiError as err:
        unknowns.append(f"whether {version} is served could not be read: {_why(err)}")
        return frozenset()


def _routes(
    api: client.ApiClient,
    namespace: str,
    routed: Sequence[str],
    unknowns: list[str],
    calls: Calls,
) -> list[EntryPoint]:
    """Ingresses of the namespace and Gateway API routes (any namespace) to the routed Services.

    Each route kind (:data:`ROUTES`) is listed only where its version is served, and each
    listing is bounded like any other; a route carries its kind (a list may leave it out).
    """
    ingresses = _list(
        api, "networking.k8s.io/v1", "ingresses", namespace, unknowns=unknowns, calls=calls
    )
    routes: list[dict[str, Any]] = []
    gateways: list[dict[str, Any]] = []
    served: dict[str, frozenset[str]] = {}
    for version, plural, kind in ROUTES:
        if version not in served:
            served[version] = _served(api, version, unknowns, calls)
        if plural in served[version]:  # routes elsewhere may name this namespace (ReferenceGrant)
            listed = _list(api, version, plural, None, unknowns=unknowns, calls=calls) or []
            routes += [{**route, "kind": route.get("kind") or kind} for route in listed]
    if routes and "gateways" in served.get(GATEWAY_API, frozenset()):
        gateways = _list(api, GATEWAY_API, "gateways", None, unknowns=unknowns, calls=calls) or []
    return exposure.ingress_routes(routed, ingresses or [], gateways, routes, namespace=namespace)


def _mapping(value: object) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _token_mounted(spec: Mapping[str, Any]) -> bool | None:
    """Whether the pod holds its service account's token; None when its account decides."""
    for volume in spec.get("volumes") or ():
        projected = volume.get("projected") if isinstance(volume, Mapping) else None
        sources = projected.get("sources") if isinstance(projected, Mapping) else None
        if any(isinstance(s, Mapping) and s.get("serviceAccountToken") for s in sources or ()):
            return True
    automount = spec.get("automountServiceAccountToken")
    return automount if isinstance(automount, bool) else None


def access_answers(
    api: client.ApiClient,
    service_account: str,
    namespace: str,
    unknowns: list[str],
    calls: Calls = None,
) -> dict[tuple[str, str, str], bool | None]:
    """The authorizer's answer to each access check; None where it gave none.

    Asking stops at the first failed call (forbidden, unreachable): the rest would fail alike,
    and an investigation must not spend its seconds on them. Whatever stayed unanswered is said.
    """
    answers: dict[tuple[str, str, str], bool | None] = {}
    failure = "the authorizer could not tell"
    for check in exposure.ACCESS_CHECKS:
        _count(calls)
        body = exposure.access_review(check, service_account, namespace)
        try:
            raw = resources.request(api, "POST", REVIEWS, body=body, timeout=TIMEOUT_SECONDS)
            answers[check.key] = exposure.review_answer(resources.read_json(raw))
        except errors.ApiError as err:
            failure = f"SubjectAccessReview failed: {_why(err)}"
            break
    missing = exposure.unanswered(answers)
    if missing:
        unknowns.append(
            f"whether service account {namespace}/{service_account} may {', '.join(missing)}:"
            f" {failure}"
        )
    return answers


def entry_points(
    api: client.ApiClient, pod: Mapping[str, Any], *, calls: Calls = None
) -> tuple[list[EntryPoint], list[str]]:
    """The doors open to this pod: its exposure, its account's permissions, its host access.

    Returns (found, unknowns). Never raises for an API failure; ``calls`` is called once per
    API call made (at most 7 lists, two discovery GETs and 6 access reviews).
    """
    unknowns: list[str] = []
    metadata = _mapping(pod.get("metadata"))
    spec = _mapping(pod.get("spec"))
    namespace = str(metadata.get("namespace") or "default")
    found = exposure.pod_hazards(pod)
    services = _list(api, "v1", "services", namespace, unknowns=unknowns, calls=calls)
    if services is not None:
        found += exposure.services_exposing(pod, services)
        routed = exposure.routed_services(pod, services)
        if routed:  # nothing to route to: no Ingress or route can reach the pod
            found += _routes(api, namespace, routed, unknowns, calls)
    account = str(spec.get("serviceAccountName") or spec.get("serviceAccount") or "default")
    answers = access_answers(api, account, namespace, unknowns, calls)
    found += exposure.account_permissions(
        account, namespace, answers, token_mounted=_token_mounted(spec)
    )
    return found, unknowns


def _roles(
    api: client.ApiClient,
    bound: Sequence[tuple[str, str | None, str]],
    unknowns: list[str],
    calls: Calls,
) -> tuple[list[dict[str, Any]] | None, list[dict[str, Any]] | None]:
    """The default roles bound to anonymous users, read to check they still hold only defaults."""
    cluster_roles: list[dict[str, Any]] | None = []
    roles: list[dict[str, Any]] | None = []
    for kind, namespace, name in bound:
        plural = "clusterroles" if kind == "ClusterRole" else "roles"
        _count(calls)
        try:
            raw = resources.request(
                api, "GET", resources.path(RBAC, plural, namespace, name), timeout=TIMEOUT_SECONDS
            )
            role = resources.read_json(raw)
        except errors.NotFound:
            continue  # a binding to a missing role grants nothing
        except errors.ApiError as err:
            unknowns.append(f"{kind} {name} could not be read to verify it: {_why(err)}")
            if kind == "ClusterRole":
                cluster_roles = None
            else:
                roles = None
            continue
        if kind == "ClusterRole" and cluster_roles is not None:
            cluster_roles.append(role)
        elif kind == "Role" and roles is not None:
            roles.append(role)
    return cluster_roles, roles


def _broad_roles(
    api: client.ApiClient,
    keys: Sequence[exposure.RoleKey],
    unknowns: list[str],
    calls: Calls,
) -> dict[exposure.RoleKey, dict[str, Any] | None]:
    """The roles bound to every user or service account, read; None for a missing one.

    One not read (failed, or beyond :data:`MAX_ROLE_READS`) is left out, and said.
    """
    read: dict[exposure.RoleKey, dict[str, Any] | None] = {}
    if len(keys) > MAX_ROLE_READS:
        unknowns.append(
            f"{len(keys)} roles are bound to every user or service account: only the first"
            f" {MAX_ROLE_READS} were read"
        )
    for key in keys[:MAX_ROLE_READS]:
        kind, namespace, name = key
        plural = "clusterroles" if kind == "ClusterRole" else "roles"
        _count(calls)
        try:
            raw = resources.request(
                api, "GET", resources.path(RBAC, plural, namespace, name), timeout=TIMEOUT_SECONDS
            )
            read[key] = resources.read_json(raw)
        except errors.NotFound:
            read[key] = None
        except errors.ApiError as err:
            where = f" in {namespace}" if namespace else ""
            unknowns.append(f"{kind} {name}{where} could not be read to judge it: {_why(err)}")
    return read


def anonymous_access(
    api: client.ApiClient, *, calls: Calls = None
) -> tuple[list[EntryPoint], list[str]]:
    """Bindings giving anything to anonymous users or rights to everyone, cluster-wide.

    Returns (found, unknowns): anonymous bindings, then those giving rights to every user or
    every service account. Nothing found with unknowns said is not a clean bill: the caller must
    not publish it as "none".

    Two lists, a GET per default role bound to anonymous users (to see it was not widened) and a
    GET per role bound to every user or service account (at most :data:`MAX_ROLE_READS`).
    """
    unknowns: list[str] = []
    cluster_bindings = _list(api, RBAC, "clusterrolebindings", None, unknowns=unknowns, calls=calls)
    bindings = _list(api, RBAC, "rolebindings", None, unknowns=unknowns, calls=calls)
    if cluster_bindings is None and bindings is None:
        return [], unknowns
    bound = exposure.default_roles_bound(cluster_bindings or [], bindings or [])
    cluster_roles, roles = _roles(api, bound, unknowns, calls)
    found = exposure.anonymous_bindings(
        cluster_bindings or [], bindings or [], cluster_roles=cluster_roles, roles=roles
    )
    keys = exposure.broad_roles_bound(cluster_bindings or [], bindings or [])
    found += exposure.broad_bindings(
        cluster_bindings or [], bindings or [], roles=_broad_roles(api, keys, unknowns, calls)
    )
    return found, unknowns
