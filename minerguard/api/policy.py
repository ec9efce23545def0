"""``MinerPolicy``: what minerguard looks for, where, and what it does about it."""

from __future__ import annotations

import ipaddress
from enum import StrEnum
from typing import ClassVar, Literal

from pydantic import Field, model_validator

from minerguard.api.investigation import EntryPoint
from minerguard.api.meta import (
    ApiModel,
    Condition,
    LabelSelector,
    ObjectMeta,
    ResourceInfo,
)


class Mode(StrEnum):
    """Enforce acts on what it finds; Audit only reports."""

    ENFORCE = "Enforce"
    AUDIT = "Audit"


class AdmissionAction(StrEnum):
    """What the webhook does with a matching object in Enforce mode."""

    DENY = "Deny"
    WARN = "Warn"


class RuntimeAction(StrEnum):
    """What the agent and the operator do with a runtime detection in Enforce mode."""

    # Declaration order is run order: a new action goes in at its place. Its operator handler is
    # one entry in minerguard_operator.actions.HANDLERS; `destructive` below says whether the
    # rate limit counts it (yes unless said otherwise); its RBAC is in the chart's operator role.
    ALERT = "Alert"
    KILL_PROCESS = "KillProcess"
    ISOLATE = "Isolate"
    QUARANTINE_IMAGE = "QuarantineImage"
    STOP_OWNER = "StopOwner"
    DELETE_POD = "DeletePod"

    @property
    def destructive(self) -> bool:
        """Whether it changes a workload, and so counts against the policy's ``rateLimit``.

        Every action but ``Alert`` is: said by exclusion, so a new action is counted by the
        circuit breaker unless it is declared harmless here.
        """
        return self is not RuntimeAction.ALERT

    @property
    def by_agent(self) -> bool:
        """Whether the node agent carries it out (rate-limited by itself), not the operator."""
        return self is RuntimeAction.KILL_PROCESS


class RegistryFailure(StrEnum):
    """What admission does when an image's entrypoint cannot be read from its registry."""

    ALLOW = "Allow"
    DENY = "Deny"


class SignatureSet(ApiModel):
    """Signatures a policy adds to (or uses instead of) the built-in bundle.

    Patterns are RE2 syntax (linear-time; no backreferences or look-arounds) and are matched
    against normalised text: Unicode NFKC with confusables folded, base64 blobs decoded.
    """

    binaries: list[str] = Field(
        default_factory=list, description="Executable basenames (case-insensitive)."
    )
    options: list[str] = Field(
        default_factory=list,
        description="Miner-specific command-line options, e.g. --donate-level.",
    )
    argument_patterns: list[str] = Field(
        default_factory=list,
        description="RE2 patterns searched in the command line; a match alone denies.",
    )
    images: list[str] = Field(
        default_factory=list,
        description="Image repositories that ship a miner, e.g. docker.io/example/miner.",
    )
    pool_hosts: list[str] = Field(
        default_factory=list, description="Mining pool domains, matched as suffixes."
    )
    pool_ports: list[int] = Field(default_factory=list, description="Mining pool TCP ports.")
    wallet_patterns: list[str] = Field(
        default_factory=list, description="RE2 patterns matching one whole wallet token."
    )

    @model_validator(mode="after")
    def _ports_in_range(self) -> SignatureSet:
        for index, port in enumerate(self.pool_ports):
            if not 0 < port < 65536:
                raise ValueError(f"poolPorts[{index}]: {port} is not a TCP port (1-65535)")
        return self


class Behaviour(ApiModel):
    """Thresholds of the node agent's behavioural score."""

    score_threshold: float = Field(
        default=1.0, gt=0, le=10, description="Score at which behaviour becomes a detection."
    )
    window_seconds: int = Field(
        default=120, ge=10, le=3600, description="Sliding window the score is computed over."
    )
    cpu_fraction: float = Field(
        default=0.8,
        gt=0,
        le=1,
        description="Fraction of the container's CPU limit (or of a core) counted as saturated.",
    )


class NetworkEnforcement(StrEnum):
    """Which mechanism stops covered pods' traffic to mining pools."""

    AUTO = "Auto"
    """The strongest the cluster serves: AdminNetworkPolicy, else Cilium, else Calico, else the
    node agent's nftables table."""
    ADMIN_NETWORK_POLICY = "AdminNetworkPolicy"
    CILIUM = "Cilium"
    CALICO = "Calico"
    NODE = "Node"
    """The node agent's own nftables table (CNI-agnostic)."""


class Network(ApiModel):
    """The network layer: pool lookups, connections and first bytes seen, pool traffic stopped."""

    block_pool_traffic: bool = Field(
        default=False,
        description=(
            "Stop covered pods' egress to pool ports and to addresses learned from pool-domain"
            " lookups. Enforce mode blocks; Audit mode records what would have been blocked."
        ),
    )
    enforcement: NetworkEnforcement = Field(
        default=NetworkEnforcement.AUTO, description="Which mechanism blocks (Auto: strongest)."
    )
    inspect_first_bytes: bool = Field(
        default=False,
        description=(
            "Read the first payload of new TCP flows of covered pods: stratum and JSON-RPC"
            " login on any port, the TLS server name against pool domains."
        ),
    )
    pool_networks: list[str] = Field(
        default_factory=list,
        max_length=100,
        description=(
            "Pool networks (CIDRs, e.g. 203.0.113.7/32; at most /16 for IPv4, /32 for IPv6)"
            " denied cluster-wide with blockPoolTraffic, on every port. Addresses the node agent"
            " learns from pool-domain lookups are blocked on that node only: a node's claim"
            " never becomes a cluster-wide block."
        ),
    )

    @model_validator(mode="after")
    def _networks_are_cidrs(self) -> Network:
        for index, text in enumerate(self.pool_networks):
            try:
                network = ipaddress.ip_network(text, strict=False)
            except ValueError as err:
                raise ValueError(f"poolNetworks[{index}]: {text!r} is not a CIDR") from err
            widest = 16 if network.version == 4 else 32
            if network.prefixlen < widest:  # a typo'd /0 would cut the cluster off
                raise ValueError(
                    f"poolNetworks[{index}]: {text!r} is wider than /{widest}; list the pool's"
                    " own addresses"
                )
        return self


class Actions(ApiModel):
    """What each layer does in Enforce mode."""

    admission: AdmissionAction = Field(default=AdmissionAction.DENY)
    runtime: list[RuntimeAction] = Field(
        default_factory=lambda: [RuntimeAction.ALERT, RuntimeAction.DELETE_POD],
        description="Runtime actions; they run in the order of the enum, whatever the order here.",
    )
    pod_deletion_grace_seconds: int = Field(default=0, ge=0, le=3600)
    on_registry_failure: RegistryFailure = Field(
        default=RegistryFailure.ALLOW,
        description="Admission verdict when an image's entrypoint cannot be resolved.",
    )


class Exemptions(ApiModel):
    """Workloads the policy never acts on."""

    images: list[str] = Field(
        default_factory=list,
        description=(
            "Images never judged by their own entrypoint: repository@sha256:digest (preferred:"
            " that one image) or a name pattern, registry host and repository matched"
            " separately; * never crosses / (in the host, never . or :) and a whole segment **"
            " spans segments. A command or args the pod sets are still judged at admission."
        ),
    )
    namespaces: list[str] = Field(default_factory=list)
    pod_labels: LabelSelector | None = Field(
        default=None, description="Pods matching this selector are exempt."
    )
    command_patterns: list[str] = Field(
        default_factory=list, description="RE2 patterns; a matching command line is exempt."
    )


class SystemAdmission(StrEnum):
    """What the system namespaces' webhook entry does with evidence in an excluded namespace."""

    DENY_CONCLUSIVE = "DenyConclusive"
    OFF = "Off"


class SystemRuntime(StrEnum):
    """What the node agent does in an excluded namespace."""

    ALERT = "Alert"
    KILL_CONCLUSIVE = "KillConclusive"
    OFF = "Off"


class SystemNamespaces(ApiModel):
    """How the namespaces in ``excludedNamespaces`` are still watched, without risking them.

    Excluding a namespace (kube-system) keeps an outage or a false positive of minerguard
    from stopping it; campaigns deploy exactly there. So an excluded namespace is still judged,
    more narrowly: admission by the chart's second webhook entry (``failurePolicy: Ignore``, a
    short timeout: an outage never blocks it), which refuses only evidence scoring at least
    ``conclusiveScore``; runtime by the node agent, which alerts and, with ``KillConclusive``,
    kills a process whose own exec evidence is conclusive. No operator action (deleting,
    stopping, isolating) is ever taken there.
    """

    admission: SystemAdmission = Field(
        default=SystemAdmission.DENY_CONCLUSIVE,
        description=(
            "DenyConclusive: the system entry refuses objects whose evidence scores at least"
            " conclusiveScore (Enforce mode and actions.admission Deny; weaker evidence is"
            " admitted with a warning and recorded). Off: not judged at admission."
        ),
    )
    runtime: SystemRuntime = Field(
        default=SystemRuntime.ALERT,
        description=(
            "Alert: the agent records detections there (no operator action). KillConclusive:"
            " also kills a process whose exec evidence scores at least conclusiveScore"
            " (Enforce mode). Off: the agent ignores those namespaces."
        ),
    )
    conclusive_score: float = Field(
        default=2.0,
        ge=1.0,
        le=100.0,
        description=(
            "Signature score that counts as conclusive: twice the deny threshold by default,"
            " i.e. at least two independent strong kinds of evidence (a pool URL and miner"
            " options, a known miner image and its pool), never one signal alone."
        ),
    )


class RateLimit(ApiModel):
    """Circuit breaker on destructive actions: a false-positive storm turns into alerts."""

    max_actions: int = Field(default=10, ge=0, description="Destructive actions per window.")
    window_seconds: int = Field(default=600, ge=1)


class Retention(ApiModel):
    """How long detections live and how duplicates fold together."""

    ttl_seconds: int = Field(default=7 * 24 * 3600, ge=60)
    dedup_window_seconds: int = Field(default=600, ge=0)


class MinerPolicySpec(ApiModel):
    """Desired state of a MinerPolicy."""

    namespace_selector: LabelSelector | None = Field(
        default=None, description="Namespaces covered; all when unset."
    )
    excluded_namespaces: list[str] = Field(
        default_factory=lambda: ["kube-system"],
        description=(
            "Namespaces not covered by the rest of this spec; watched only as systemNamespaces"
            " says (conclusive evidence at admission, alerts at runtime)."
        ),
    )
    system_namespaces: SystemNamespaces = Field(default_factory=SystemNamespaces)
    mode: Mode = Field(default=Mode.ENFORCE)
    builtin_signatures: bool = Field(default=True, description="Use the built-in bundle.")
    signatures: SignatureSet = Field(default_factory=SignatureSet)
    behaviour: Behaviour = Field(default_factory=Behaviour)
    actions: Actions = Field(default_factory=Actions)
    exemptions: Exemptions = Field(default_factory=Exemptions)
    network: Network = Field(default_factory=Network)
    trusted_registries: list[str] = Field(
        default_factory=list,
        description=(
            "Registries and repository prefixes that are ours, e.g. registry.example.com or "
            "ghcr.io/acme/. An investigation calls an image from anywhere else foreign."
        ),
    )
    rate_limit: RateLimit = Field(default_factory=RateLimit)
    retention: Retention = Field(default_factory=Retention)
    dry_run: bool = Field(default=False, description="Record what would be done, do nothing.")


class PolicyCounts(ApiModel):
    """Running totals for a policy."""

    detections: int = 0
    actions: int = 0
    suppressed_actions: int = Field(default=0, description="Actions held back by the rate limit.")


class QuarantinedImage(ApiModel):
    """An image digest the operator quarantined after a runtime detection."""

    digest: str = Field(pattern=r"^sha256:[0-9a-f]{64}$")
    image: str | None = None
    detection: str | None = Field(default=None, description="namespace/name of the detection.")
    since: str | None = None


class NetworkStatus(ApiModel):
    """What the network layer enforces for this policy, and where."""

    enforcement: str | None = Field(
        default=None, description="The mechanism in effect (AdminNetworkPolicy, Cilium, ...)."
    )
    objects: list[str] = Field(
        default_factory=list, description="Policy objects rendered and applied, kind/name."
    )
    blocked_ports: list[int] = Field(default_factory=list)
    blocked_domains: list[str] = Field(default_factory=list)
    not_expressed: list[str] = Field(
        default_factory=list, description="What the mechanism in effect cannot express, in words."
    )
    enforced: bool | None = Field(
        default=None,
        description=(
            "Whether the objects block now; false in Audit, dryRun or while the circuit is open"
            " (blockedPorts and blockedDomains then say what would be blocked)."
        ),
    )
    message: str | None = None


class MinerPolicyStatus(ApiModel):
    """Observed state of a MinerPolicy."""

    conditions: list[Condition] = Field(default_factory=list)
    observed_generation: int | None = None
    signature_count: int | None = None
    bundle_version: str | None = None
    counts: PolicyCounts = Field(default_factory=PolicyCounts)
    quarantined_images: list[QuarantinedImage] = Field(
        default_factory=list, description="Digests that admission refuses anywhere."
    )
    circuit_open_until: str | None = Field(
        default=None, description="Destructive actions are suspended until this time."
    )
    exemptions: list[str] = Field(
        default_factory=list,
        description="What each exemption covers, in words (minerguard scan --explain shows "
        "which applied to an object).",
    )
    network: NetworkStatus | None = None
    anonymous_access: list[EntryPoint] = Field(
        default_factory=list,
        description=(
            "RBAC bindings that give anything to anonymous users (system:anonymous, "
            "system:unauthenticated), or rights to every user or every service account "
            "(system:authenticated, system:serviceaccounts[:NS]), checked cluster-wide by the "
            "operator; the AccessReviewed condition says whether it could be read."
        ),
    )


class MinerPolicy(ApiModel, ResourceInfo):
    """A cluster-scoped policy."""

    plural: ClassVar[str] = "minerpolicies"
    singular: ClassVar[str] = "minerpolicy"
    kind: ClassVar[str] = "MinerPolicy"
    short_names: ClassVar[tuple[str, ...]] = ("mp",)
    namespaced: ClassVar[bool] = False

    api_version: Literal["minerguard.io/v1alpha1"] = "minerguard.io/v1alpha1"
    kind_: Literal["MinerPolicy"] = Field(default="MinerPolicy", alias="kind")
    metadata: ObjectMeta = Field(default_factory=ObjectMeta)
    spec: MinerPolicySpec = Field(default_factory=MinerPolicySpec)
    status: MinerPolicyStatus | None = None
