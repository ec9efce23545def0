"""What the pod's service account may do, as the API server's authorizer answers it.

Nothing here reimplements RBAC: each :data:`ACCESS_CHECKS` entry becomes one
SubjectAccessReview (:func:`access_review`), which also covers webhook and node authorizers
and aggregated roles that a rule walk would miss; :func:`review_answer` reads its answer.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from minerguard.api.investigation import Basis, EntryPoint, Severity
from minerguard_operator.decide.exposure.fields import as_map


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
    status = as_map(review.get("status"))
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
