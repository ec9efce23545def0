"""Where the offending code came from: a foreign image, one of ours, or written at runtime.

The registry's provenance (history, labels, tags) joined with the agent's view of the
executable, each list cut to a bound that keeps the suspect history steps.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from minerguard import images
from minerguard.api.detection import MinerDetection
from minerguard.api.investigation import (
    MAX_LIST,
    Basis,
    ExecutableOrigin,
    HistoryStep,
    ImageProvenance,
    Origin,
)
from minerguard_operator.decide.investigation.facts import Facts
from minerguard_operator.decide.investigation.reading import MAX_LONG, MAX_SCAN, clean


def origin(detection: MinerDetection, image: ImageProvenance | None) -> Origin:
    """Where the offending code came from.

    The agent's overlay view wins: a file written or downloaded after the container started is
    not in any image, whoever's. Otherwise the code is in the image (or, for an admission
    detection, in the image or the manifest), and the image's registry tells ours from foreign.
    """
    found = detection.spec.evidence.executable_origin
    if found in (ExecutableOrigin.WRITTEN_AFTER_START, ExecutableOrigin.DOWNLOADED):
        return Origin.RUNTIME
    trusted = image.trusted if image is not None else None
    if trusted is None:
        return Origin.UNKNOWN
    return Origin.OURS if trusted else Origin.FOREIGN


def image_part(facts: Facts) -> tuple[ImageProvenance | None, list[str]]:
    """The registry's provenance with the agent's view of the executable, all bounded."""
    spec = facts.detection.spec
    evidence = spec.evidence
    found = facts.image
    told = evidence.executable_origin not in (None, ExecutableOrigin.UNKNOWN)
    if found is None:
        if not told and not spec.image:
            return None, []
        found = ImageProvenance(image=spec.image, digest=spec.image_digest)
    notes = []
    basis = list(found.basis)
    updates: dict[str, Any] = {}
    if told and evidence.executable_origin is not None:
        updates["executable"] = evidence.executable_origin
        if Basis.AGENT not in basis:
            basis.append(Basis.AGENT)
    if evidence.downloaded_by:
        updates["downloaded_by"] = clean(evidence.downloaded_by, MAX_LONG)
    if len(found.tags) > MAX_LIST:
        notes.append(f"{len(found.tags) - MAX_LIST} more tags point at the digest (not listed)")
    history = [
        HistoryStep(
            created=clean(s.created, 64),
            created_by=clean(s.created_by, MAX_LONG),
            empty_layer=s.empty_layer,
            comment=clean(s.comment, MAX_LONG),
            suspect=s.suspect,
        )
        for s in found.history[:MAX_SCAN]
    ]
    if len(history) > MAX_LIST:
        notes.append(f"image history: {len(history) - MAX_LIST} steps not listed")
        history = _keep_suspect(history)
    labels = {
        (clean(k) or "?"): (clean(v, MAX_LONG) or "")
        for k, v in list(found.labels.items())[:MAX_LIST]
    }
    updates.update(
        {
            "image": clean(found.image, MAX_LONG),
            "registry": clean(found.registry),
            "repository": clean(found.repository),
            "digest": clean(found.digest, 80),
            "tags": [clean(t, 128) or "?" for t in found.tags[:MAX_LIST]],
            "history": history,
            "labels": labels,
            "basis": basis,
        }
    )
    return found.model_copy(update=updates), notes


def _keep_suspect(history: Sequence[HistoryStep]) -> list[HistoryStep]:
    """At most MAX_LIST steps, in order: every suspect one first, then the latest others."""
    keep = [i for i, step in enumerate(history) if step.suspect][:MAX_LIST]
    others = [i for i, step in enumerate(history) if not step.suspect]
    keep += others[len(others) - (MAX_LIST - len(keep)) :] if len(keep) < MAX_LIST else []
    return [history[i] for i in sorted(keep)]


def image_reference(image: ImageProvenance | None, spec_image: str | None) -> str:
    """The image as a responder names it: by its digest where the reference was a tag."""
    name = (image.image if image else None) or clean(spec_image, MAX_LONG) or "an unnamed image"
    digest = image.digest if image else None
    if digest and "@" not in name:
        return f"{images.parse(name).name}@{digest[:19]}…"
    return name


def suspect_step(image: ImageProvenance | None) -> str | None:
    """The first history step the registry reader flagged as suspect, if any."""
    for step in image.history if image else ():
        if step.suspect and step.created_by:
            return step.created_by
    return None
