"""Labels, annotations and names the operator puts on the objects it acts on.

Every change the operator makes to a workload is marked so a person can see why and undo it:
``kubectl get deploy -o yaml`` shows which detection stopped it and what it was before.
"""

from __future__ import annotations

import hashlib
import re

PREFIX = "minerguard.io"

STOPPED_BY = f"{PREFIX}/stopped-by"
"""Annotation on a stopped owner: ``namespace/name`` of the detection."""
STOPPED_AT = f"{PREFIX}/stopped-at"
STOP_REASON = f"{PREFIX}/stop-reason"
ORIGINAL_REPLICAS = f"{PREFIX}/original-replicas"
"""Annotation: the replica count before the owner was scaled to zero (revert by scaling back)."""
ORIGINAL_SUSPEND = f"{PREFIX}/original-suspend"
ORIGINAL_NODE_SELECTOR = f"{PREFIX}/original-node-selector"
"""Annotation on a stopped DaemonSet: its pod template's nodeSelector before, as JSON."""
STOPPED_NODE_LABEL = f"{PREFIX}/stopped"
"""nodeSelector key added to a stopped DaemonSet's template; no node carries it."""

ISOLATED = f"{PREFIX}/isolated"
"""Label on an isolated pod (value: the pod's uid); the egress-deny NetworkPolicy selects it."""
ISOLATED_BY = f"{PREFIX}/isolated-by"
RELEASED_LABELS = f"{PREFIX}/released-labels"
"""Annotation on an isolated pod detached from its owner: the selector labels it had, as JSON."""
RELEASED_OWNER = f"{PREFIX}/released-owner"
"""Annotation on an isolated pod detached from its owner: the controller reference, as JSON.

For people (and for reverting by hand) only: the operator never reads it back, since the pod's
owner can write any annotation on it (a tenant's pod naming Deployment ``payments`` once got
that scaled to 0). What the operator trusts is the release it records in the detection's
``status.actionsTaken`` (:func:`released_detail`), which only the operator can write."""
SCAN = f"{PREFIX}/scan"
"""Label on detections recorded by a background scan (value: the policy)."""
DETECTION = f"{PREFIX}/detection"


_RELEASED = re.compile(r"released from (?P<kind>[A-Za-z]+)/(?P<name>[^ ;]+) uid (?P<uid>[^ ;]+)")


def released_detail(isolated_by: str, kind: str, name: str, uid: str) -> str:
    """The ``Isolate`` step's detail when the pod was released from its controller.

    Recorded in the detection's status, which only the operator writes, so that ``StopOwner``
    after a restart finds the owner by kind, name *and* uid without trusting the pod.
    """
    return f"{isolated_by}; released from {kind}/{name} uid {uid}"


def parse_released(detail: str) -> tuple[str, str, str] | None:
    """``(kind, name, uid)`` of a release recorded by :func:`released_detail`, if any."""
    found = _RELEASED.search(detail)
    return (found["kind"], found["name"], found["uid"]) if found else None


def isolation_policy_name(pod_uid: str) -> str:
    """Name of the NetworkPolicy isolating one pod (stable, so a retry finds it)."""
    return f"minerguard-isolate-{short_hash(pod_uid)}"


def short_hash(*parts: str, length: int = 10) -> str:
    """A short stable hex digest of the parts (names must be DNS-1123 and bounded)."""
    digest = hashlib.sha256("\x00".join(parts).encode()).hexdigest()
    return digest[:length]


def dns_label(text: str, limit: int = 40) -> str:
    """Lowercase letters, digits and dashes, trimmed to ``limit`` (for generated names)."""
    cleaned = "".join(c if c.isalnum() else "-" for c in text.lower())
    return cleaned[:limit].strip("-") or "x"
