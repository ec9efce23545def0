"""The incident's timeline: what the investigation recorded, and what the detection itself knows.

The operator writes ``status.investigation.timeline``, but a detection it has not investigated
yet (or one written by an older operator) still carries times of its own: when the image and
the suspect layer were built, who created the workload and the pod, the exec session, when
each ancestor of the offending process started, when the layer saw it, when the
MinerDetection was recorded, and when each action was taken. Both are merged here, so every
output shows one timeline whatever the operator managed to write.

A moment the detection derives is dropped when the investigation already records one of the
same kind in the same second (the operator's wording wins); for process starts and actions,
several of which happen in one second, only the same detail counts as the same moment.
Moments whose time is missing or unreadable are kept apart (``undated``), never dropped and
never fatal: the data comes from the cluster and may be anything.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from minerguard import timestamps
from minerguard.api.detection import MinerDetection
from minerguard.api.investigation import Actor, Investigation

MAX_MOMENTS = 200
"""No timeline holds more; what a cut left out is counted in :attr:`Timeline.cut`."""
MAX_LINEAGE = 20
"""Ancestors of the offending process that become process-start moments."""

KINDS = ("ImageBuilt", "Admission", "ExecSession", "ProcessStart", "Detection", "Action")
"""The kinds in the order an incident unfolds; moments in one second keep this order."""
_RANK = {kind: float(rank) for rank, kind in enumerate(KINDS)}
_OTHER_RANK = _RANK["Detection"] + 0.5
"""A kind this version does not know sorts after the detection and before the actions."""
_MANY_PER_SECOND = frozenset({"ProcessStart", "Action"})
INVESTIGATION = "investigation"
DETECTION = "detection"


@dataclass(frozen=True, slots=True)
class Moment:
    """One moment of the incident."""

    kind: str
    detail: str
    time: str | None
    """As recorded (RFC 3339 when readable)."""
    at: float | None
    """Epoch seconds; None when the time is missing or unreadable."""
    actor: str | None = None
    source: str = DETECTION
    """Where it came from: the investigation's timeline or the detection's own fields."""

    @property
    def second(self) -> int | None:
        """The whole second, the precision Kubernetes writes."""
        return None if self.at is None else math.floor(self.at)


@dataclass(frozen=True, slots=True)
class Timeline:
    """Moments in time order, those without a readable time after them, and what was cut."""

    dated: tuple[Moment, ...]
    undated: tuple[Moment, ...]
    cut: int = 0

    @property
    def moments(self) -> tuple[Moment, ...]:
        """Every moment, dated first."""
        return self.dated + self.undated


def gap(seconds: float) -> str:
    """``+2s``, ``+3m10s``, ``+4h05m``, ``+2d22h40m``: the time since the moment before."""
    whole = max(0, round(seconds))
    days, rest = divmod(whole, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"+{days}d{hours:02d}h{minutes:02d}m"
    if hours:
        return f"+{hours}h{minutes:02d}m"
    if minutes:
        return f"+{minutes}m{secs:02d}s"
    return f"+{secs}s"


def _moment(
    kind: str, detail: str, time: str | None, actor: str | None = None, source: str = DETECTION
) -> Moment:
    at = timestamps.parse_time(time)
    if at is not None and not math.isfinite(at):
        at = None
    return Moment(kind, detail, time, at, actor, source)


def _actor_name(actor: Actor) -> str:
    return actor.username or actor.manager or "someone"


def _from_investigation(investigation: Investigation) -> Iterator[Moment]:
    for entry in investigation.timeline:
        yield _moment(entry.kind, entry.detail, entry.time, entry.actor, INVESTIGATION)


def _from_detection(detection: MinerDetection) -> Iterator[Moment]:
    investigation = detection.status.investigation if detection.status else None
    image = investigation.image if investigation else None
    if image is not None:
        if image.created:
            yield _moment(
                "ImageBuilt", f"image built: {image.image or image.digest}", image.created
            )
        for step in image.history:
            if step.suspect and step.created:
                yield _moment("ImageBuilt", f"suspect layer: {step.created_by}", step.created)
    provenance = investigation.provenance if investigation else None
    if provenance is not None:
        for role, actor in (
            ("workload created", provenance.workload_created_by),
            ("workload changed", provenance.workload_changed_by),
            ("pod created", provenance.pod_created_by),
        ):
            if actor is not None and actor.time:
                name = _actor_name(actor)
                yield _moment("Admission", f"{role} by {name}", actor.time, name)
        session = provenance.exec_session
        if session is not None and session.time:
            who = session.username or "unknown user"
            command = " ".join(session.command) or "(no command)"
            yield _moment(
                "ExecSession", f"{session.subresource} by {who}: {command}", session.time, who
            )
    spec = detection.spec
    for link in reversed(spec.evidence.lineage[:MAX_LINEAGE]):  # oldest ancestor first
        if link.started_at:
            what = link.command_line or link.executable or "?"
            yield _moment("ProcessStart", f"pid {link.pid}: {what}", link.started_at)
    yield _moment(
        "Detection", f"{spec.layer.value} layer saw it (score {spec.score:g})", spec.observed_at
    )
    if detection.metadata.creation_timestamp:
        yield _moment("Detection", "MinerDetection recorded", detection.metadata.creation_timestamp)
    status = detection.status
    if status is not None:
        actions = status.actions_taken[:MAX_MOMENTS] or ([status.action] if status.action else [])
        for action in actions:
            yield _moment("Action", action, status.acted_at)


def _key(moment: Moment) -> tuple[str, int | None, str | None]:
    detail = moment.detail if moment.kind in _MANY_PER_SECOND else None
    return moment.kind, moment.second, detail


def _merge(recorded: Iterable[Moment], derived: Iterable[Moment]) -> list[Moment]:
    merged: list[Moment] = []
    exact: set[tuple[str, str, str | None]] = set()
    for moment in recorded:
        identity = (moment.kind, moment.detail, moment.time)
        if identity not in exact:
            exact.add(identity)
            merged.append(moment)
    known = {_key(moment) for moment in merged if moment.at is not None}
    for moment in derived:
        if moment.at is not None and _key(moment) in known:
            continue
        if moment.at is None and moment.time is None and moment.kind == "Detection":
            continue  # a detection without observedAt: nothing to place
        merged.append(moment)
    return merged


def build(detection: MinerDetection) -> Timeline:
    """The detection's timeline: sorted, deduplicated, bounded."""
    investigation = detection.status.investigation if detection.status else None
    recorded_all = investigation.timeline if investigation else []
    recorded = _from_investigation(investigation) if investigation else iter(())
    merged = _merge(itertools.islice(recorded, MAX_MOMENTS), _from_detection(detection))
    order = {id(moment): index for index, moment in enumerate(merged)}
    dated = sorted(
        (m for m in merged if m.at is not None),
        key=lambda m: (m.at, _RANK.get(m.kind, _OTHER_RANK), order[id(m)]),
    )
    undated = [m for m in merged if m.at is None]
    kept = (dated + undated)[:MAX_MOMENTS]
    cut = max(0, len(recorded_all) - MAX_MOMENTS) + len(dated) + len(undated) - len(kept)
    return Timeline(
        dated=tuple(m for m in kept if m.at is not None),
        undated=tuple(m for m in kept if m.at is None),
        cut=cut,
    )
