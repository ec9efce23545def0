"""Services, Ingresses and Gateway API routes that carry outside traffic to the pod.

A Service answering outside the cluster network (LoadBalancer, NodePort, externalIPs) is an
entry point itself; a ClusterIP Service is one only through an Ingress or route naming it
(:func:`routed_services` hands those names to :func:`ingress_routes`).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from minerguard.api.investigation import EntryPoint, Severity
from minerguard_operator.decide.exposure.fields import (
    MAX_NAMES,
    as_list,
    as_map,
    as_str,
    as_strs,
    few,
    where_of,
)

OPEN_RANGES = frozenset({"0.0.0.0/0", "::/0"})
INTERNAL_LB_ANNOTATIONS = {
    "service.beta.kubernetes.io/aws-load-balancer-internal": ("true", "0.0.0.0/0"),
    "service.beta.kubernetes.io/aws-load-balancer-scheme": ("internal",),
    "service.beta.kubernetes.io/azure-load-balancer-internal": ("true",),
    "networking.gke.io/load-balancer-type": ("Internal",),
    "cloud.google.com/load-balancer-type": ("Internal",),
}
"""Cloud annotations that make a LoadBalancer private to the VPC: exposed, but not to everyone."""
ROUTE_KINDS = ("HTTPRoute", "GRPCRoute", "TLSRoute", "TCPRoute")
"""Gateway API routes that carry traffic to Services: HTTP and gRPC by host and path, TLS by the
SNI host name, TCP every connection to a listener's port."""
PORT_ROUTES = frozenset({"TCPRoute", "UDPRoute"})
"""Routes without host names: whatever reaches the listener's port is sent on."""


def _selects(service: Mapping[str, Any], namespace: str | None, labels: Mapping[str, Any]) -> bool:
    """A Service selects a pod of its own namespace whose labels hold every selector pair.

    A Service without a selector (or an empty one) selects no pod: its endpoints are kept by
    hand, and ExternalName Services have none at all.
    """
    spec = as_map(service.get("spec"))
    selector = as_map(spec.get("selector"))
    service_namespace, _ = where_of(service)
    if not selector or spec.get("type") == "ExternalName":
        return False
    if service_namespace is not None and service_namespace != namespace:
        return False
    return all(isinstance(v, str) and labels.get(str(k)) == v for k, v in selector.items())


def _matching(pod: Mapping[str, Any], services: Sequence[Mapping[str, Any]]) -> Iterator[Any]:
    namespace, _ = where_of(pod)
    labels = as_map(as_map(pod.get("metadata")).get("labels"))
    for service in services:
        if isinstance(service, Mapping) and _selects(service, namespace, labels):
            yield service


def routed_services(pod: Mapping[str, Any], services: Sequence[Mapping[str, Any]]) -> list[str]:
    """Names of the Services of any type that select the pod: what Ingresses and routes target."""
    return [where_of(service)[1] for service in _matching(pod, services)]


def _ports(spec: Mapping[str, Any], node: bool) -> list[str]:
    found: list[str] = []
    for port in map(as_map, as_list(spec.get("ports"))):
        number = port.get("nodePort") if node else port.get("port")
        if isinstance(number, int) and not isinstance(number, bool):
            found.append(f"{number}/{as_str(port.get('protocol')) or 'TCP'}")
    return found


def services_exposing(
    pod: Mapping[str, Any], services: Sequence[Mapping[str, Any]]
) -> list[EntryPoint]:
    """Services selecting the pod that answer outside the cluster network.

    A LoadBalancer open to any source is High, one limited by ``loadBalancerSourceRanges`` or
    made internal by its cloud's annotation Medium; a NodePort (every node's address) Medium;
    ``externalIPs`` on any type High (the Service answers on those addresses). A ClusterIP
    Service alone is no entry point: :func:`routed_services` hands it to :func:`ingress_routes`.
    """
    found: list[EntryPoint] = []
    for service in _matching(pod, services):
        namespace, name = where_of(service)
        spec = as_map(service.get("spec"))
        kind = as_str(spec.get("type")) or "ClusterIP"
        external = as_strs(spec.get("externalIPs"))
        remedy = (
            "If nothing outside the cluster should reach the pod, make the Service internal:"
            f" kubectl patch service {name} -n {namespace} -p"
            ' \'{"spec":{"type":"ClusterIP","externalIPs":null}}\'; otherwise put an'
            " authenticating proxy in front of it"
        )
        parts: list[str] = []
        severity: Severity | None = None
        if kind == "LoadBalancer":
            ingress = as_list(
                as_map(as_map(service.get("status")).get("loadBalancer")).get("ingress")
            )
            addresses = [
                a
                for i in ingress
                for a in (as_str(as_map(i).get("ip")), as_str(as_map(i).get("hostname")))
                if a
            ]
            ranges = as_strs(spec.get("loadBalancerSourceRanges"))
            annotations = as_map(as_map(service.get("metadata")).get("annotations"))
            internal = any(
                str(annotations.get(key)) in values
                for key, values in INTERNAL_LB_ANNOTATIONS.items()
                if key in annotations
            )
            open_to_all = not ranges or bool(OPEN_RANGES.intersection(ranges))
            severity = Severity.HIGH if open_to_all and not internal else Severity.MEDIUM
            parts.append(
                f"LoadBalancer at {few(addresses) if addresses else 'an address not yet assigned'}"
                f", ports {few(_ports(spec, node=False)) or 'none'}"
            )
            if internal:
                parts.append("internal to the cloud network (annotation)")
            parts.append(
                f"limited to sources {few(ranges)}"
                if ranges and not open_to_all
                else "open to any source address (no loadBalancerSourceRanges)"
            )
            remedy = (
                "Limit who can reach it: kubectl patch service"
                f" {name} -n {namespace} -p"
                ' \'{"spec":{"loadBalancerSourceRanges":["YOUR.NETWORK/24"]}}\' (or the cloud'
                " firewall); " + remedy
            )
        elif kind == "NodePort":
            severity = Severity.MEDIUM
            parts.append(
                f"NodePort: every node answers on {few(_ports(spec, node=True)) or 'a node port'}"
            )
        if external:
            severity = Severity.HIGH
            parts.append(f"externalIPs {few(external)} route to it")
        if severity is None:
            continue
        found.append(
            EntryPoint(
                kind="Service",
                name=f"{namespace}/{name}",
                detail=f"Service {name} selects the pod: " + "; ".join(parts),
                severity=severity,
                remedy=remedy,
            )
        )
    return found


# -- Ingresses and Gateway API routes -----------------------------------------------------


def _ingress(ingress: Mapping[str, Any], wanted: set[str]) -> tuple[list[str], set[str]]:
    """(host/path routed, services hit) of one Ingress to any of the wanted Services."""
    spec = as_map(ingress.get("spec"))
    routes: list[str] = []
    hit: set[str] = set()
    default = as_str(as_map(as_map(spec.get("defaultBackend")).get("service")).get("name"))
    if default in wanted:
        routes.append("* (default backend: every host no rule names)")
        hit.add(str(default))
    for rule in map(as_map, as_list(spec.get("rules"))):
        host = as_str(rule.get("host")) or "*"
        for path in map(as_map, as_list(as_map(rule.get("http")).get("paths"))):
            name = as_str(as_map(as_map(path.get("backend")).get("service")).get("name"))
            if name in wanted:
                routes.append(host + (as_str(path.get("path")) or "/"))
                hit.add(str(name))
    return routes, hit


def _gateway_text(gateway: Mapping[str, Any] | None, ref: str, section: str | None) -> str:
    if gateway is None:
        return f"Gateway {ref} (not found)"
    status = as_map(gateway.get("status"))
    addresses = [
        a for a in (as_str(as_map(x).get("value")) for x in as_list(status.get("addresses"))) if a
    ]
    listeners = [
        f"{as_str(listener.get('protocol')) or '?'}:{listener.get('port')}"
        + (f" {as_str(listener.get('hostname'))}" if as_str(listener.get("hostname")) else "")
        for listener in map(as_map, as_list(as_map(gateway.get("spec")).get("listeners")))
        if section is None or listener.get("name") == section
    ]
    text = f"Gateway {ref}"
    if listeners:
        text += f" (listeners {few(listeners)})"
    if addresses:
        text += f" at {few(addresses)}"
    return text


def _route(
    route: Mapping[str, Any],
    wanted: set[str],
    namespace: str | None,
    gateways: Mapping[tuple[str | None, str], Mapping[str, Any]],
) -> EntryPoint | None:
    route_namespace, name = where_of(route)
    spec = as_map(route.get("spec"))
    target = namespace if namespace is not None else route_namespace
    hit: set[str] = set()
    for rule in as_list(spec.get("rules")):
        for backend in map(as_map, as_list(as_map(rule).get("backendRefs"))):
            if (as_str(backend.get("kind")) or "Service") != "Service" or as_str(
                backend.get("group")
            ):
                continue
            backend_namespace = as_str(backend.get("namespace")) or route_namespace
            backend_name = as_str(backend.get("name"))
            if backend_namespace == target and backend_name in wanted:
                hit.add(str(backend_name))
    parents: list[str] = []
    found_gateway = False
    for parent in map(as_map, as_list(spec.get("parentRefs"))):
        if (as_str(parent.get("kind")) or "Gateway") != "Gateway":
            continue
        parent_namespace = as_str(parent.get("namespace")) or route_namespace
        parent_name = as_str(parent.get("name")) or "?"
        gateway = gateways.get((parent_namespace, parent_name))
        found_gateway = found_gateway or gateway is not None
        ref = f"{parent_namespace}/{parent_name}"
        parents.append(_gateway_text(gateway, ref, as_str(parent.get("sectionName"))))
    if not hit or not parents:  # a route attached to nothing routes nothing
        return None
    kind = as_str(route.get("kind")) or "HTTPRoute"
    if kind in PORT_ROUTES:
        sent = "every connection to its listeners"
    else:
        sent = few(as_strs(spec.get("hostnames")) or ["* (the listeners' hosts)"])
    detail = (
        f"{kind} {name} sends {sent} to Service {few(sorted(hit))} through"
        f" {'; '.join(parents[:MAX_NAMES])}"
    )
    if target != route_namespace:
        detail += f"; it crosses namespaces: it works only while a ReferenceGrant in {target}"
        detail += " allows it"
    return EntryPoint(
        kind=kind,
        name=f"{route_namespace}/{name}",
        detail=detail,
        severity=Severity.HIGH if found_gateway else Severity.MEDIUM,
        remedy=(
            f"Detach it or put authentication in front: kubectl delete {kind.lower()} {name}"
            f" -n {route_namespace}"
            + (
                f", or delete the ReferenceGrant in {target} that lets it in"
                if target != route_namespace
                else ""
            )
        ),
    )


def ingress_routes(
    services_matching: Sequence[str],
    ingresses: Sequence[Mapping[str, Any]],
    gateways: Sequence[Mapping[str, Any]],
    routes: Sequence[Mapping[str, Any]],
    *,
    namespace: str | None = None,
) -> list[EntryPoint]:
    """Ingresses and Gateway API routes that send outside traffic to a Service of the pod.

    ``routes`` are of any :data:`ROUTE_KINDS` kind, each carrying its ``kind`` (HTTPRoute when
    absent).
    ``services_matching`` are the names of the Services (in ``namespace``, the pod's) that select
    the pod (:func:`routed_services`). Ingresses can only name Services of their own namespace;
    a route's ``backendRefs`` may name another namespace (allowed there by a ReferenceGrant). Each
    route names its hosts and the Gateways it attaches to, with their listeners and addresses.
    Without ``namespace`` the objects are taken to be in the pod's namespace.
    """
    wanted = set(services_matching)
    found: list[EntryPoint] = []
    if not wanted:
        return found
    for ingress in map(as_map, ingresses):  # junk becomes {}: routes nothing
        ingress_namespace, name = where_of(ingress)
        if namespace is not None and ingress_namespace not in (None, namespace):
            continue
        paths, hit = _ingress(ingress, wanted)
        if not paths:
            continue
        lb = as_list(as_map(as_map(ingress.get("status")).get("loadBalancer")).get("ingress"))
        addresses = [
            a
            for i in lb
            for a in (as_str(as_map(i).get("ip")), as_str(as_map(i).get("hostname")))
            if a
        ]
        klass = as_str(as_map(ingress.get("spec")).get("ingressClassName"))
        detail = f"Ingress {name} routes {few(paths)} to Service {few(sorted(hit))}"
        if klass:
            detail += f" (class {klass})"
        if addresses:
            detail += f" at {few(addresses)}"
        found.append(
            EntryPoint(
                kind="Ingress",
                name=f"{ingress_namespace or namespace}/{name}",
                detail=detail,
                severity=Severity.HIGH,
                remedy=(
                    "Remove the rule that routes to it or require authentication at the ingress"
                    f" controller: kubectl edit ingress {name} -n {ingress_namespace or namespace}"
                ),
            )
        )
    by_ref = {where_of(g): g for g in gateways if isinstance(g, Mapping)}
    for route in routes:
        entry = _route(route, wanted, namespace, by_ref) if isinstance(route, Mapping) else None
        if entry is not None:
            found.append(entry)
    return found
