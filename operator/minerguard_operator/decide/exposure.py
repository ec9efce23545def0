"""Which doors were open to an affected pod: exposure, permissions, host access, anonymous RBAC.

Pure: API objects as plain JSON dicts in, :class:`EntryPoint` lists out; the I/O side
(:mod:`minerguard_operator.exposure`) lists the objects and asks the API server's authorizer.
Nothing here reimplements RBAC: what a service account may do is the answer of a
SubjectAccessReview per verb (:data:`ACCESS_CHECKS`), which also covers webhook and node
authorizers and aggregated roles that a rule walk would miss. Anonymous bindings are read off the
bindings themselves: binding anything to ``system:anonymous`` or ``system:unauthenticated`` is the
finding, except the few defaults Kubernetes and kubeadm create, whose roles are checked against
their default rules when given (a widened default role is a known way to hide a backdoor).

Every reader tolerates junk: a field of the wrong type counts as absent, so a malformed object
never stops an investigation. Each finding names the object and what to do about it.
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from minerguard.api.investigation import Basis, EntryPoint, Severity

MAX_NAMES = 10
"""No detail lists more than this many hosts, ports, addresses or subjects."""

BASELINE = "pod-security.kubernetes.io/enforce=baseline"
"""The Pod Security label whose level refuses host namespaces, privileged, hostPath, hostPort."""


def _map(value: object) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _list(value: object) -> list[Any]:
    return list(value) if isinstance(value, list | tuple) else []


def _str(value: object) -> str | None:
    return value if isinstance(value, str) and value else None


def _strs(value: object) -> list[str]:
    return [item for item in _list(value) if isinstance(item, str) and item]


def _where(obj: Mapping[str, Any]) -> tuple[str | None, str]:
    meta = _map(obj.get("metadata"))
    return _str(meta.get("namespace")), _str(meta.get("name")) or "?"


def _ref(obj: Mapping[str, Any]) -> str:
    namespace, name = _where(obj)
    return f"{namespace}/{name}" if namespace else name


def _few(items: Sequence[str]) -> str:
    shown = ", ".join(items[:MAX_NAMES])
    return shown + (f" and {len(items) - MAX_NAMES} more" if len(items) > MAX_NAMES else "")


# -- Services ------------------------------------------------------------------------------

OPEN_RANGES = frozenset({"0.0.0.0/0", "::/0"})
INTERNAL_LB_ANNOTATIONS = {
    "service.beta.kubernetes.io/aws-load-balancer-internal": ("true", "0.0.0.0/0"),
    "service.beta.kubernetes.io/aws-load-balancer-scheme": ("internal",),
    "service.beta.kubernetes.io/azure-load-balancer-internal": ("true",),
    "networking.gke.io/load-balancer-type": ("Internal",),
    "cloud.google.com/load-balancer-type": ("Internal",),
}
"""Cloud annotations that make a LoadBalancer private to the VPC: exposed, but not to everyone."""


def _selects(service: Mapping[str, Any], namespace: str | None, labels: Mapping[str, Any]) -> bool:
    """A Service selects a pod of its own namespace whose labels hold every selector pair.

    A Service without a selector (or an empty one) selects no pod: its endpoints are kept by
    hand, and ExternalName Services have none at all.
    """
    spec = _map(service.get("spec"))
    selector = _map(spec.get("selector"))
    service_namespace, _ = _where(service)
    if not selector or spec.get("type") == "ExternalName":
        return False
    if service_namespace is not None and service_namespace != namespace:
        return False
    return all(isinstance(v, str) and labels.get(str(k)) == v for k, v in selector.items())


def _matching(pod: Mapping[str, Any], services: Sequence[Mapping[str, Any]]) -> Iterator[Any]:
    namespace, _ = _where(pod)
    labels = _map(_map(pod.get("metadata")).get("labels"))
    for service in services:
        if isinstance(service, Mapping) and _selects(service, namespace, labels):
            yield service


def routed_services(pod: Mapping[str, Any], services: Sequence[Mapping[str, Any]]) -> list[str]:
    """Names of the Services of any type that select the pod: what Ingresses and routes target."""
    return [_where(service)[1] for service in _matching(pod, services)]


def _ports(spec: Mapping[str, Any], node: bool) -> list[str]:
    found: list[str] = []
    for port in map(_map, _list(spec.get("ports"))):
        number = port.get("nodePort") if node else port.get("port")
        if isinstance(number, int) and not isinstance(number, bool):
            found.append(f"{number}/{_str(port.get('protocol')) or 'TCP'}")
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
        namespace, name = _where(service)
        spec = _map(service.get("spec"))
        kind = _str(spec.get("type")) or "ClusterIP"
        external = _strs(spec.get("externalIPs"))
        remedy = (
            "If nothing outside the cluster should reach the pod, make the Service internal:"
            f" kubectl patch service {name} -n {namespace} -p"
            ' \'{"spec":{"type":"ClusterIP","externalIPs":null}}\'; otherwise put an'
            " authenticating proxy in front of it"
        )
        parts: list[str] = []
        severity: Severity | None = None
        if kind == "LoadBalancer":
            ingress = _list(_map(_map(service.get("status")).get("loadBalancer")).get("ingress"))
            addresses = [
                a
                for i in ingress
                for a in (_str(_map(i).get("ip")), _str(_map(i).get("hostname")))
                if a
            ]
            ranges = _strs(spec.get("loadBalancerSourceRanges"))
            annotations = _map(_map(service.get("metadata")).get("annotations"))
            internal = any(
                str(annotations.get(key)) in values
                for key, values in INTERNAL_LB_ANNOTATIONS.items()
                if key in annotations
            )
            open_to_all = not ranges or bool(OPEN_RANGES.intersection(ranges))
            severity = Severity.HIGH if open_to_all and not internal else Severity.MEDIUM
            parts.append(
                f"LoadBalancer at {_few(addresses) if addresses else 'an address not yet assigned'}"
                f", ports {_few(_ports(spec, node=False)) or 'none'}"
            )
            if internal:
                parts.append("internal to the cloud network (annotation)")
            parts.append(
                f"limited to sources {_few(ranges)}"
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
                f"NodePort: every node answers on {_few(_ports(spec, node=True)) or 'a node port'}"
            )
        if external:
            severity = Severity.HIGH
            parts.append(f"externalIPs {_few(external)} route to it")
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
    spec = _map(ingress.get("spec"))
    routes: list[str] = []
    hit: set[str] = set()
    default = _str(_map(_map(spec.get("defaultBackend")).get("service")).get("name"))
    if default in wanted:
        routes.append("* (default backend: every host no rule names)")
        hit.add(str(default))
    for rule in map(_map, _list(spec.get("rules"))):
        host = _str(rule.get("host")) or "*"
        for path in map(_map, _list(_map(rule.get("http")).get("paths"))):
            name = _str(_map(_map(path.get("backend")).get("service")).get("name"))
            if name in wanted:
                routes.append(host + (_str(path.get("path")) or "/"))
                hit.add(str(name))
    return routes, hit


def _gateway_text(gateway: Mapping[str, Any] | None, ref: str, section: str | None) -> str:
    if gateway is None:
        return f"Gateway {ref} (not found)"
    status = _map(gateway.get("status"))
    addresses = [
        a for a in (_str(_map(x).get("value")) for x in _list(status.get("addresses"))) if a
    ]
    listeners = [
        f"{_str(listener.get('protocol')) or '?'}:{listener.get('port')}"
        + (f" {_str(listener.get('hostname'))}" if _str(listener.get("hostname")) else "")
        for listener in map(_map, _list(_map(gateway.get("spec")).get("listeners")))
        if section is None or listener.get("name") == section
    ]
    text = f"Gateway {ref}"
    if listeners:
        text += f" (listeners {_few(listeners)})"
    if addresses:
        text += f" at {_few(addresses)}"
    return text


def _route(
    route: Mapping[str, Any],
    wanted: set[str],
    namespace: str | None,
    gateways: Mapping[tuple[str | None, str], Mapping[str, Any]],
) -> EntryPoint | None:
    route_namespace, name = _where(route)
    spec = _map(route.get("spec"))
    target = namespace if namespace is not None else route_namespace
    hit: set[str] = set()
    for rule in _list(spec.get("rules")):
        for backend in map(_map, _list(_map(rule).get("backendRefs"))):
            if (_str(backend.get("kind")) or "Service") != "Service" or _str(backend.get("group")):
                continue
            backend_namespace = _str(backend.get("namespace")) or route_namespace
            backend_name = _str(backend.get("name"))
            if backend_namespace == target and backend_name in wanted:
                hit.add(str(backend_name))
    parents: list[str] = []
    found_gateway = False
    for parent in map(_map, _list(spec.get("parentRefs"))):
        if (_str(parent.get("kind")) or "Gateway") != "Gateway":
            continue
        parent_namespace = _str(parent.get("namespace")) or route_namespace
        parent_name = _str(parent.get("name")) or "?"
        gateway = gateways.get((parent_namespace, parent_name))
        found_gateway = found_gateway or gateway is not None
        ref = f"{parent_namespace}/{parent_name}"
        parents.append(_gateway_text(gateway, ref, _str(parent.get("sectionName"))))
    if not hit or not parents:  # a route attached to nothing routes nothing
        return None
    hosts = _strs(spec.get("hostnames")) or ["* (the listeners' hosts)"]
    kind = _str(route.get("kind")) or "HTTPRoute"
    detail = (
        f"{kind} {name} sends {_few(hosts)} to Service {_few(sorted(hit))} through"
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
    httproutes: Sequence[Mapping[str, Any]],
    *,
    namespace: str | None = None,
) -> list[EntryPoint]:
    """Ingresses and Gateway API routes that send outside traffic to a Service of the pod.

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
    for ingress in map(_map, ingresses):  # junk becomes {}: routes nothing
        ingress_namespace, name = _where(ingress)
        if namespace is not None and ingress_namespace not in (None, namespace):
            continue
        routes, hit = _ingress(ingress, wanted)
        if not routes:
            continue
        lb = _list(_map(_map(ingress.get("status")).get("loadBalancer")).get("ingress"))
        addresses = [
            a for i in lb for a in (_str(_map(i).get("ip")), _str(_map(i).get("hostname"))) if a
        ]
        klass = _str(_map(ingress.get("spec")).get("ingressClassName"))
        detail = f"Ingress {name} routes {_few(routes)} to Service {_few(sorted(hit))}"
        if klass:
            detail += f" (class {klass})"
        if addresses:
            detail += f" at {_few(addresses)}"
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
    by_ref = {_where(g): g for g in gateways if isinstance(g, Mapping)}
    for route in httproutes:
        entry = _route(route, wanted, namespace, by_ref) if isinstance(route, Mapping) else None
        if entry is not None:
            found.append(entry)
    return found


# -- the pod itself ------------------------------------------------------------------------

RUNTIME_SOCKETS = tuple(
    prefix + socket
    for socket in (
        "/docker.sock",
        "/containerd/containerd.sock",
        "/crio/crio.sock",
        "/cri-dockerd.sock",
        "/k3s/containerd/containerd.sock",
        "/podman/podman.sock",
        "/dockershim.sock",
    )
    for prefix in ("/run", "/var/run")
)
"""Container runtime sockets, under both spellings (/var/run is usually a link to /run, but a
host mount of /var/run or /var does not follow a link the way the node does)."""

_CONTAINER_FIELDS = (
    ("initContainers", "init container"),
    ("containers", "container"),
    ("ephemeralContainers", "ephemeral container"),
)
DANGEROUS_CAPABILITIES = {
    "ALL": Severity.HIGH,
    "SYS_ADMIN": Severity.HIGH,
    "SYS_MODULE": Severity.HIGH,
    "SYS_PTRACE": Severity.MEDIUM,
    "SYS_RAWIO": Severity.MEDIUM,
    "DAC_READ_SEARCH": Severity.MEDIUM,
    "BPF": Severity.MEDIUM,
}
"""Added capabilities that reach past the container: mount, load modules, read host files."""


def _normal(path: str) -> str:
    return posixpath.normpath(re.sub("/+", "/", path))


def _socket_under(path: str) -> str | None:
    """The runtime socket a host path is, or holds; None when it reaches none."""
    prefix = path.rstrip("/") + "/"
    for socket in RUNTIME_SOCKETS:
        if socket == path or socket.startswith(prefix):
            return socket
    return None


def _containers(spec: Mapping[str, Any]) -> Iterator[tuple[str, str, Mapping[str, Any]]]:
    for field, what in _CONTAINER_FIELDS:
        for container in _list(spec.get(field)):
            if isinstance(container, Mapping):
                yield what, _str(container.get("name")) or "?", container


def _socket_mounts(pod: Mapping[str, Any]) -> list[EntryPoint]:
    spec = _map(pod.get("spec"))
    host_paths = {
        _str(v.get("name")): _str(_map(v.get("hostPath")).get("path"))
        for v in map(_map, _list(spec.get("volumes")))
    }
    users: dict[tuple[str, str, str], list[str]] = {}
    for what, name, container in _containers(spec):
        for mount in map(_map, _list(container.get("volumeMounts"))):
            volume = _str(mount.get("name"))
            path = host_paths.get(volume) if volume else None
            if not path or not path.startswith("/"):
                continue
            sub = _str(mount.get("subPath"))  # subPathExpr is expanded on the node: judged whole
            landed = _normal(posixpath.join(path, sub.lstrip("/")) if sub else path)
            socket = _socket_under(landed)
            if socket is not None:
                users.setdefault((str(volume), landed, socket), []).append(f"{what} {name}")
    found = []
    for (volume, landed, socket), containers in users.items():
        reaches = "is" if landed == socket else "holds"
        found.append(
            EntryPoint(
                kind="RuntimeSocket",
                name=f"{_ref(pod)}:{volume}",
                detail=(
                    f"hostPath volume {volume} ({landed}) {reaches} the container runtime socket"
                    f" {socket}, mounted by {_few(containers)}: whoever runs there can start any"
                    " container on the node, privileged"
                ),
                severity=Severity.HIGH,
                remedy=(
                    f"Remove the hostPath volume {volume} from the workload. An agent that truly"
                    " needs the socket belongs in a namespace of its own; label application"
                    f" namespaces {BASELINE} (it refuses hostPath volumes)"
                ),
            )
        )
    return found


def _capabilities(container: Mapping[str, Any]) -> list[str]:
    added = _strs(_map(_map(container.get("securityContext")).get("capabilities")).get("add"))
    names = [cap.upper().removeprefix("CAP_") for cap in added]
    return [cap for cap in dict.fromkeys(names) if cap in DANGEROUS_CAPABILITIES]


def pod_hazards(pod: Mapping[str, Any]) -> list[EntryPoint]:
    """What in the pod's own spec reaches the node: runtime sockets, privilege, host namespaces.

    Every container counts, init and ephemeral ones too (``kubectl debug`` adds the latter to a
    running pod). A host mount is judged by where it lands (``subPath`` included): ``/``,
    ``/run`` or ``/run/containerd`` hold the socket as surely as the socket itself.
    """
    spec = _map(pod.get("spec"))
    ref = _ref(pod)
    namespace = _where(pod)[0] or "NAMESPACE"
    label = f"kubectl label namespace {namespace} {BASELINE}"
    found = _socket_mounts(pod)
    for what, name, container in _containers(spec):
        context = _map(container.get("securityContext"))
        if context.get("privileged") is True:
            found.append(
                EntryPoint(
                    kind="Privileged",
                    name=f"{ref}:{name}",
                    detail=(
                        f"{what} {name} runs privileged: every device and capability of the node;"
                        " the host's filesystem is one mount away"
                    ),
                    severity=Severity.HIGH,
                    remedy=(
                        f"Drop securityContext.privileged from {what} {name}"
                        + (
                            "; restrict who may update pods/ephemeralcontainers (kubectl debug)"
                            if what.startswith("ephemeral")
                            else ""
                        )
                        + f"; {label}"
                    ),
                )
            )
            continue  # privileged already holds every capability
        caps = _capabilities(container)
        if caps:
            escalation = context.get("allowPrivilegeEscalation")
            state = str(escalation).lower() if isinstance(escalation, bool) else "not set (true)"
            worst = min((DANGEROUS_CAPABILITIES[c] for c in caps), key=list(Severity).index)
            found.append(
                EntryPoint(
                    kind="Capabilities",
                    name=f"{ref}:{name}",
                    detail=(
                        f"{what} {name} adds {', '.join(caps)} (allowPrivilegeEscalation {state}):"
                        " enough to mount host filesystems or reach into other processes"
                    ),
                    severity=worst,
                    remedy=(
                        f"Remove {', '.join(caps)} from securityContext.capabilities.add of {name}"
                        f" and set allowPrivilegeEscalation: false; {label}"
                    ),
                )
            )
    for field, kind, severity, what in (
        ("hostPID", "HostPID", Severity.HIGH, "sees and signals every process of the node"),
        (
            "hostNetwork",
            "HostNetwork",
            Severity.MEDIUM,
            "shares the node's network: its ports, its addresses, no NetworkPolicy",
        ),
        ("hostIPC", "HostIPC", Severity.MEDIUM, "shares the node's IPC namespace (shared memory)"),
    ):
        if spec.get(field) is True:
            found.append(
                EntryPoint(
                    kind=kind,
                    name=ref,
                    detail=f"the pod sets {field}: it {what}",
                    severity=severity,
                    remedy=f"Set spec.{field}: false in the workload; {label}",
                )
            )
    host_ports = [
        f"{name}:{port.get('hostPort')}/{_str(port.get('protocol')) or 'TCP'}"
        for _, name, container in _containers(spec)
        for port in map(_map, _list(container.get("ports")))
        if isinstance(port.get("hostPort"), int) and port.get("hostPort")
    ]
    if host_ports and spec.get("hostNetwork") is not True:
        found.append(
            EntryPoint(
                kind="HostPort",
                name=ref,
                detail=f"the node forwards its own port(s) {_few(host_ports)} to the pod",
                severity=Severity.MEDIUM,
                remedy=f"Remove hostPort from the container ports (use a Service); {label}",
            )
        )
    return found


# -- the service account -------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class AccessCheck:
    """One question for the API server's authorizer about the pod's service account."""

    verb: str
    group: str
    resource: str
    subresource: str = ""
    cluster_wide: bool = False
    why: str = ""

    @property
    def key(self) -> tuple[str, str, str]:
        """How answers are keyed: (verb, resource, subresource)."""
        return (self.verb, self.resource, self.subresource)

    def describe(self) -> str:
        """``create pods/exec``; ``cluster-wide`` added where asked of the whole cluster."""
        what = self.resource + (f"/{self.subresource}" if self.subresource else "")
        return f"{self.verb} {what}" + (" cluster-wide" if self.cluster_wide else "")


ACCESS_CHECKS: tuple[AccessCheck, ...] = (
    AccessCheck("create", "", "pods", why="start pods with any image (a miner, a privileged pod)"),
    AccessCheck("create", "", "pods", "exec", why="run commands in the namespace's pods"),
    AccessCheck("get", "", "secrets", why="read secrets: tokens, registry and cloud credentials"),
    AccessCheck("list", "", "secrets", why="read every secret of the namespace"),
    AccessCheck(
        "create",
        "rbac.authorization.k8s.io",
        "rolebindings",
        why="grant roles in the namespace (escalation)",
    ),
    AccessCheck(
        "create",
        "rbac.authorization.k8s.io",
        "clusterrolebindings",
        cluster_wide=True,
        why="grant cluster roles to anyone (escalation to cluster-admin)",
    ),
)
"""What the pod's service account is asked, one SubjectAccessReview each."""

SERVICE_ACCOUNT_GROUPS = ("system:serviceaccounts", "system:authenticated")


def service_account_user(service_account: str, namespace: str) -> str:
    """The user name the API server gives a service account's token."""
    return f"system:serviceaccount:{namespace}:{service_account}"


def access_review(check: AccessCheck, service_account: str, namespace: str) -> dict[str, Any]:
    """The SubjectAccessReview (authorization.k8s.io/v1) asking ``check`` for the account."""
    attributes: dict[str, Any] = {
        "verb": check.verb,
        "group": check.group,
        "resource": check.resource,
    }
    if check.subresource:
        attributes["subresource"] = check.subresource
    if not check.cluster_wide:
        attributes["namespace"] = namespace
    return {
        "apiVersion": "authorization.k8s.io/v1",
        "kind": "SubjectAccessReview",
        "spec": {
            "user": service_account_user(service_account, namespace),
            "groups": [
                SERVICE_ACCOUNT_GROUPS[0],
                f"system:serviceaccounts:{namespace}",
                SERVICE_ACCOUNT_GROUPS[1],
            ],
            "resourceAttributes": attributes,
        },
    }


def review_answer(review: Mapping[str, Any]) -> bool | None:
    """True allowed, False denied, None when the authorizer could not tell.

    A denial that carries an ``evaluationError`` may be an authorizer that failed rather than
    one that said no: it is not taken as "safe".
    """
    status = _map(review.get("status"))
    allowed = status.get("allowed")
    if allowed is True:
        return True
    if allowed is False and not status.get("evaluationError"):
        return False
    return None


def unanswered(answers: Mapping[tuple[str, str, str], bool | None]) -> list[str]:
    """The checks without a yes or no, as the caller's unknowns say them."""
    return [c.describe() for c in ACCESS_CHECKS if not isinstance(answers.get(c.key), bool)]


def account_permissions(
    service_account: str,
    namespace: str,
    answers: Mapping[tuple[str, str, str], bool | None],
    *,
    token_mounted: bool | None = None,
) -> list[EntryPoint]:
    """An entry for each check the authorizer allowed; denied and unanswered ones give none.

    An unanswered check (None) is no finding and no all-clear: :func:`unanswered` names it for
    the investigation's unknowns. A token the pod does not mount lowers the severity (the
    account is no door from inside the pod then), it does not hide the grant.
    """
    user = service_account_user(service_account, namespace)
    found: list[EntryPoint] = []
    for check in ACCESS_CHECKS:
        if answers.get(check.key) is not True:
            continue
        where = "in the whole cluster" if check.cluster_wide else f"in namespace {namespace}"
        detail = f"service account {service_account} may {check.describe()} {where}: {check.why}"
        if token_mounted is False:
            detail += " (the pod does not mount its token)"
        found.append(
            EntryPoint(
                kind="ServiceAccount",
                name=f"{namespace}/{service_account}",
                detail=detail,
                severity=Severity.MEDIUM if token_mounted is False else Severity.HIGH,
                remedy=(
                    f"Find the grant: kubectl auth can-i --list --as={user} -n {namespace}; remove"
                    f" the RoleBinding or ClusterRoleBinding giving it {check.describe()}, set"
                    " automountServiceAccountToken: false where the pod needs no API access, and"
                    " treat its tokens as leaked (recreate the ServiceAccount)"
                ),
                basis=Basis.ACCESS_REVIEW,
            )
        )
    return found


# -- anonymous access ----------------------------------------------------------------------

ANONYMOUS_SUBJECTS = frozenset(
    {
        ("Group", "system:unauthenticated"),
        ("Group", "system:anonymous"),
        ("User", "system:anonymous"),
    }
)
PUBLIC_INFO_URLS = frozenset({"/healthz", "/livez", "/readyz", "/version", "/version/"})
DISCOVERY_URLS = PUBLIC_INFO_URLS | {"/api", "/api/*", "/apis", "/apis/*", "/openapi", "/openapi/*"}


def _gets_urls(urls: frozenset[str]) -> Callable[[Mapping[str, Any]], bool]:
    def allows(rule: Mapping[str, Any]) -> bool:
        return (
            not _list(rule.get("resources"))
            and set(_strs(rule.get("verbs"))) <= {"get"}
            and set(_strs(rule.get("nonResourceURLs"))) <= urls
        )

    return allows


def _creates_self_reviews(rule: Mapping[str, Any]) -> bool:
    return (
        set(_strs(rule.get("apiGroups"))) <= {"authorization.k8s.io", "authentication.k8s.io"}
        and set(_strs(rule.get("verbs"))) <= {"create"}
        and all(r.startswith("selfsubject") for r in _strs(rule.get("resources")))
        and not _list(rule.get("nonResourceURLs"))
    )


def _reads_cluster_info(rule: Mapping[str, Any]) -> bool:
    return (
        set(_strs(rule.get("apiGroups"))) <= {""}
        and set(_strs(rule.get("resources"))) <= {"configmaps"}
        and set(_strs(rule.get("verbs"))) <= {"get"}
        and _strs(rule.get("resourceNames")) == ["cluster-info"]
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
        _gets_urls(PUBLIC_INFO_URLS),
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
        _gets_urls(DISCOVERY_URLS),
        Severity.LOW,
        "kept from a cluster created before Kubernetes 1.14: anyone can list the APIs and CRDs",
    ),
    DefaultGrant(
        "ClusterRole",
        "system:basic-user",
        None,
        _creates_self_reviews,
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
        role_namespace, name = _where(role) if isinstance(role, Mapping) else (None, "")
        if name == grant.role and (grant.role_kind == "ClusterRole" or role_namespace == namespace):
            if _map(role).get("aggregationRule"):
                return True  # an aggregated role grants whatever is labelled into it
            return not all(grant.allows(_map(rule)) for rule in _list(role.get("rules")))
    return False  # bound to a role that does not exist: grants nothing


def _anonymous(binding: Mapping[str, Any]) -> list[str]:
    """``Kind/name`` of the binding's subjects that are anonymous users."""
    subjects = map(_map, _list(binding.get("subjects")))
    pairs = ((_str(s.get("kind")), _str(s.get("name"))) for s in subjects)
    return [f"{kind}/{name}" for kind, name in pairs if (kind, name) in ANONYMOUS_SUBJECTS]


def default_roles_bound(
    cluster_role_bindings: Sequence[Mapping[str, Any]],
    role_bindings: Sequence[Mapping[str, Any]],
) -> list[tuple[str, str | None, str]]:
    """(kind, namespace, name) of the default roles bound to anonymous users: read to verify."""
    found: dict[tuple[str, str | None, str], None] = {}
    for cluster, bindings in ((True, cluster_role_bindings), (False, role_bindings)):
        for binding in map(_map, bindings):
            namespace = None if cluster else _where(binding)[0]
            grant = (
                _default(_map(binding.get("roleRef")), namespace) if _anonymous(binding) else None
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
        for binding in map(_map, bindings):  # junk becomes {}: no subjects
            subjects = _anonymous(binding)
            if not subjects:
                continue
            namespace, name = _where(binding)
            if kind == "ClusterRoleBinding":
                namespace = None
            role_ref = _map(binding.get("roleRef"))
            role = f"{_str(role_ref.get('kind')) or '?'} {_str(role_ref.get('name')) or '?'}"
            detail = f"{kind} {name} gives {role} to {_few(subjects)}"
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
