"""The policies as the agent uses them: thresholds, pool indicators and runtime actions.

An :class:`AgentPolicy` is one ``minerguard.compiled_policy.CompiledPolicy`` with what the
agent derives from it, built once per policy generation and then only read;
:class:`AgentPolicies` holds those in force. Pool ports and hosts come from the compiled
engine's entries, so built-in and policy-defined ones are treated alike.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from minerguard import compiled_policy
from minerguard.api.policy import RuntimeAction, SystemRuntime
from minerguard.compiled_policy import CompiledPolicy
from minerguard.signatures.bundle import Kind
from node_agent.judge import scoring
from node_agent.records import PodRef


@dataclass(frozen=True)
class AgentPolicy:
    """One compiled policy with what the agent derives from it."""

    compiled: CompiledPolicy
    thresholds: scoring.Thresholds
    pool_ports: frozenset[int]
    pool_hosts: tuple[str, ...]

    @property
    def name(self) -> str:
        """The MinerPolicy's name."""
        return self.compiled.name

    @property
    def mode(self) -> str:
        """Enforce or Audit, as the detection records it."""
        return self.compiled.spec.mode.value

    @property
    def kills(self) -> bool:
        """Whether the agent itself should kill the process (Enforce and KillProcess)."""
        return (
            self.compiled.enforcing
            and RuntimeAction.KILL_PROCESS in self.compiled.spec.actions.runtime
        )

    def kills_at(self, score: float | None) -> bool:
        """Whether it kills a process judged ``score`` by its exec evidence (None: not exec).

        A system view (an excluded namespace, :func:`system_view`) kills only on conclusive
        exec evidence; behaviour and network findings there are alerts.
        """
        if not self.kills:
            return False
        if not self.compiled.system:
            return True
        return score is not None and score >= self.compiled.conclusive_score


def strictest(policies: Sequence[AgentPolicy]) -> AgentPolicy:
    """The policy a finding names among those that detected it (never empty).

    The shared definition (:func:`minerguard.compiled_policy.strictness`): an Enforce policy is
    named before an Audit one whatever their names or scores, so the agent kills, and the
    operator acts on the detection, whenever any of them would.
    """
    best = compiled_policy.strictest(p.compiled for p in policies)
    return next(p for p in policies if p.compiled is best)


def requested(policies: Sequence[AgentPolicy], score: float | None = None) -> tuple[str, ...]:
    """The runtime actions ``policies`` ask for together (the union of those that act).

    ``score``: the exec evidence's, for an exec finding. ``KillProcess`` stays only when a
    policy that acts would kill at that score (:meth:`AgentPolicy.kills_at`), so a system
    namespace's weak or behavioural finding never asks for a kill.
    """
    wanted = compiled_policy.runtime_actions(p.compiled for p in policies)
    if RuntimeAction.KILL_PROCESS in wanted and not any(p.kills_at(score) for p in policies):
        wanted = tuple(a for a in wanted if a is not RuntimeAction.KILL_PROCESS)
    return tuple(a.value for a in wanted)


def sensitive(policies: Sequence[AgentPolicy]) -> scoring.Thresholds:
    """The most sensitive behaviour thresholds of ``policies``: each one's lowest.

    The behaviour state is kept once per container, so it is kept under the thresholds that
    detect soonest; each policy then detects when the score reaches its own threshold.
    """
    return scoring.Thresholds(
        score_threshold=min(p.thresholds.score_threshold for p in policies),
        window_seconds=min(p.thresholds.window_seconds for p in policies),
        cpu_fraction=min(p.thresholds.cpu_fraction for p in policies),
    )


def from_compiled(compiled: CompiledPolicy) -> AgentPolicy:
    """Derive the agent's view of a compiled policy."""
    behaviour = compiled.spec.behaviour
    ports: set[int] = set()
    hosts: list[str] = []
    for entry in compiled.engine.entries:
        if entry.kind is Kind.POOL_PORT and entry.value.strip().isdigit():
            ports.add(int(entry.value))
        elif entry.kind is Kind.POOL_HOST:
            hosts.append(entry.value.strip().lower().rstrip("."))
    return AgentPolicy(
        compiled=compiled,
        thresholds=scoring.Thresholds(
            score_threshold=behaviour.score_threshold,
            window_seconds=float(behaviour.window_seconds),
            cpu_fraction=behaviour.cpu_fraction,
        ),
        pool_ports=frozenset(ports),
        pool_hosts=tuple(dict.fromkeys(hosts)),
    )


def system_view(compiled: CompiledPolicy) -> AgentPolicy | None:
    """The agent's view of ``compiled`` over the namespaces it excludes, if it asks for one.

    ``spec.systemNamespaces.runtime``: ``Alert`` records detections there and nothing else
    (no operator action, no network block, no exec gate); ``KillConclusive`` also kills a
    process whose exec evidence reaches ``conclusiveScore`` (:meth:`AgentPolicy.kills_at`).
    """
    view = compiled.system_view("runtime")
    if view is None:
        return None
    spec = view.spec
    runtime = [RuntimeAction.ALERT]
    if spec.system_namespaces.runtime is SystemRuntime.KILL_CONCLUSIVE:
        runtime.append(RuntimeAction.KILL_PROCESS)
    narrowed = spec.model_copy(
        update={
            "actions": spec.actions.model_copy(update={"runtime": runtime}),
            "network": spec.network.model_copy(update={"block_pool_traffic": False}),
        }
    )
    return from_compiled(dataclasses.replace(view, spec=narrowed))


class AgentPolicies:
    """All policies in force; a process is judged by every policy covering its namespace.

    A finding names the strictest of those that detected it (:func:`strictest`) and asks for
    what they ask together (:func:`requested`): adding a weaker policy never turns a stronger
    one off, whatever the names.

    In-cluster, ``update`` swaps in a new generation from the policy watch's thread; readers
    take ``policies`` (an immutable tuple) once per decision and compare ``generation`` to see
    whether what they derived from it is stale.
    """

    def __init__(self, policies: Sequence[CompiledPolicy]) -> None:
        self.generation = 0
        self.update(policies)

    def update(self, policies: Sequence[CompiledPolicy]) -> None:
        """Replace the policies in force (a new generation)."""
        derived = tuple(from_compiled(p) for p in policies)
        views = (system_view(p) for p in policies)
        self.system = tuple(v for v in views if v is not None)
        self.pool_ports = frozenset().union(*(p.pool_ports for p in derived))
        self.pool_hosts = tuple(dict.fromkeys(h for p in derived for h in p.pool_hosts))
        self.by_name = {p.name: p for p in derived}
        self.policies = derived
        self.generation += 1

    def covering(
        self, namespace: str | None, labels: Mapping[str, str] | None = None
    ) -> list[AgentPolicy]:
        """Policies that cover ``namespace`` (None: a host process, or no cluster).

        In a namespace a policy excludes, its system view covers instead (:func:`system_view`):
        the two never cover the same namespace.
        """
        labels = labels or {}
        found = [p for p in self.policies if p.compiled.covers_namespace(namespace, labels)]
        return found + [p for p in self.system if p.compiled.covers_namespace(namespace, labels)]

    def applying(
        self, pod: PodRef | None, argv: tuple[str, ...] = ()
    ) -> tuple[list[AgentPolicy], int]:
        """Policies covering ``pod`` (None: host or unknown) that do not exempt it.

        Also how many covering ones did exempt it (by its image, labels or ``argv``).
        """
        applying: list[AgentPolicy] = []
        exempted = 0
        for policy in self.covering(
            pod.namespace if pod else None, pod.namespace_labels if pod else None
        ):
            if policy.compiled.exemption(
                image=pod.image if pod else None,
                digest=pod.image_digest if pod else None,
                pod_labels=pod.labels if pod else None,
                argv=argv,
            ):
                exempted += 1
            else:
                applying.append(policy)
        return applying, exempted
