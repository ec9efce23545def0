"""Whether the cluster-wide RBAC review behind ``status.anonymousAccess`` could be read.

An empty list must never stand for "nothing found" when the bindings could not be read (a 403, an
outage): the operator keeps the last complete answer in the status and says so in the
``AccessReviewed`` condition, naming what it could not read.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from minerguard.api.meta import ConditionStatus
from minerguard_operator.decide import statuses

ACCESS_REVIEWED = "AccessReviewed"
MAX_MESSAGE = 1024
"""A condition message is read in ``kubectl describe``: the first unknowns, then a count."""


def _message(unknowns: Sequence[str], head: str) -> str:
    text = head
    for shown, unknown in enumerate(unknowns):
        rest = f" (and {len(unknowns) - shown} more)"
        if len(text) + len(unknown) + 2 + len(rest) > MAX_MESSAGE:
            return text + rest
        text += ("; " if shown else ": ") + unknown
    return text[:MAX_MESSAGE]


def access_reviewed(
    previous: Sequence[Any],
    *,
    unknowns: Sequence[str],
    flagged: int | None,
    now: str,
    generation: int | None,
) -> dict[str, Any]:
    """The ``AccessReviewed`` condition, keeping its transition time while its status holds.

    ``flagged`` is how many bindings the status lists, None when nothing could be read (the
    status then keeps its last answer). True when everything was read; False when part was (the
    list may miss bindings); Unknown when nothing was.
    """
    if not unknowns:
        status, reason = ConditionStatus.TRUE, "Reviewed"
        message = (
            f"RBAC bindings read cluster-wide; {flagged or 0} giving rights to anonymous users,"
            " every user or every service account listed in status.anonymousAccess"
        )
    elif flagged is None:
        status, reason = ConditionStatus.UNKNOWN, "ReadFailed"
        message = _message(
            unknowns,
            "RBAC bindings could not be read; status.anonymousAccess shows the last complete"
            " reading, if any",
        )
    else:
        status, reason = ConditionStatus.FALSE, "Incomplete"
        message = _message(
            unknowns,
            f"RBAC bindings read in part ({flagged} listed in status.anonymousAccess); others"
            " may be missing",
        )
    return statuses.condition(
        statuses.known_conditions(previous),
        ACCESS_REVIEWED,
        status,
        reason=reason,
        message=message,
        now=now,
        generation=generation,
    ).to_k8s()
