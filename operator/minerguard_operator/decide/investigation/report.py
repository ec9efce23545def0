"""What a responder reads first: every moment in order, and one paragraph that says it all.

The timeline runs admission → exec session → process start → detection → each action; the
summary is built only from the parts already concluded, cut to :data:`MAX_SUMMARY`.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Final

from minerguard.api.detection import Layer, MinerDetection
from minerguard.api.investigation import (
    MAX_LIST,
    ExecSession,
    LinkState,
    Origin,
    Provenance,
    Severity,
    TimelineEntry,
    Via,
)
from minerguard.timestamps import format_time
from minerguard_operator.decide.investigation import reading
from minerguard_operator.decide.investigation.facts import Facts, Parts
from minerguard_operator.decide.investigation.image import image_reference, suspect_step
from minerguard_operator.decide.investigation.paths import RESTARTING
from minerguard_operator.decide.investigation.reading import (
    MAX_ARGS,
    MAX_LONG,
    MAX_SUMMARY,
    clean,
    plural,
)
from minerguard_operator.decide.investigation.sessions import is_exec_request
from minerguard_operator.decide.investigation.who import maker_name, method, provenance

MAX_SESSIONS: Final = 10
"""Exec sessions shown in the timeline besides the one that started the process."""
TIMELINE_ORDER: Final = (
    "ImageBuilt",
    "Admission",
    "ExecSession",
    "ProcessStart",
    "Detection",
    "Action",
)


def _events(facts: Facts, who: Provenance) -> Iterable[tuple[object, str, str, str | None]]:
    """``(raw time, kind, detail, actor)`` of every moment the facts record."""
    detection = facts.detection
    spec = detection.spec
    image = facts.image
    if image is not None and image.created:
        yield image.created, "ImageBuilt", f"image {image_reference(image, spec.image)} built", None
    owners = reading.items(facts.owners)
    if owners:
        kind, namespace, name = reading.ref(owners[-1])
        actor = who.workload_created_by
        yield (
            reading.meta(owners[-1]).get("creationTimestamp"),
            "Admission",
            f"{kind} {reading.where(namespace, name)} created",
            (actor.username or actor.manager) if actor else None,
        )
    if facts.pod is not None:
        _, namespace, name = reading.ref(facts.pod)
        actor = who.pod_created_by
        yield (
            reading.meta(facts.pod).get("creationTimestamp"),
            "Admission",
            f"Pod {reading.where(namespace, name)} created",
            (actor.username or actor.manager) if actor else None,
        )
    if spec.layer is Layer.ADMISSION:
        verdict = "denied" if reading.denied(detection) else "let through"
        target = reading.where(clean(detection.metadata.namespace), clean(spec.pod_name) or "?")
        yield (
            spec.observed_at,
            "Admission",
            f"{clean(spec.object_kind)} {target} {verdict} at admission",
            clean(spec.requesting_user),
        )
    sessions = [
        s
        for s in reading.items(facts.exec_sessions)
        if isinstance(s, ExecSession)
        and not (spec.container and s.container and s.container != spec.container)
    ]
    # The latest few and the one that started it: a busy pod's sessions must not crowd out
    # the detection and the response (the timeline is cut at MAX_LIST).
    sessions.sort(key=lambda s: reading.time(s.time) or 0.0)
    sessions = sessions[-MAX_SESSIONS:]
    if who.exec_session is not None and who.exec_session not in sessions:
        sessions.append(who.exec_session)
    for session in sessions:
        command = " ".join(clean(a, MAX_LONG) or "" for a in session.command[:MAX_ARGS])
        refused = "" if session.allowed else " (denied)"
        yield (
            session.time,
            "ExecSession",
            f"{clean(session.subresource, 16)}{refused}: {command[:MAX_LONG]}",
            clean(session.username),
        )
    root = spec.evidence.lineage[-1] if spec.evidence.lineage else None
    if root is not None:
        program = clean(root.command_line, MAX_LONG) or clean(root.executable, MAX_LONG) or "?"
        starter = who.exec_session
        yield (
            root.started_at,
            "ProcessStart",
            f"{program} (pid {root.pid})",
            (starter.username if starter else None),
        )
    what = clean(spec.evidence.executable, MAX_LONG) or clean(spec.evidence.command_line, MAX_LONG)
    yield (
        spec.observed_at or detection.metadata.creation_timestamp,
        "Detection",
        f"{spec.layer.value} layer: {what or 'detected'} (score {spec.score:g})",
        None,
    )
    acted = detection.status.acted_at if detection.status else None
    for action in reading.responses(detection)[:MAX_LIST]:
        yield acted, "Action", clean(str(action), MAX_LONG) or "?", None


def timeline(facts: Facts, who: Provenance | None = None) -> tuple[list[TimelineEntry], list[str]]:
    """Every moment in order, deduplicated; times that cannot be read are skipped and said."""
    if who is None:
        who = provenance(facts, method(facts.detection))[0]
    unread: list[str] = []
    found: dict[tuple[str, str, str], tuple[float, int, TimelineEntry]] = {}
    for raw, kind, detail, actor in _events(facts, who):
        if raw is None or raw == "":
            continue
        at = reading.time(raw)
        if at is None:
            unread.append(kind)
            continue
        entry = TimelineEntry(time=format_time(at), kind=kind, detail=detail, actor=actor)
        found.setdefault((entry.time, kind, detail), (at, TIMELINE_ORDER.index(kind), entry))
    ordered = [e for _, _, e in sorted(found.values(), key=lambda v: v[:2])]
    notes = []
    if unread:
        notes.append(
            f"timeline: {len(unread)} times could not be read ({', '.join(sorted(set(unread)))})"
        )
    if len(ordered) > MAX_LIST:
        notes.append(f"timeline: {len(ordered) - MAX_LIST} more moments not listed")
        ordered = ordered[:MAX_LIST]
    return ordered, notes


_DONE_PHRASES: Final = {
    "DeletePod": "the pod was deleted",
    "Isolate": "the pod was isolated",
    "QuarantineImage": "the image was quarantined",
    "KillProcess": "the process was killed",
    "Alert": "",
}


def _response_phrase(detection: MinerDetection) -> str:
    phrases = []
    for action in reading.responses(detection)[:MAX_LIST]:
        if action.failed:
            phrases.append(f"{action.name} failed")
        elif action.name == "StopOwner":
            phrases.append(action.detail or "the owner was stopped")
        else:
            phrase = _DONE_PHRASES.get(action.name, str(action))
            if phrase:
                phrases.append(phrase)
    if not phrases:
        return (
            "" if reading.denied(detection) else "Nothing was done yet."
        )  # the denial was the response
    text = ", ".join(phrases[:-1]) + (" and " if len(phrases) > 1 else "") + phrases[-1]
    return text[0].upper() + text[1:] + "."


def _opening(facts: Facts, parts: Parts) -> str:
    """What ran, where, how it started and whose workload it is: the summary's first sentence."""
    spec = facts.detection.spec
    who = parts.provenance
    reference = image_reference(parts.image, spec.image)
    what = {
        Origin.FOREIGN: f"a foreign image ({reference})",
        Origin.OURS: f"one of our images ({reference})",
        Origin.RUNTIME: f"code written into a running container (image {reference})",
        Origin.UNKNOWN: f"an image of unknown origin ({reference})",
    }[parts.origin]
    step = suspect_step(parts.image)
    if parts.origin is Origin.OURS and step:
        what += f", changed by the build step `{step[:200]}`,"
    pod = reading.where(clean(facts.detection.metadata.namespace), clean(spec.pod_name) or "?")
    session = who.exec_session
    user = (session.username if session else None) or "an unknown user"
    verdict = "refused" if reading.denied(facts.detection) else "let through with a warning"
    if is_exec_request(facts.detection):
        sub = "attach" if spec.object_kind == "PodAttachOptions" else "exec"
        sentence = f"A kubectl {sub} by {user} into pod {pod}, running {what}, was {verdict}"
    elif spec.layer is Layer.ADMISSION:
        sentence = f"{clean(spec.object_kind)} {pod}, running {what}, was {verdict} at admission"
    else:
        sentence = f"{what[0].upper()}{what[1:]} ran the miner in pod {pod}"
        if who.via is Via.EXEC:
            sentence += f", started through a kubectl exec session by {user}"
        elif who.via is Via.DROPPER:
            dropper = (who.dropper or "a process")[:200]
            sentence += f", fetched and started by `{dropper}` in the pod"
    owners = reading.items(facts.owners)
    if owners:
        kind, namespace, name = reading.ref(owners[-1])
        sentence += f"; it belongs to {kind} {reading.where(namespace, name)}"
    maker = maker_name(who)
    if maker:
        sentence += f", created by {maker}"
    return sentence + "."


def summary(facts: Facts, parts: Parts) -> str:
    """One paragraph a responder reads first, built only from the parts."""
    paths, points = parts.paths, parts.points
    sentences = [_opening(facts, parts)]
    high = [p for p in points if p.severity is Severity.HIGH]
    if high:
        doors = "; ".join(f"{p.kind} {clean(p.name)} ({clean(p.detail, 120)})" for p in high[:3])
        sentences.append(f"Open doors: {doors}.")
    response = _response_phrase(facts.detection)
    if response:
        sentences.append(response)
    still = []
    tags = [p for p in paths if p.relation == "registry-tag"]
    if tags:
        still.append(plural(len(tags), "tag still points", "tags still point") + " at the digest")
    twins = [p for p in parts.twins if p.state is LinkState.ACTIVE]
    if twins:
        still.append(plural(len(twins), "other pod runs", "other pods run") + " the digest")
    active = [p for p in paths if p.relation in RESTARTING and p.state is LinkState.ACTIVE]
    if active:
        still.append(
            plural(len(active), "owner or CronJob", "owners or CronJobs") + " can restart it"
        )
    if still:
        sentences.append("Still open: " + "; ".join(still) + ".")
    return clean(" ".join(sentences), MAX_SUMMARY) or "?"
