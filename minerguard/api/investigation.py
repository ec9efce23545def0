"""A MinerDetection's ``status.investigation``: how it got in, who ran it, what brings it back.

The operator fills it within seconds of a detection, from the registry, the API server, the
webhook's admission and exec traces and the node agent's evidence. Every part says how it was
established (:class:`Basis`) and how sure it is (:class:`Confidence`), and what could not be
found out is said in ``unknowns`` rather than left blank: a responder must be able to tell
"nobody exec'd into the pod" from "we could not see".

Also here: the two wire formats the webhook writes for the operator to read back, the
``minerguard.io/created-by`` stamp and the exec-session Event, so both sides share one parser.
"""

from __future__ import annotations

from enum import StrEnum

import orjson
from pydantic import Field, ValidationError

from minerguard.api.meta import ApiModel

CREATED_BY_ANNOTATION = "minerguard.io/created-by"
"""Who created the object: stamped on CREATE by the opt-in mutating webhook (JSON Actor)."""
EXEC_SESSION_REASON = "ExecSession"
"""Reason of the Event the webhook records on a pod for every ``kubectl exec``/``attach``."""
EXEC_SESSION_ANNOTATION = "minerguard.io/exec-session"
"""Annotation of that Event holding the session as JSON (:class:`ExecSession`)."""
MAX_LIST = 50
"""No list of an investigation holds more than this; a cut is said in ``unknowns``."""


class Basis(StrEnum):
    """How a part of the investigation was established."""

    REGISTRY = "Registry"
    ADMISSION = "Admission"
    STAMP = "Stamp"
    MANAGED_FIELDS = "ManagedFields"
    EXEC_TRACE = "ExecTrace"
    AGENT = "Agent"
    API = "API"
    ACCESS_REVIEW = "SubjectAccessReview"
    POLICY = "Policy"


class Confidence(StrEnum):
    """How sure: ``Certain`` was read, ``Likely`` was inferred, ``Unknown`` could not be told."""

    CERTAIN = "Certain"
    LIKELY = "Likely"
    UNKNOWN = "Unknown"


class Origin(StrEnum):
    """Where the offending code came from (the ``ORIGIN`` column)."""

    FOREIGN = "Foreign"
    """An image from a registry that is not one of ours."""
    OURS = "Ours"
    """One of our images carries it: the image was modified (registry or CI)."""
    RUNTIME = "Runtime"
    """Written into the running container: not in the image."""
    UNKNOWN = "Unknown"


class Via(StrEnum):
    """How it was started (the ``VIA`` column)."""

    APPLY = "Apply"
    """A workload or pod someone created."""
    EXEC = "Exec"
    """A ``kubectl exec``/``attach`` session."""
    DROPPER = "Dropper"
    """A process inside the pod fetched and ran it (a compromised service)."""
    UNKNOWN = "Unknown"


class ExecutableOrigin(StrEnum):
    """Where the offending executable lives, from the node agent's view of the overlay."""

    IMAGE = "Image"
    WRITTEN_AFTER_START = "WrittenAfterStart"
    DOWNLOADED = "Downloaded"
    UNKNOWN = "Unknown"


class Entry(StrEnum):
    """How the offending process's ancestry entered the container."""

    INIT = "Init"
    """It descends from the container's own first process."""
    EXEC = "Exec"
    """It descends from a process the runtime started in the container later (exec/attach)."""
    UNKNOWN = "Unknown"


class Actor(ApiModel):
    """Someone who did something to an object, and how we know."""

    username: str | None = None
    groups: list[str] = Field(default_factory=list)
    manager: str | None = Field(
        default=None, description="managedFields: the field manager (kubectl, a controller)."
    )
    operation: str | None = Field(default=None, description="CREATE, UPDATE, Apply...")
    time: str | None = None
    basis: Basis = Basis.API

    @classmethod
    def parse_stamp(cls, raw: str | None) -> Actor | None:
        """The actor a ``minerguard.io/created-by`` value records; None when absent or junk."""
        if not raw:
            return None
        try:
            found = cls.model_validate(orjson.loads(raw))
        except (orjson.JSONDecodeError, ValidationError, TypeError):
            return None
        return found.model_copy(update={"basis": Basis.STAMP})

    def stamp(self) -> str:
        """The annotation value recording this actor."""
        return orjson.dumps(self.to_k8s()).decode()


class ExecSession(ApiModel):
    """One ``kubectl exec``/``attach`` as the webhook saw its CONNECT."""

    username: str | None = None
    groups: list[str] = Field(default_factory=list)
    uid: str | None = Field(default=None, description="The requesting user's uid.")
    time: str | None = None
    subresource: str = Field(default="exec", description="exec or attach.")
    container: str | None = None
    command: list[str] = Field(default_factory=list)
    tty: bool | None = None
    stdin: bool | None = None
    allowed: bool = Field(default=True, description="Whether the webhook let it through.")
    authenticated: bool | None = Field(
        default=None,
        description=(
            "Whether the webhook authenticated its caller as the API server (client "
            "certificate): false, the user is only what the posted review claimed."
        ),
    )
    event: str | None = Field(default=None, description="The Event that recorded it.")

    @classmethod
    def parse_event(cls, event: dict[str, object]) -> ExecSession | None:
        """The session an exec-session Event records; None for any other or malformed Event."""
        meta = event.get("metadata")
        annotations = meta.get("annotations") if isinstance(meta, dict) else None
        raw = annotations.get(EXEC_SESSION_ANNOTATION) if isinstance(annotations, dict) else None
        if not isinstance(raw, str):
            return None
        try:
            found = cls.model_validate(orjson.loads(raw))
        except (orjson.JSONDecodeError, ValidationError, TypeError):
            return None
        name = meta.get("name") if isinstance(meta, dict) else None
        return found.model_copy(update={"event": name}) if isinstance(name, str) else found


class HistoryStep(ApiModel):
    """One entry of the image config's ``history``."""

    created: str | None = None
    created_by: str | None = None
    empty_layer: bool = False
    comment: str | None = None
    suspect: bool = Field(default=False, description="This step adds what was detected.")


class ImageProvenance(ApiModel):
    """Whose image it is and where the offending executable came from."""

    image: str | None = None
    registry: str | None = None
    repository: str | None = None
    digest: str | None = None
    trusted: bool | None = Field(
        default=None, description="The registry/prefix is one of ours (policy trustedRegistries)."
    )
    trusted_by: str | None = Field(default=None, description="The trustedRegistries entry.")
    created: str | None = None
    labels: dict[str, str] = Field(
        default_factory=dict, description="OCI labels: source, revision, created..."
    )
    history: list[HistoryStep] = Field(default_factory=list)
    tags: list[str] = Field(
        default_factory=list, description="Tags of the repository that point at the digest now."
    )
    tags_checked: int | None = Field(default=None, description="How many tags were compared.")
    tags_complete: bool | None = Field(
        default=None, description="false: the listing was cut at its bound."
    )
    executable: ExecutableOrigin = ExecutableOrigin.UNKNOWN
    downloaded_by: str | None = Field(
        default=None, description="The process that fetched it (curl, wget, python...)."
    )
    basis: list[Basis] = Field(default_factory=list)
    confidence: Confidence = Confidence.UNKNOWN


class Provenance(ApiModel):
    """Who started it and how."""

    via: Via = Via.UNKNOWN
    workload_created_by: Actor | None = None
    workload_changed_by: Actor | None = None
    pod_created_by: Actor | None = None
    exec_session: ExecSession | None = None
    dropper: str | None = Field(
        default=None, description="The pod process that fetched and ran it."
    )
    basis: list[Basis] = Field(default_factory=list)
    confidence: Confidence = Confidence.UNKNOWN


class LinkState(StrEnum):
    """Where one restart path stands now."""

    STOPPED = "Stopped"
    ACTIVE = "Active"
    GONE = "Gone"
    UNKNOWN = "Unknown"


class RestartPath(ApiModel):
    """Something that would bring the miner back, and what was or should be done about it."""

    kind: str = Field(description="Owner kind, CronJob, Pod, RegistryTag...")
    name: str
    namespace: str | None = None
    relation: str = Field(description="owner, cronjob, same-digest, registry-tag.")
    state: LinkState = LinkState.UNKNOWN
    response: str | None = Field(default=None, description="What the response did to it.")
    remedy: str | None = Field(default=None, description="What to do, as a command where one.")


class Severity(StrEnum):
    """How wide a door is."""

    HIGH = "High"
    MEDIUM = "Medium"
    LOW = "Low"


class EntryPoint(ApiModel):
    """A door that was open: exposure, permissions, host access."""

    kind: str = Field(
        description=(
            "Service, Ingress, Gateway, HTTPRoute, GRPCRoute, TLSRoute, TCPRoute, ServiceAccount, "
            "RuntimeSocket, Privileged, HostPID, HostNetwork, AnonymousBinding, BroadBinding."
        )
    )
    name: str
    detail: str
    severity: Severity = Severity.MEDIUM
    remedy: str
    basis: Basis = Basis.API


class CheckState(StrEnum):
    """Where a checklist item stands."""

    DONE = "Done"
    OPEN = "Open"
    NOT_APPLICABLE = "NotApplicable"
    UNKNOWN = "Unknown"


class CheckItem(ApiModel):
    """One thing a responder must see done."""

    item: str
    state: CheckState
    detail: str | None = None


class TimelineEntry(ApiModel):
    """One moment of the incident, in order."""

    time: str
    kind: str = Field(
        description="ImageBuilt, Admission, ExecSession, ProcessStart, Detection, Action."
    )
    detail: str
    actor: str | None = None


class Cost(ApiModel):
    """What the investigation cost: bounded, and cached across detections of one digest."""

    api_calls: int = 0
    registry_calls: int = 0
    cached: bool = Field(default=False, description="The image part came from the cache.")


class InvestigationState(StrEnum):
    """Whether every part could be established."""

    COMPLETE = "Complete"
    PARTIAL = "Partial"
    FAILED = "Failed"


class Investigation(ApiModel):
    """How the miner got in, who ran it, what still lets it back, and what to do."""

    state: InvestigationState
    origin: Origin = Origin.UNKNOWN
    via: Via = Via.UNKNOWN
    summary: str = Field(description="One paragraph a responder reads first.")
    started_at: str | None = None
    completed_at: str | None = None
    image: ImageProvenance | None = None
    provenance: Provenance = Field(default_factory=Provenance)
    restart_paths: list[RestartPath] = Field(default_factory=list)
    entry_points: list[EntryPoint] = Field(default_factory=list)
    checklist: list[CheckItem] = Field(default_factory=list)
    timeline: list[TimelineEntry] = Field(default_factory=list)
    unknowns: list[str] = Field(
        default_factory=list, description="What could not be established, and why."
    )
    cost: Cost = Field(default_factory=Cost)
