"""The checklist a responder works down, each item with where it stands now.

Built only from the facts and the parts already concluded, in the order of :data:`CHECKS`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Final

from minerguard.api.detection import ActionTaken
from minerguard.api.investigation import (
    CheckItem,
    CheckState,
    EntryPoint,
    ImageProvenance,
    LinkState,
    Origin,
    Provenance,
    RestartPath,
    Severity,
)
from minerguard_operator.decide.investigation import reading
from minerguard_operator.decide.investigation.facts import Facts, Parts
from minerguard_operator.decide.investigation.paths import RESTARTING
from minerguard_operator.decide.investigation.reading import clean, is_controller, plural

CHECKS: Final = (
    "Instances removed",
    "Restart paths stopped",
    "Image quarantined",
    "Registry tags removed",
    "Credentials rotated",
    "Entry points closed",
)


def _done(actions: Sequence[ActionTaken], name: str) -> bool:
    return any(a.name == name and not a.failed for a in actions)


def _instances(
    facts: Facts, actions: Sequence[ActionTaken], twins: Sequence[RestartPath]
) -> CheckItem:
    item = CHECKS[0]
    running = [p for p in twins if p.state is LinkState.ACTIVE]
    if reading.denied(facts.detection):
        removed: str | None = "denied at admission: it never ran"
    elif _done(actions, "DeletePod"):
        removed = "the pod was deleted"
    elif facts.pod is None:
        removed = "the pod was not found"
    elif reading.meta(facts.pod).get("deletionTimestamp"):
        removed = "the pod is being deleted"
    else:
        removed = None
    if running:
        listed = ", ".join(reading.where(p.namespace, p.name) for p in running[:5])
        more = f" and {len(running) - 5} more" if len(running) > 5 else ""
        return CheckItem(
            item=item,
            state=CheckState.OPEN,
            detail=plural(len(running), "other pod runs", "other pods run")
            + f" the digest: {listed}{more}",
        )
    if removed is None:
        kept = "isolated and kept for forensics" if _done(actions, "Isolate") else "still runs"
        return CheckItem(item=item, state=CheckState.OPEN, detail=f"the pod {kept}")
    return CheckItem(item=item, state=CheckState.DONE, detail=removed)


def _restart(paths: Sequence[RestartPath]) -> CheckItem:
    item = CHECKS[1]
    links = [p for p in paths if p.relation in RESTARTING]
    if not links:
        return CheckItem(
            item=item, state=CheckState.NOT_APPLICABLE, detail="no owner or CronJob makes it"
        )
    active = [
        f"{p.kind} {reading.where(p.namespace, p.name)}"
        for p in links
        if p.state is LinkState.ACTIVE
    ]
    if active:
        return CheckItem(
            item=item, state=CheckState.OPEN, detail="active: " + ", ".join(active[:5])
        )
    if any(p.state is LinkState.UNKNOWN for p in links):
        return CheckItem(item=item, state=CheckState.UNKNOWN, detail="a link of unknown kind")
    return CheckItem(item=item, state=CheckState.DONE, detail=f"{len(links)} stopped or gone")


def _quarantine(facts: Facts, found: Origin) -> CheckItem:
    item = CHECKS[2]
    note = " (the image itself does not carry it)" if found is Origin.RUNTIME else ""
    if facts.quarantined is True:
        return CheckItem(
            item=item, state=CheckState.DONE, detail="the digest is quarantined" + note
        )
    if facts.quarantined is False:
        return CheckItem(item=item, state=CheckState.OPEN, detail="not quarantined" + note)
    return CheckItem(item=item, state=CheckState.UNKNOWN, detail="the policy status was not read")


def _tags(image: ImageProvenance | None, found: Origin) -> CheckItem:
    item = CHECKS[3]
    if found is Origin.RUNTIME:
        return CheckItem(
            item=item,
            state=CheckState.NOT_APPLICABLE,
            detail="written at runtime, not in the image",
        )
    if image is None or image.trusted is None:
        return CheckItem(item=item, state=CheckState.UNKNOWN, detail="the image was not read")
    if image.trusted is False:
        return CheckItem(
            item=item, state=CheckState.NOT_APPLICABLE, detail="foreign image: not our registry"
        )
    if image.tags:
        least = "at least " if image.tags_complete is False else ""
        return CheckItem(
            item=item,
            state=CheckState.OPEN,
            detail=least
            + plural(len(image.tags), "tag still points", "tags still point")
            + " at the digest",
        )
    if image.tags_checked is None:
        return CheckItem(item=item, state=CheckState.UNKNOWN, detail="the tags were not listed")
    return CheckItem(item=item, state=CheckState.DONE, detail="no tag points at the digest")


def _service_account(pod: Mapping[str, Any] | None) -> str | None:
    if pod is None:
        return None
    spec = reading.mapping(reading.mapping(pod).get("spec"))
    name = clean(spec.get("serviceAccountName")) or clean(spec.get("serviceAccount")) or "default"
    namespace = clean(reading.meta(pod).get("namespace")) or "default"
    return f"system:serviceaccount:{namespace}:{name}"


def _credentials(facts: Facts, found: Provenance) -> CheckItem:
    accounts: list[str] = []
    session = found.exec_session
    for user in (
        session.username if session else None,
        found.workload_created_by.username if found.workload_created_by else None,
        found.pod_created_by.username if found.pod_created_by else None,
        _service_account(facts.pod),
    ):
        if user and not is_controller(user) and user not in accounts:
            accounts.append(user)
    detail = (
        "rotate the credentials of " + ", ".join(accounts)
        if accounts
        else "no account identified: rotate whatever could reach the pod"
    )
    return CheckItem(
        item=CHECKS[4],
        state=CheckState.OPEN,
        detail=detail + " (minerguard cannot tell when this is done)",
    )


def _doors(points: Sequence[EntryPoint]) -> CheckItem:
    item = CHECKS[5]
    high = [p for p in points if p.severity is Severity.HIGH]
    if high:
        listed = ", ".join(f"{p.kind} {clean(p.name)}" for p in high[:5])
        return CheckItem(item=item, state=CheckState.OPEN, detail=f"{len(high)} High: {listed}")
    lower = f"; {len(points)} lower ones listed" if points else ""
    return CheckItem(item=item, state=CheckState.DONE, detail="no High entry point found" + lower)


def checklist(facts: Facts, parts: Parts) -> list[CheckItem]:
    """What a responder must see done, each with where it stands now (order of :data:`CHECKS`)."""
    actions = reading.responses(facts.detection)
    return [
        _instances(facts, actions, parts.twins),
        _restart(parts.paths),
        _quarantine(facts, parts.origin),
        _tags(parts.image, parts.origin),
        _credentials(facts, parts.provenance),
        _doors(parts.points),
    ]
