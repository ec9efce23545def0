"""``MinerDetection``: one finding, with the evidence an incident responder needs."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import ClassVar, Literal

from pydantic import Field

from minerguard.api.investigation import Entry, ExecutableOrigin, Investigation
from minerguard.api.meta import ApiModel, ObjectMeta, ResourceInfo
from minerguard.api.policy import RuntimeAction


class Layer(StrEnum):
    """Which layer found it."""

    ADMISSION = "Admission"
    EXEC = "Exec"
    BEHAVIOUR = "Behaviour"
    NETWORK = "Network"


class Phase(StrEnum):
    """Where the response to a detection stands."""

    PENDING = "Pending"
    ACTED = "Acted"
    ALERTED = "Alerted"
    SUPPRESSED = "Suppressed"
    SKIPPED = "Skipped"
    FAILED = "Failed"


@dataclass(frozen=True, slots=True)
class ActionTaken:
    """One entry of ``status.actionsTaken``: ``Name`` or ``Name: detail`` on the wire.

    The operator appends one as each step completes (``DeletePod: grace 0s``, ``StopOwner:
    Deployment/web scaled 3->0``, ``Isolate: failed``), the node agent writes its own
    (``KillProcess: killed ...``). They are read back to resume a handling cut short and to
    count destructive actions after a restart, so the format is written and parsed here only.
    """

    name: str
    detail: str = ""

    FAILED: ClassVar[str] = "failed"
    """The detail of a step that failed for good (the detection's message says why)."""

    @classmethod
    def parse(cls, text: str) -> ActionTaken:
        """The entry a status string records (the name ends at the first colon)."""
        name, _, detail = text.partition(":")
        return cls(name.strip(), detail.strip())

    @classmethod
    def parse_all(cls, raw: object) -> list[ActionTaken]:
        """Entries of a raw ``actionsTaken`` value as read from the cluster (junk skipped)."""
        entries: Sequence[object] = raw if isinstance(raw, list) else ()
        return [cls.parse(text) for text in entries if isinstance(text, str)]

    def __str__(self) -> str:
        return f"{self.name}: {self.detail}" if self.detail else self.name

    @property
    def action(self) -> RuntimeAction | None:
        """The runtime action recorded; None for anything else (the agent's ``RefuseExec``)."""
        try:
            return RuntimeAction(self.name)
        except ValueError:
            return None

    @property
    def failed(self) -> bool:
        """Whether the step failed for good."""
        return self.detail == self.FAILED


class Reason(ApiModel):
    """A signal that contributed to the score."""

    signal: str = Field(description="Signal name, e.g. pool-url or cpu-saturation.")
    detail: str = Field(description="What was seen, for a person.")
    weight: float = Field(default=0.0, description="Contribution to the score.")


class Connection(ApiModel):
    """A network connection of the process."""

    remote_address: str
    remote_port: int
    local_port: int | None = None
    state: str | None = None
    host: str | None = Field(default=None, description="Pool host the address resolved from.")
    protocol: str | None = Field(
        default=None,
        description="What the first bytes showed: e.g. stratum mining.subscribe, TLS SNI name.",
    )


class ProcessLink(ApiModel):
    """One ancestor of the offending process, as the node agent saw it."""

    pid: int
    executable: str | None = None
    command_line: str | None = None
    started_at: str | None = None
    exited: bool | None = Field(
        default=None,
        description=(
            "True when this ancestor had already exited when the agent looked (an exec'd "
            "shell that left its child running): the agent remembered it from process events "
            "rather than reading it from /proc. Its command line is absent when it exited "
            "before the agent could read it."
        ),
    )


class Evidence(ApiModel):
    """What the node saw, where the layer saw a process."""

    pid: int | None = None
    executable: str | None = None
    command_line: str | None = None
    cgroup: str | None = None
    container_id: str | None = Field(default=None, alias="containerID")
    cpu_fraction: float | None = Field(default=None, description="Mean CPU over the window.")
    connections: list[Connection] = Field(default_factory=list)
    lookups: list[str] = Field(
        default_factory=list, description="Pool domains the pod resolved: name -> addresses."
    )
    lineage: list[ProcessLink] = Field(
        default_factory=list,
        description=(
            "The process's ancestors in the container, parent first, up to the container's "
            "first process or the process an exec session started."
        ),
    )
    entry: Entry | None = Field(
        default=None,
        description="Init: descends from the container's first process; Exec: from an exec'd one.",
    )
    entry_detail: str | None = Field(
        default=None,
        description="Why entry is Unknown: e.g. an orphan adopted by init, a shared pid namespace.",
    )
    executable_origin: ExecutableOrigin | None = Field(
        default=None, description="Image, WrittenAfterStart (not in the image) or Downloaded."
    )
    downloaded_by: str | None = Field(
        default=None, description="The ancestor that fetched it (curl, wget, python...)."
    )


class OwnerReference(ApiModel):
    """The workload that owns the pod (top of the owner chain where known)."""

    api_version: str | None = None
    kind: str
    name: str
    uid: str | None = None


class MinerDetectionSpec(ApiModel):
    """What was found."""

    pod_name: str | None = Field(default=None, description="Pod (or workload object) name.")
    pod_uid: str | None = Field(default=None, alias="podUID")
    object_kind: str = Field(default="Pod", description="Kind of the object that was checked.")
    container: str | None = None
    node: str | None = None
    image: str | None = None
    image_digest: str | None = None
    owner: OwnerReference | None = None
    layer: Layer
    score: float = Field(ge=0)
    reasons: list[Reason] = Field(default_factory=list)
    evidence: Evidence = Field(default_factory=Evidence)
    policy: str | None = Field(default=None, description="The MinerPolicy that matched.")
    mode: Literal["Enforce", "Audit"] = "Enforce"
    requesting_user: str | None = Field(default=None, description="Who asked (admission).")
    requesting_groups: list[str] = Field(default_factory=list)
    requester_authenticated: bool | None = Field(
        default=None,
        description=(
            "Admission: whether requestingUser and requestingGroups were vouched for. true: "
            "the webhook authenticated its caller (the API server's client certificate). "
            "false: they are what an AdmissionReview from an unauthenticated caller claimed."
        ),
    )
    actions_requested: list[str] = Field(default_factory=list)
    observed_at: str | None = None


class MinerDetectionStatus(ApiModel):
    """What was done about it."""

    phase: Phase = Phase.PENDING
    action: str | None = Field(default=None, description="Summary of the actions taken.")
    actions_taken: list[str] = Field(
        default_factory=list,
        description='Steps done, in order, each "Action" or "Action: detail".',
    )
    message: str | None = None
    acted_at: str | None = None
    occurrences: int = Field(default=1, ge=1, description="Duplicates folded into this one.")
    last_seen: str | None = Field(default=None, description="When the latest duplicate was seen.")
    investigation: Investigation | None = Field(
        default=None,
        description="How it got in, who ran it, what brings it back (filled by the operator).",
    )


class MinerDetection(ApiModel, ResourceInfo):
    """A namespaced finding, in the pod's namespace."""

    plural: ClassVar[str] = "minerdetections"
    singular: ClassVar[str] = "minerdetection"
    kind: ClassVar[str] = "MinerDetection"
    short_names: ClassVar[tuple[str, ...]] = ("md",)
    namespaced: ClassVar[bool] = True

    api_version: Literal["minerguard.io/v1alpha1"] = "minerguard.io/v1alpha1"
    kind_: Literal["MinerDetection"] = Field(default="MinerDetection", alias="kind")
    metadata: ObjectMeta = Field(default_factory=ObjectMeta)
    spec: MinerDetectionSpec
    status: MinerDetectionStatus | None = None
