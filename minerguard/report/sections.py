"""What a report says, in the order a responder reads it, with every value made inert once.

The text and HTML renderers lay out the same :class:`Report`, so they cannot disagree on what
an investigation says. The order follows the responder's questions: the summary (with the
investigation's state, origin and via), what was detected, whose image it is and which history
step added the miner, who started it and how, what would restart it, which doors were open,
the checklist, what could not be established, and the timeline.

Every value passes :func:`minerguard.report.blocks.inert` on its way in, so the renderers
only need their own format's escaping.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from minerguard.api.detection import MinerDetection
from minerguard.api.investigation import (
    Actor,
    CheckState,
    ExecSession,
    ImageProvenance,
    Investigation,
    LinkState,
    Provenance,
    Severity,
)
from minerguard.report import blocks, timeline

NOT_INVESTIGATED = "The operator has not investigated it yet: status.investigation is empty."
NO_SUMMARY = "No investigation yet: what follows is only what the detection itself records."


@dataclass(frozen=True, slots=True)
class Report:
    """The whole report, every value inert."""

    title: str
    state: str
    origin: str
    via: str
    notes: tuple[str, ...]
    sections: tuple[blocks.Section, ...]
    timeline: timeline.Timeline
    investigated: bool


def actor_text(actor: Actor | None) -> str | None:
    """``alice (groups: dev) · CREATE with kubectl at T · from Stamp`` for one actor."""
    if actor is None:
        return None
    who = actor.username or (f"field manager {actor.manager}" if actor.manager else "unknown")
    parts = [who]
    if actor.groups:
        parts[0] += f" (groups: {blocks.joined(actor.groups)})"
    how = " ".join(
        part
        for part in (
            actor.operation,
            f"with {actor.manager}" if actor.manager and actor.username else None,
            f"at {actor.time}" if actor.time else None,
        )
        if part
    )
    if how:
        parts.append(how)
    parts.append(f"from {actor.basis.value}")
    return " · ".join(parts)


def _summary(investigation: Investigation | None) -> blocks.Section:
    if investigation is None:
        return blocks.Section("summary", "Summary", paragraph=NO_SUMMARY)
    return blocks.Section("summary", "Summary", paragraph=blocks.inert(investigation.summary))


def _detection(detection: MinerDetection) -> blocks.Section:
    spec, status, meta = detection.spec, detection.status, detection.metadata
    evidence = spec.evidence
    pod = f"{meta.namespace}/{spec.pod_name}" if spec.pod_name else None
    requester = spec.requesting_user
    if requester and spec.requesting_groups:
        requester += f" (groups: {blocks.joined(spec.requesting_groups)})"
    if requester and spec.requester_authenticated is False:
        requester += " — claimed by an unauthenticated caller"
    rows: list[blocks.Row | None] = [
        blocks.row(spec.object_kind, pod),
        blocks.row("Pod UID", spec.pod_uid),
        blocks.row("Container", spec.container),
        blocks.row("Node", spec.node),
        blocks.row("Owner", f"{spec.owner.kind}/{spec.owner.name}" if spec.owner else None),
        blocks.row("Image", spec.image),
        blocks.row("Digest", spec.image_digest, code=True),
        blocks.row("Layer", f"{spec.layer.value}, score {spec.score:g}"),
        blocks.row("Policy", f"{spec.policy} ({spec.mode})" if spec.policy else None),
        blocks.row("Mode", None if spec.policy else spec.mode),
        blocks.row("Requested by", requester),
        blocks.row("Observed", spec.observed_at),
    ]
    rows += [
        blocks.row(
            "Reason",
            f"{reason.signal}: {reason.detail}"
            + (f" (+{reason.weight:g})" if reason.weight else ""),
        )
        for reason in blocks.bounded(spec.reasons)
    ]
    rows.append(blocks.more_row(spec.reasons, "reasons"))
    rows += [
        blocks.row("Process", f"pid {evidence.pid}" if evidence.pid is not None else None),
        blocks.row("Executable", evidence.executable, code=True),
        blocks.row("Command line", evidence.command_line, code=True),
        blocks.row(
            "CPU", f"{evidence.cpu_fraction:.0%}" if evidence.cpu_fraction is not None else None
        ),
        blocks.row("Entered through", evidence.entry.value if evidence.entry else None),
        blocks.row(
            "Executable from",
            evidence.executable_origin.value if evidence.executable_origin else None,
        ),
        blocks.row("Downloaded by", evidence.downloaded_by),
    ]
    rows += [
        blocks.row(
            "Connection",
            f"{c.remote_address}:{c.remote_port}"
            + (f" ({c.host})" if c.host else "")
            + (f" {c.protocol}" if c.protocol else ""),
        )
        for c in blocks.bounded(evidence.connections)
    ]
    rows.append(blocks.more_row(evidence.connections, "connections"))
    rows += [blocks.row("Lookup", lookup) for lookup in blocks.bounded(evidence.lookups)]
    rows.append(blocks.more_row(evidence.lookups, "lookups"))
    rows += [
        blocks.row(
            f"Ancestor {depth}",
            f"pid {link.pid}: {link.command_line or link.executable or '?'}",
            code=True,
        )
        for depth, link in enumerate(blocks.bounded(evidence.lineage), start=1)
    ]
    rows.append(blocks.more_row(evidence.lineage, "ancestors"))
    if status is not None:
        rows += [
            blocks.row("Phase", status.phase.value),
            blocks.row("Message", status.message),
            blocks.row("Acted at", status.acted_at),
        ]
        rows += [
            blocks.row("Action taken", action) for action in blocks.bounded(status.actions_taken)
        ]
        rows.append(blocks.more_row(status.actions_taken, "actions"))
        if status.occurrences > 1:
            rows.append(blocks.row("Seen", f"{status.occurrences} times, last {status.last_seen}"))
    return blocks.Section("detection", "What was detected", rows=blocks.rows(*rows))


def _trusted(image: ImageProvenance) -> str:
    if image.trusted is None:
        return "unknown"
    if image.trusted:
        return (
            f"yes: ours (trustedRegistries: {image.trusted_by})"
            if image.trusted_by
            else "yes: ours"
        )
    return "no: a foreign image"


def _tags(image: ImageProvenance) -> str | None:
    if not image.tags and image.tags_checked is None:
        return None
    shown = blocks.joined(image.tags) or "none"
    notes = []
    if image.tags_checked is not None:
        notes.append(f"{image.tags_checked} compared")
    if image.tags_complete is False:
        notes.append("the listing was cut at its bound")
    return shown + (f" ({'; '.join(notes)})" if notes else "")


def _basis(basis: Iterable[object], confidence: object) -> str:
    names = [getattr(item, "value", str(item)) for item in basis]
    sure = getattr(confidence, "value", str(confidence))
    return f"{sure}, from {blocks.joined(names)}" if names else str(sure)


def _image(image: ImageProvenance | None) -> blocks.Section:
    title = "Image provenance"
    if image is None:
        return blocks.Section(
            "image", title, empty="Not established (see what could not be established)."
        )
    executable = image.executable.value
    if image.downloaded_by:
        executable += f", fetched by {image.downloaded_by}"
    rows: list[blocks.Row | None] = [
        blocks.row("Image", image.image),
        blocks.row("Registry", image.registry),
        blocks.row("Repository", image.repository),
        blocks.row("Digest", image.digest, code=True),
        blocks.row("Ours", _trusted(image)),
        blocks.row("Built", image.created),
        blocks.row("Executable", executable),
        blocks.row("Tags on digest", _tags(image)),
    ]
    labels = sorted(image.labels.items())
    rows += [blocks.row(f"Label {key}", value) for key, value in blocks.bounded(labels)]
    rows.append(blocks.more_row(labels, "labels"))
    rows.append(blocks.row("Established", _basis(image.basis, image.confidence)))
    steps = tuple(
        blocks.Item(
            title=f"{index}. {blocks.inert(step.created_by or '(no created_by)')}",
            state="adds what was detected" if step.suspect else None,
            tone="bad" if step.suspect else "plain",
            rows=blocks.rows(
                blocks.row("Created", step.created),
                blocks.row("Comment", step.comment),
                blocks.row("Layer", "empty (metadata only)" if step.empty_layer else None),
            ),
            flagged=step.suspect,
        )
        for index, step in enumerate(blocks.bounded(image.history), start=1)
    ) + blocks.more_items(image.history)
    return blocks.Section("image", title, rows=blocks.rows(*rows), items=steps)


def _exec_rows(session: ExecSession | None) -> list[blocks.Row | None]:
    if session is None:
        return []
    who = session.username or "unknown user"
    if session.groups:
        who += f" (groups: {blocks.joined(session.groups)})"
    terminal = ", ".join(
        name for name, on in (("tty", session.tty), ("stdin", session.stdin)) if on
    )
    return [
        blocks.row(
            "Exec session",
            f"{session.subresource} by {who}" + (f" at {session.time}" if session.time else ""),
        ),
        blocks.row("Exec command", " ".join(blocks.bounded(session.command)), code=True),
        blocks.row("Exec container", session.container),
        blocks.row("Exec terminal", terminal),
        blocks.row("Exec allowed", "yes" if session.allowed else "no: denied by the webhook"),
        blocks.row("Exec recorded in", f"Event {session.event}" if session.event else None),
        blocks.row("Exec user uid", session.uid),
    ]


def _provenance(provenance: Provenance | None) -> blocks.Section:
    title = "Who started it, and how"
    if provenance is None:
        return blocks.Section("provenance", title, empty="Not established.")
    rows: list[blocks.Row | None] = [
        blocks.row("Via", provenance.via.value),
        blocks.row("Workload created by", actor_text(provenance.workload_created_by)),
        blocks.row("Workload changed by", actor_text(provenance.workload_changed_by)),
        blocks.row("Pod created by", actor_text(provenance.pod_created_by)),
        *_exec_rows(provenance.exec_session),
        blocks.row("Dropper", provenance.dropper, code=True),
        blocks.row("Established", _basis(provenance.basis, provenance.confidence)),
    ]
    return blocks.Section("provenance", title, rows=blocks.rows(*rows))


_LINK_TONE: dict[LinkState, blocks.Tone] = {
    LinkState.ACTIVE: "bad",
    LinkState.STOPPED: "good",
    LinkState.GONE: "good",
    LinkState.UNKNOWN: "warn",
}
_SEVERITY_TONE: dict[Severity, blocks.Tone] = {
    Severity.HIGH: "bad",
    Severity.MEDIUM: "warn",
    Severity.LOW: "plain",
}
_CHECK_TONE: dict[CheckState, blocks.Tone] = {
    CheckState.DONE: "good",
    CheckState.OPEN: "bad",
    CheckState.NOT_APPLICABLE: "plain",
    CheckState.UNKNOWN: "warn",
}


def _lists(
    investigation: Investigation,
) -> tuple[blocks.Section, blocks.Section, blocks.Section, blocks.Section]:
    restarts = tuple(
        blocks.Item(
            title=blocks.inert(
                f"{path.kind} " + (f"{path.namespace}/" if path.namespace else "") + path.name
            ),
            state=path.state.value,
            tone=_LINK_TONE[path.state],
            rows=blocks.rows(
                blocks.row("Relation", path.relation),
                blocks.row("Response", path.response),
                blocks.row("Remedy", path.remedy, code=True),
            ),
        )
        for path in blocks.bounded(investigation.restart_paths)
    ) + blocks.more_items(investigation.restart_paths)
    doors = tuple(
        blocks.Item(
            title=blocks.inert(f"{entry.kind} {entry.name}"),
            state=entry.severity.value,
            tone=_SEVERITY_TONE[entry.severity],
            rows=blocks.rows(
                blocks.row("Finding", entry.detail),
                blocks.row("Remedy", entry.remedy, code=True),
                blocks.row("Established", entry.basis.value),
            ),
        )
        for entry in blocks.bounded(investigation.entry_points)
    ) + blocks.more_items(investigation.entry_points)
    checks = tuple(
        blocks.Item(
            title=blocks.inert(check.item),
            state=check.state.value,
            tone=_CHECK_TONE[check.state],
            rows=blocks.rows(blocks.row("Detail", check.detail)),
        )
        for check in blocks.bounded(investigation.checklist)
    ) + blocks.more_items(investigation.checklist)
    unknowns = tuple(blocks.inert(text) for text in blocks.bounded(investigation.unknowns))
    more = len(investigation.unknowns) - blocks.MAX_ITEMS
    unknowns += (f"… {more} more not shown",) if more > 0 else ()
    return (
        blocks.Section("restarts", "What would restart it", items=restarts, empty="Nothing found."),
        blocks.Section("entrypoints", "Entry points", items=doors, empty="None found."),
        blocks.Section("checklist", "Checklist", items=checks, empty="No items."),
        blocks.Section(
            "unknowns",
            "What could not be established",
            bullets=unknowns,
            empty="Nothing: every part was established.",
        ),
    )


def _cost(investigation: Investigation) -> blocks.Section:
    cost = investigation.cost
    return blocks.Section(
        "cost",
        "Investigation",
        rows=blocks.rows(
            blocks.row("Started", investigation.started_at),
            blocks.row("Completed", investigation.completed_at),
            blocks.row("API calls", str(cost.api_calls)),
            blocks.row("Registry calls", str(cost.registry_calls)),
            blocks.row("Image part cached", "yes" if cost.cached else "no"),
        ),
    )


def _inert_moment(moment: timeline.Moment) -> timeline.Moment:
    return dataclasses.replace(
        moment,
        kind=blocks.inert(moment.kind, 64),
        detail=blocks.inert(moment.detail),
        time=None if moment.time is None else blocks.inert(moment.time, 64),
        actor=None if moment.actor is None else blocks.inert(moment.actor, 256),
    )


def build(detection: MinerDetection, notes: Sequence[str] = ()) -> Report:
    """The report on ``detection``; ``notes`` are the reader's own (a part it could not read)."""
    investigation = detection.status.investigation if detection.status else None
    meta = detection.metadata
    moments = timeline.build(detection)
    moments = timeline.Timeline(
        dated=tuple(_inert_moment(m) for m in moments.dated),
        undated=tuple(_inert_moment(m) for m in moments.undated),
        cut=moments.cut,
    )
    sections = [_summary(investigation), _detection(detection)]
    all_notes = [blocks.inert(note) for note in notes]
    if investigation is None:
        all_notes.insert(0, NOT_INVESTIGATED)
    else:
        sections += [_image(investigation.image), _provenance(investigation.provenance)]
        sections += _lists(investigation)
    sections.append(blocks.Section("timeline", "Timeline", empty="No moment has a readable time."))
    if investigation is not None:
        sections.append(_cost(investigation))
    return Report(
        title=blocks.inert(f"MinerDetection {meta.namespace}/{meta.name}", 512),
        state=investigation.state.value if investigation else "Not investigated",
        origin=investigation.origin.value if investigation else "Unknown",
        via=investigation.via.value if investigation else "Unknown",
        notes=tuple(all_notes),
        sections=tuple(sections),
        timeline=moments,
        investigated=investigation is not None,
    )
