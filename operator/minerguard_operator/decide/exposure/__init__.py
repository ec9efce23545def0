"""Which doors were open to an affected pod: exposure, permissions, host access, anonymous RBAC.

Pure: API objects as plain JSON dicts in, :class:`~minerguard.api.investigation.EntryPoint`
lists out; the I/O side (:mod:`minerguard_operator.exposure`) lists the objects and asks the
API server's authorizer. One module per door, read in the order a responder asks:

- :mod:`.services`: Services answering outside the cluster, and the Ingresses and Gateway API
  routes that send outside traffic to the pod's Services;
- :mod:`.hazards`: what the pod's own spec reaches on the node (runtime sockets, privilege,
  capabilities, host namespaces and ports);
- :mod:`.access`: what its service account may do, one SubjectAccessReview per
  :data:`ACCESS_CHECKS` entry (nothing here reimplements RBAC);
- :mod:`.anonymous`: bindings that give anything to ``system:anonymous`` or
  ``system:unauthenticated``, the Kubernetes and kubeadm defaults checked against their rules;
- :mod:`.broad`: bindings that give pod-running, exec, secret or escalation rights (or any
  rights) to every user (``system:authenticated``) or every service account, judged by the
  bound role's rules; :mod:`.reviewed`: the ``AccessReviewed`` condition saying whether that
  cluster-wide reading could be made;
- :mod:`.fields`: the tolerant readers they share (a field of the wrong type counts as
  absent, so a malformed object never stops an investigation).

Each finding names the object and what to do about it.
"""

from __future__ import annotations

from minerguard_operator.decide.exposure.access import (
    ACCESS_CHECKS,
    SERVICE_ACCOUNT_GROUPS,
    AccessCheck,
    access_review,
    account_permissions,
    review_answer,
    service_account_user,
    unanswered,
)
from minerguard_operator.decide.exposure.anonymous import (
    ANONYMOUS_SUBJECTS,
    DEFAULT_GRANTS,
    DISCOVERY_URLS,
    PUBLIC_INFO_URLS,
    DefaultGrant,
    anonymous_bindings,
    default_roles_bound,
)
from minerguard_operator.decide.exposure.broad import (
    ADMIN_ROLES,
    BROAD_DEFAULTS,
    RoleKey,
    broad_bindings,
    broad_roles_bound,
    role_rights,
    rule_rights,
)
from minerguard_operator.decide.exposure.fields import MAX_NAMES
from minerguard_operator.decide.exposure.hazards import (
    BASELINE,
    DANGEROUS_CAPABILITIES,
    RUNTIME_SOCKETS,
    pod_hazards,
)
from minerguard_operator.decide.exposure.reviewed import ACCESS_REVIEWED, access_reviewed
from minerguard_operator.decide.exposure.services import (
    INTERNAL_LB_ANNOTATIONS,
    OPEN_RANGES,
    ROUTE_KINDS,
    ingress_routes,
    routed_services,
    services_exposing,
)

__all__ = [
    "ACCESS_CHECKS",
    "ACCESS_REVIEWED",
    "ADMIN_ROLES",
    "ANONYMOUS_SUBJECTS",
    "BASELINE",
    "BROAD_DEFAULTS",
    "DANGEROUS_CAPABILITIES",
    "DEFAULT_GRANTS",
    "DISCOVERY_URLS",
    "INTERNAL_LB_ANNOTATIONS",
    "MAX_NAMES",
    "OPEN_RANGES",
    "PUBLIC_INFO_URLS",
    "ROUTE_KINDS",
    "RUNTIME_SOCKETS",
    "SERVICE_ACCOUNT_GROUPS",
    "AccessCheck",
    "DefaultGrant",
    "RoleKey",
    "access_review",
    "access_reviewed",
    "account_permissions",
    "anonymous_bindings",
    "broad_bindings",
    "broad_roles_bound",
    "default_roles_bound",
    "ingress_routes",
    "pod_hazards",
    "review_answer",
    "role_rights",
    "routed_services",
    "rule_rights",
    "service_account_user",
    "services_exposing",
    "unanswered",
]
