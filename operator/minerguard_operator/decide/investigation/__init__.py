"""The investigation of one detection, assembled from what the investigator gathered.

:mod:`minerguard_operator.investigator` reads the pod, its owners, the exec-session Events, the
registry and the entry points into :class:`Facts`; :func:`investigate` turns them into the
``status.investigation`` a responder reads. Pure, so every conclusion is unit-tested on the
objects as the API server returns them; each conclusion is one small function, in modules read
in the order the investigation is built:

- :mod:`.reading`: safe readers of hostile objects and the bounds every string is cut to;
- :mod:`.facts`: :class:`Facts` (what was gathered) and :class:`Parts` (what was concluded);
- :mod:`.image`: :func:`origin` (a foreign image, one of ours, written at runtime) and
  :func:`image_part`;
- :mod:`.sessions`: :func:`correlate` (which exec session started the process) and
  :func:`session_trust` (whether that session's Event can be believed);
- :mod:`.who`: :func:`method` (an applied workload, ``kubectl exec``, a dropper),
  :func:`creator` / :func:`last_changer` and :func:`provenance`;
- :mod:`.paths`: :func:`restart_paths` and :func:`link_state`: what would bring it back;
- :mod:`.checks` and :mod:`.report`: :func:`checklist`, :func:`timeline` and :func:`summary`.

No shape of input makes :func:`investigate` raise: what could not be told is said in
``unknowns``. Every public name of the modules is re-exported here, so callers import this
package only.
"""

from __future__ import annotations

from collections.abc import Iterable

from minerguard.api.detection import Layer
from minerguard.api.investigation import (
    MAX_LIST,
    Cost,
    EntryPoint,
    ExecutableOrigin,
    Investigation,
    InvestigationState,
    Origin,
    Severity,
)
from minerguard_operator.decide.investigation import reading
from minerguard_operator.decide.investigation.checks import CHECKS, checklist
from minerguard_operator.decide.investigation.facts import Facts, Parts
from minerguard_operator.decide.investigation.image import image_part, origin
from minerguard_operator.decide.investigation.paths import (
    RESTARTING,
    SCALED_KINDS,
    link_state,
    restart_paths,
    twin_paths,
)
from minerguard_operator.decide.investigation.reading import (
    MAX_ARGS,
    MAX_LONG,
    MAX_SCAN,
    MAX_SUMMARY,
    MAX_TEXT,
    clean,
    is_controller,
    plural,
)
from minerguard_operator.decide.investigation.report import (
    MAX_SESSIONS,
    TIMELINE_ORDER,
    summary,
    timeline,
)
from minerguard_operator.decide.investigation.sessions import (
    CLOCK_SKEW_S,
    EXEC_KINDS,
    EXEC_WINDOW_S,
    MAX_RIVALS,
    NO_EXEC_SESSION,
    UNAUTHENTICATED_SESSION,
    UNGUARDED_SESSIONS,
    Correlation,
    command_matches,
    correlate,
    correlation,
    is_exec_request,
    rivals_note,
    session_trust,
)
from minerguard_operator.decide.investigation.who import (
    MANAGED_FIELDS_NOTE,
    UNTRUSTED_STAMP,
    Method,
    creator,
    last_changer,
    method,
    provenance,
)

__all__ = [
    "CHECKS",
    "CLOCK_SKEW_S",
    "EXEC_KINDS",
    "EXEC_WINDOW_S",
    "MANAGED_FIELDS_NOTE",
    "MAX_ARGS",
    "MAX_LONG",
    "MAX_RIVALS",
    "MAX_SCAN",
    "MAX_SESSIONS",
    "MAX_SUMMARY",
    "MAX_TEXT",
    "NO_EXEC_SESSION",
    "RESTARTING",
    "SCALED_KINDS",
    "TIMELINE_ORDER",
    "UNAUTHENTICATED_SESSION",
    "UNGUARDED_SESSIONS",
    "UNTRUSTED_STAMP",
    "Correlation",
    "Facts",
    "Method",
    "Parts",
    "checklist",
    "clean",
    "command_matches",
    "correlate",
    "correlation",
    "creator",
    "image_part",
    "investigate",
    "is_controller",
    "is_exec_request",
    "last_changer",
    "link_state",
    "method",
    "origin",
    "plural",
    "provenance",
    "restart_paths",
    "rivals_note",
    "session_trust",
    "summary",
    "timeline",
]


def _entry_points(facts: Facts) -> tuple[list[EntryPoint], list[str]]:
    order = (Severity.HIGH, Severity.MEDIUM, Severity.LOW)
    points = [
        p
        for p in [*reading.items(facts.entry_points), *reading.items(facts.anonymous_access)]
        if isinstance(p, EntryPoint)
    ]
    points.sort(key=lambda p: order.index(p.severity))
    if len(points) > MAX_LIST:
        return points[:MAX_LIST], [f"entry points: {len(points) - MAX_LIST} more not listed"]
    return points, []


def _unknowns(notes: Iterable[object]) -> list[str]:
    found: list[str] = []
    for note in notes:
        text = clean(note, MAX_LONG)
        if text and text not in found:
            found.append(text)
    if len(found) > MAX_LIST:
        found = [*found[: MAX_LIST - 1], f"{len(found) - MAX_LIST + 1} more unknowns not listed"]
    return found


def investigate(facts: Facts) -> Investigation:
    """The investigation of one detection: ``Complete`` when nothing is unknown, else ``Partial``.

    ``Failed`` is the investigator's to write, when gathering failed as a whole.
    """
    detection = facts.detection
    image, image_notes = image_part(facts)
    found = origin(detection, image)
    how = method(detection)
    who, who_notes = provenance(facts, how)
    twins = twin_paths(facts)
    paths, path_notes = restart_paths(facts, twins)
    points, point_notes = _entry_points(facts)
    moments, time_notes = timeline(facts, who)
    parts = Parts(found, who, image, paths, points, twins)
    origin_notes = []
    told = detection.spec.evidence.executable_origin not in (None, ExecutableOrigin.UNKNOWN)
    if found is Origin.UNKNOWN:
        origin_notes.append(
            "where the code came from is unknown: the image's registry was not classified "
            "and the agent did not report where the executable lives"
        )
    elif not told and detection.spec.layer is not Layer.ADMISSION:
        origin_notes.append(
            "the agent did not report whether the executable was in the image or written after "
            "start: the origin rests on the image's registry alone"
        )
    unknowns = _unknowns(
        [
            *reading.items(facts.unknowns),
            *image_notes,
            *origin_notes,
            *who_notes,
            *path_notes,
            *point_notes,
            *time_notes,
        ]
    )
    return Investigation(
        state=InvestigationState.PARTIAL if unknowns else InvestigationState.COMPLETE,
        origin=found,
        via=how.via,
        summary=summary(facts, parts),
        started_at=clean(facts.started_at, 64),
        completed_at=clean(facts.now, 64),
        image=image,
        provenance=who,
        restart_paths=paths,
        entry_points=points,
        checklist=checklist(facts, parts),
        timeline=moments,
        unknowns=unknowns,
        cost=Cost(
            api_calls=max(0, int(facts.api_calls)),
            registry_calls=max(0, int(facts.registry_calls)),
            cached=bool(facts.registry_cached),
        ),
    )
