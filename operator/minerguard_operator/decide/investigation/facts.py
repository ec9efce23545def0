"""What the investigator gathered for one detection, and the conclusions drawn from it.

Its own module so every part of the decision can take :class:`Facts` without importing the
package that assembles them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from minerguard.api.detection import MinerDetection
from minerguard.api.investigation import (
    EntryPoint,
    ExecSession,
    ImageProvenance,
    Origin,
    Provenance,
    RestartPath,
)


@dataclass(frozen=True, slots=True)
class Facts:
    """Everything the investigator gathered for one detection; the decision is pure over it."""

    detection: MinerDetection
    started_at: str
    now: str
    pod: Mapping[str, Any] | None = None
    owners: Sequence[Mapping[str, Any]] = ()
    cron_jobs: Sequence[Mapping[str, Any]] = ()
    same_digest_pods: Sequence[Mapping[str, Any]] = ()
    exec_sessions: Sequence[ExecSession] = ()
    image: ImageProvenance | None = None
    entry_points: Sequence[EntryPoint] = ()
    anonymous_access: Sequence[EntryPoint] = ()
    quarantined: bool | None = None
    unknowns: Sequence[str] = ()
    api_calls: int = 0
    registry_calls: int = 0
    registry_cached: bool = False
    trust_stamps: bool = False
    """Whether the stamping (mutating) webhook and its guard are on, so a created-by stamp is
    its word; off, a stamp is whatever the object's creator wrote (the operator's
    ``creator_stamps_trusted``)."""
    trust_exec_sessions: bool = False
    """Whether only the webhook may write exec-session Events (the chart's
    ValidatingAdmissionPolicy, the operator's ``exec_sessions_guarded``); off, anyone who may
    create Events in the namespace can forge one naming someone else."""


@dataclass(frozen=True, slots=True)
class Parts:
    """The conclusions the checklist and the summary are built from."""

    origin: Origin
    provenance: Provenance
    image: ImageProvenance | None
    paths: Sequence[RestartPath]
    points: Sequence[EntryPoint]
    twins: Sequence[RestartPath] = ()
    """Every other pod of the digest (``paths`` may have been cut): what still runs it."""
