"""How the miner was started and by whom: the workload's and the pod's creators, the session.

A created-by stamp is the stamping webhook's word only when the operator is told that webhook
and its guard are on (``Facts.trust_stamps``); otherwise only managedFields are read, and they
name a field manager, not a user. An admission requester the webhook did not authenticate is a
claim, and so is an exec session on a cluster that does not guard its Events. Each such doubt
lowers the provenance's confidence to that of its least sure part and is said in ``unknowns``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from minerguard.api.detection import Layer, MinerDetection
from minerguard.api.investigation import (
    CREATED_BY_ANNOTATION,
    Actor,
    Basis,
    Confidence,
    Entry,
    ExecutableOrigin,
    Provenance,
    Via,
)
from minerguard_operator.decide.investigation import reading
from minerguard_operator.decide.investigation.facts import Facts
from minerguard_operator.decide.investigation.reading import MAX_LONG, clean, is_controller
from minerguard_operator.decide.investigation.sessions import (
    EXEC_KINDS,
    NO_EXEC_SESSION,
    correlation,
    is_exec_request,
    request_session,
    rivals_note,
    session_trust,
)

MANAGED_FIELDS_NOTE: Final = (
    "managedFields name the field manager, not the user (and whoever edits the object can "
    "rewrite them): who created it is known only by its manager (no minerguard.io/created-by "
    "stamp; the stamping webhook is off?)"
)
UNTRUSTED_STAMP: Final = (
    "a minerguard.io/created-by stamp was ignored: the stamping webhook is off, so whoever "
    "created the object could have written it"
)


@dataclass(frozen=True, slots=True)
class Method:
    """How it was started, on what basis and how surely (see :func:`method`)."""

    via: Via
    basis: tuple[Basis, ...] = ()
    confidence: Confidence = Confidence.UNKNOWN
    dropper: str | None = None
    note: str | None = None
    """What could not be told, for ``unknowns``."""


def method(detection: MinerDetection) -> Method:
    """How it was started: an exec session, a dropper in the pod, or the workload as applied."""
    evidence = detection.spec.evidence
    found = evidence.executable_origin
    dropper = clean(evidence.downloaded_by, MAX_LONG)
    if evidence.entry is Entry.EXEC:
        return Method(Via.EXEC, (Basis.AGENT,), Confidence.CERTAIN, dropper)
    if is_exec_request(detection):
        return Method(Via.EXEC, (Basis.ADMISSION,), Confidence.CERTAIN)
    if found is ExecutableOrigin.DOWNLOADED:
        return Method(Via.DROPPER, (Basis.AGENT,), Confidence.CERTAIN, dropper)
    if found is ExecutableOrigin.WRITTEN_AFTER_START:
        if dropper:
            return Method(Via.DROPPER, (Basis.AGENT,), Confidence.LIKELY, dropper)
        return Method(
            Via.UNKNOWN,
            (Basis.AGENT,),
            note=(
                "the executable was written into the running container but no process that "
                "fetched it was seen: a dropper or someone with a shell"
            ),
        )
    if detection.spec.layer is Layer.ADMISSION:
        return Method(Via.APPLY, (Basis.ADMISSION,), Confidence.CERTAIN)
    if evidence.entry is Entry.INIT:
        if found is ExecutableOrigin.IMAGE:
            return Method(Via.APPLY, (Basis.AGENT,), Confidence.CERTAIN)
        return Method(
            Via.APPLY,
            (Basis.AGENT,),
            Confidence.LIKELY,
            note=(
                "the process descends from the container's own first process; whether its "
                "executable was in the image was not reported"
            ),
        )
    return Method(
        Via.UNKNOWN, note="how the process entered the container was not reported by the agent"
    )


def _managed_entries(obj: object) -> list[tuple[float, int, Mapping[str, Any]]]:
    """ManagedFields entries that record a write to the object itself, with their times."""
    found = []
    for index, entry in enumerate(reading.items(reading.meta(obj).get("managedFields"))):
        if not isinstance(entry, Mapping) or entry.get("subresource"):
            continue  # status and scale writes are the controllers' (and minerguard's) own
        at = reading.time(entry.get("time"))
        found.append((at if at is not None else float("inf"), index, entry))
    return found


def _managed_actor(entry: Mapping[str, Any]) -> Actor:
    return reading.bounded_actor(
        Actor(
            manager=clean(entry.get("manager")),
            operation=clean(entry.get("operation"), 32),
            time=clean(entry.get("time"), 64),
            basis=Basis.MANAGED_FIELDS,
        )
    )


def creator(obj: object, *, stamps: bool = True) -> Actor | None:
    """Who created an object: its ``minerguard.io/created-by`` stamp, else its first manager.

    ``stamps=False`` when the stamping webhook is off: a stamp is then whatever the object's
    creator chose to write (framing someone else), and only managedFields are read.
    """
    stamped = Actor.parse_stamp(reading.annotation(obj, CREATED_BY_ANNOTATION)) if stamps else None
    if stamped is not None:
        return reading.bounded_actor(stamped)
    entries = _managed_entries(obj)
    return _managed_actor(min(entries, key=lambda e: e[:2])[2]) if entries else None


def last_changer(obj: object, before: str | None = None) -> Actor | None:
    """The latest manager to write the object before ``before``.

    The response's own writes after the detection (a scale to 0) are not what let the miner in.
    """
    limit = reading.time(before)
    entries = [e for e in _managed_entries(obj) if limit is None or e[0] <= limit]
    return _managed_actor(max(entries, key=lambda e: e[:2])[2]) if entries else None


def _requester(detection: MinerDetection) -> tuple[Actor | None, str | None]:
    spec = detection.spec
    if spec.layer is not Layer.ADMISSION or not spec.requesting_user:
        return None, None
    actor = reading.bounded_actor(
        Actor(
            username=spec.requesting_user,
            groups=list(spec.requesting_groups),
            time=spec.observed_at,
            basis=Basis.ADMISSION,
        )
    )
    note = None
    if spec.requester_authenticated is False:
        note = (
            f"the requesting user {actor.username} is as claimed by an AdmissionReview whose "
            "caller was not authenticated"
        )
    return actor, note


def _least(*levels: Confidence) -> Confidence:
    order = (Confidence.UNKNOWN, Confidence.LIKELY, Confidence.CERTAIN)
    return min(levels, key=order.index)


def provenance(facts: Facts, how: Method) -> tuple[Provenance, list[str]]:
    """Who created and changed the workload and the pod, and the exec session if one ran it.

    Its confidence is that of its least sure part: an admission requester the webhook did not
    authenticate, or a creator only managedFields name, make it ``Likely``.
    """
    notes: list[str] = []
    detection = facts.detection
    owners = [o for o in reading.items(facts.owners) if isinstance(o, Mapping)]
    top = owners[-1] if owners else None
    requester, requester_note = _requester(detection)
    workload_kind = detection.spec.object_kind not in {"Pod", *EXEC_KINDS}
    stamps = facts.trust_stamps
    workload_created = creator(top, stamps=stamps) if top is not None else None
    workload_changed = last_changer(top, detection.spec.observed_at) if top is not None else None
    if workload_kind and requester is not None:
        # The request judged made the workload what it is: its creator, or whoever changed it.
        if workload_created is None:
            workload_created = requester
        elif workload_created.username != requester.username:
            workload_changed = requester
    pod_created = None
    if facts.pod is not None and stamps:
        pod_created = Actor.parse_stamp(reading.annotation(facts.pod, CREATED_BY_ANNOTATION))
    if pod_created is None and detection.spec.object_kind == "Pod":
        pod_created = requester
    if pod_created is None and facts.pod is not None:
        pod_created = creator(facts.pod, stamps=stamps)
    if not stamps and any(
        reading.annotation(o, CREATED_BY_ANNOTATION) for o in (top, facts.pod) if o is not None
    ):
        notes.append(UNTRUSTED_STAMP)
    if pod_created is not None:
        pod_created = reading.bounded_actor(pod_created)
    used = (workload_created, workload_changed, pod_created)
    basis = list(how.basis)
    confidence = how.confidence
    if requester is not None and requester in used:
        vouched = detection.spec.requester_authenticated is True
        confidence = _least(confidence, Confidence.CERTAIN if vouched else Confidence.LIKELY)
        if requester_note:
            notes.append(requester_note)
    if any(a is not None and a.basis is Basis.MANAGED_FIELDS for a in used):
        confidence = _least(confidence, Confidence.LIKELY)
        notes.append(MANAGED_FIELDS_NOTE)
    if facts.pod is not None and workload_created is None and pod_created is None:
        notes.append(
            "who created the pod is unknown: no minerguard.io/created-by stamp and no managedFields"
        )
    session = None
    if how.via is Via.EXEC:
        if is_exec_request(detection):
            session = request_session(
                detection, facts.exec_sessions, guarded=facts.trust_exec_sessions
            )
            vouched = detection.spec.requester_authenticated is True
            confidence = _least(confidence, Confidence.CERTAIN if vouched else Confidence.LIKELY)
            if requester_note:
                notes.append(requester_note)
        else:
            matched = correlation(
                facts.exec_sessions, detection.spec.evidence, detection.spec.container
            )
            if matched.session is None:
                notes.append(NO_EXEC_SESSION)
            else:
                session = reading.bounded_session(matched.session)
                basis.append(Basis.EXEC_TRACE)
                believed, trust_notes = session_trust(session, facts.trust_exec_sessions)
                confidence = _least(confidence, matched.confidence, believed)
                notes += trust_notes
                rivals = rivals_note(matched)
                if rivals:
                    notes.append(rivals)
    for actor in used:
        if actor is not None and actor.basis not in basis:
            basis.append(actor.basis)
    if how.note:
        notes.append(how.note)
    found_provenance = Provenance(
        via=how.via,
        workload_created_by=workload_created,
        workload_changed_by=workload_changed,
        pod_created_by=pod_created,
        exec_session=session,
        dropper=how.dropper,
        basis=basis,
        confidence=confidence,
    )
    return found_provenance, notes


def maker_name(found: Provenance) -> str | None:
    """Who made the workload or pod, by name: a person's account, else the field manager.

    A controller creating a ReplicaSet's pods is doing its job; the person is whoever made the
    workload above it.
    """
    for actor in (found.workload_created_by, found.pod_created_by):
        if actor is not None and actor.username and not is_controller(actor.username):
            return actor.username
    for actor in (found.workload_created_by, found.pod_created_by):
        if actor is not None and actor.manager:
            return f"field manager {actor.manager}"
    return None
