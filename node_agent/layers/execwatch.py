"""The exec layer: judge every new process by its argv, executable, environment and config.

Fed by an ``EventSource``. Work per event is bounded: at most ``max_per_poll`` EXEC events are
inspected per poll and the rest are counted as dropped (a rescan finds survivors later). A
process is judged once per (pid, start time, argv), so a rescan re-judges only processes
whose command line changed since (argv rewriting).

An EXEC is read only once it is ``settle`` old (10 ms): on a busy node almost every process
exits sooner (a build, a shell loop), its EXIT arrives meanwhile and nothing is read at all.
Reading /proc is what costs; a process that lives less than 10 ms cannot have mined. Execs
still settling are carried to the next ``handle`` call; ``due`` says when to make it.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Hashable
from collections.abc import Set as AbstractSet

from minerguard.cache import BoundedCache
from minerguard.signatures import engine
from node_agent import errors
from node_agent.counters import Counters
from node_agent.judge import agent_policy, launchers, masquerade, scoring
from node_agent.judge.agent_policy import AgentPolicies, AgentPolicy
from node_agent.judge.earned import EarnedVerdicts
from node_agent.judge.exe_content import ExecutableContent
from node_agent.judge.inspect_process import ProcessSnapshot, snapshot
from node_agent.judge.lineage import Lineage
from node_agent.judge.pods import PodLookup
from node_agent.kernel import attribution
from node_agent.kernel.container_files import FileReader
from node_agent.kernel.events import EventKind, ProcEvent
from node_agent.kernel.procfs import ProcFS
from node_agent.records import LAYER_EXEC, Finding, Reason

MASQUERADE_CAP = 0.6
LOADER_RETRIES = 20
"""Settles (10 ms each) a directly run loader is given to map its program before judging."""
W_HIDDEN_CODE = scoring.W_HIDDEN_CODE
ENGINE_LOCATION_SIGNALS = frozenset({"masquerade", "hidden-path"})
"""The engine's signals about where a program runs from (its path on the command line)."""
CONTAINER_MEMORY = 16384
"""Containers remembered as offered to the exec gate (a node runs a few hundred)."""


def judge(snap: ProcessSnapshot, policy: AgentPolicy) -> tuple[float, tuple[Reason, ...]]:
    """Signature score, the executable's content and masquerade evidence (capped).

    The program judged is the one actually run: behind a directly run loader, its own argv,
    path and bytes (``snap.program_argv``, ``snap.exe``), with the loader named in a reason.
    """
    argv = snap.program_argv
    subject = engine.Subject(
        argv=argv,
        env=snap.env,
        executable=snap.exe.path if snap.exe else None,
        texts=snap.texts,
    )
    verdict = policy.compiled.engine.evaluate(subject)
    reasons = [Reason(s.name, s.describe(), s.weight) for s in verdict.signals]
    extra = 0.0
    if snap.content is not None:
        reasons.append(snap.content)
        extra += snap.content.weight
    # Where it runs from is one budget: the engine's command-line view of it (a daemon's name
    # in /tmp, a dot-directory) and the agent's own view (memfd, deleted, not in the image).
    located = sum(s.weight for s in verdict.signals if s.name in ENGINE_LOCATION_SIGNALS)
    spent = min(located, MASQUERADE_CAP)
    masked = 0.0
    for reason in masquerade.reasons(
        snap.comm, argv, snap.exe, snap.kernel_thread, upper_layer=snap.upper_layer
    ):
        weight = min(reason.weight, MASQUERADE_CAP - spent - masked)
        if weight <= 0:
            break
        masked += weight
        reasons.append(Reason(reason.signal, reason.detail, weight))
    if snap.hidden_code is not None:  # hiding what runs: within the masquerade budget
        weight = min(W_HIDDEN_CODE, max(MASQUERADE_CAP - spent - masked, 0.0))
        reasons.append(Reason("code-not-on-command-line", snap.hidden_code, weight))
        masked += weight
    reasons.extend(launchers.launcher_reasons(snap.comm, argv, snap.exe, snap.launcher))
    return round(verdict.score + extra + masked, 3), tuple(reasons)


class ExecWatcher:
    """Turns process events into exec-layer findings."""

    def __init__(
        self,
        proc: ProcFS,
        policies: AgentPolicies,
        *,
        pods: PodLookup,
        lineage: Lineage,
        counters: Counters,
        include_host: bool,
        ignore_pids: frozenset[int],
        ignore_pods: AbstractSet[str] = frozenset(),
        content: ExecutableContent | None = None,
        files: FileReader | None = None,
        on_container: Callable[[int, attribution.Attribution], bool] | None = None,
        on_process: Callable[[ProcessSnapshot], None] | None = None,
        earned: EarnedVerdicts | None = None,
        max_per_poll: int = 2048,
        settle: float = 0.01,
        memory: int = 16384,
        verdict_cache: int = 4096,
        wall: Callable[[], float] = time.time,
        monotonic_ns: Callable[[], int] = time.monotonic_ns,
    ) -> None:
        self._proc = proc
        self._policies = policies
        self._pods = pods
        self._lineage = lineage
        self._counters = counters
        self._include_host = include_host
        self._ignore = ignore_pids
        self._ignore_pods = ignore_pods
        self._content = content
        self._files = files
        self._on_container = on_container
        self._on_process = on_process
        self._loader_tries: BoundedCache[tuple[int, int], int] = BoundedCache(1024)
        self._earned = earned
        # container key -> the policy generation under which the gate took it
        self._containers: BoundedCache[str, int] = BoundedCache(CONTAINER_MEMORY)
        self._max = max_per_poll
        self._settle_ns = int(settle * 1e9)
        self._settling: list[ProcEvent] = []
        self._judged: BoundedCache[tuple[int, int, int], None] = BoundedCache(memory)
        self._verdicts: BoundedCache[Hashable, tuple[float, tuple[Reason, ...]]] = BoundedCache(
            verdict_cache
        )
        self._verdict_cap = verdict_cache
        self._wall = wall
        self._mono_ns = monotonic_ns

    @property
    def due(self) -> float | None:
        """When (monotonic seconds) the oldest settling exec must be read; None if none."""
        if not self._settling:
            return None
        return (self._settling[0].timestamp_ns + self._settle_ns) / 1e9

    def handle(self, events: list[ProcEvent]) -> list[Finding]:
        """Process a batch of events; returns the findings, in event order."""
        findings: list[Finding] = []
        budget = self._max
        if self._settling:
            events = [*self._settling, *events]
            self._settling = []
        # A process whose EXIT is in the same batch as its EXEC is already gone (a zombie's
        # /proc has no argv): skip the reads. Batches of a busy node are mostly these.
        last_exit = {e.pid: i for i, e in enumerate(events) if e.kind is EventKind.EXIT}
        young = self._mono_ns() - self._settle_ns
        for index, event in enumerate(events):
            if event.kind is EventKind.FORK:
                if event.parent is not None:
                    self._lineage.fork(event.pid, event.parent, event.timestamp_ns)
                if self._earned is not None and self._earned.active and budget > 0:
                    budget -= 1
                    forked = self._forked(event.pid, event.timestamp_ns)
                    if forked is not None:
                        findings.append(forked)
            elif event.kind is EventKind.EXIT:
                self._lineage.exit(event.pid, event.timestamp_ns)
            elif last_exit.get(event.pid, -1) > index:
                self._counters.add("exec_exited_in_batch")
            elif not event.rescan and event.timestamp_ns > young:
                if len(self._settling) < self._max:
                    self._settling.append(event)
                else:
                    self._counters.add("exec_dropped")
            elif budget <= 0:
                self._counters.add("exec_dropped")
            else:
                budget -= 1
                found = self.inspect(event.pid, event.timestamp_ns, event.rescan)
                if found is not None:
                    findings.append(found)
        return findings

    def inspect(self, pid: int, timestamp_ns: int, rescan: bool = False) -> Finding | None:
        """Judge one process; OS races become counters."""
        if pid in self._ignore:
            return None
        try:
            owner = attribution.attribute_lines(self._proc.cgroups(pid))
            if not owner.in_pod and not self._include_host:
                self._lineage.seen(pid, container=owner.key)  # an ancestor's side of the edge
                self._counters.add("exec_host_skipped")
                return None
            if owner.pod_uid is not None and owner.pod_uid in self._ignore_pods:
                self._counters.add("exec_self_skipped")
                return None
            if owner.in_pod and self._on_container is not None:
                self._first_of_container(pid, owner)
            snap = snapshot(self._proc, pid, owner=owner, content=self._content, files=self._files)
        except errors.ProcessGone:
            self._counters.add("exec_gone")
            return None
        except errors.AccessDenied:
            self._counters.add("exec_denied")
            return None
        except errors.AgentError:
            self._counters.add("exec_read_error")
            return None
        self._counters.add("exec_inspected")
        if snap.kernel_thread:
            return None
        if self._loader_not_ready(snap):
            return None  # read again at the next settle: the program is judged, not ld.so
        if self._on_process is not None and snap.owner.in_pod:
            self._on_process(snap)  # the behaviour layer samples its container from now on
        key = (pid, snap.start_ticks, hash(snap.argv))
        if key in self._judged:
            return None
        self._judged.put(key, None)
        self._lineage.observe(pid, snap.ppid)
        self._lineage.seen(
            pid,
            container=snap.owner.key,
            start_ticks=snap.start_ticks,
            command_line=snap.command_line,
            executable=snap.exe.path if snap.exe else None,
        )
        if self._earned is not None and self._earned.has_pod(snap.owner.pod_uid):
            again = self._respawned(snap, timestamp_ns)
            if again is not None:
                return again
        return self._judge_all(snap, timestamp_ns, rescan)

    def _forked(self, pid: int, timestamp_ns: int) -> Finding | None:
        """A fork in a pod holding an earned verdict: the dropper's child, judged by it."""
        if pid in self._ignore:
            return None
        try:
            owner = attribution.attribute_lines(self._proc.cgroups(pid))
            if self._earned is None or not self._earned.has_pod(owner.pod_uid):
                return None
            snap = snapshot(self._proc, pid, owner=owner, with_env=False, with_config=False)
        except errors.AgentError:
            self._counters.add("fork_gone")
            return None
        key = (pid, snap.start_ticks, hash(snap.argv))
        if key in self._judged:
            return None
        found = self._respawned(snap, timestamp_ns)
        if found is not None:
            self._judged.put(key, None)
        return found

    def _respawned(self, snap: ProcessSnapshot, timestamp_ns: int) -> Finding | None:
        """A copy of a process behaviour already reported here: the verdict it earned."""
        assert self._earned is not None  # noqa: S101 - checked by the caller
        assert snap.owner.pod_uid is not None  # noqa: S101 - has_pod is False for None
        try:
            identity = self._proc.exe_identity(snap.pid)
        except errors.AgentError:
            return None
        earned = self._earned.recall(snap.owner.pod_uid, identity, snap.argv)
        if earned is None:
            return None
        self._counters.add("exec_earned_verdicts")
        first = earned.finding
        reason = Reason(
            "earned-verdict",
            f"same executable and arguments as pid {earned.pid}, reported by "
            f"{first.layer.lower()} in this pod (score {first.score:.2f})",
            first.score,
        )
        return self._finding(
            snap,
            timestamp_ns,
            score=first.score,
            reasons=(reason, *first.reasons),
            policy=first.policy,
            mode=first.mode,
            actions=first.actions_requested,
        )

    def _finding(
        self,
        snap: ProcessSnapshot,
        timestamp_ns: int,
        *,
        score: float,
        reasons: tuple[Reason, ...],
        policy: str,
        mode: str,
        actions: tuple[str, ...],
    ) -> Finding:
        """An exec-layer finding about ``snap``, seen at ``timestamp_ns``."""
        return Finding(
            layer=LAYER_EXEC,
            score=score,
            reasons=reasons,
            policy=policy,
            mode=mode,
            observed_at=self._wall(),
            cgroup=snap.owner.cgroup_path,
            pod_uid=snap.owner.pod_uid,
            container_id=snap.owner.container_id,
            pid=snap.pid,
            start_ticks=snap.start_ticks,
            executable=snap.exe.path if snap.exe else None,
            command_line=snap.command_line[:4096],
            actions_requested=actions,
            latency_s=(self._mono_ns() - timestamp_ns) / 1e9,
        )

    def _loader_not_ready(self, snap: ProcessSnapshot) -> bool:
        """Whether a directly run loader has not mapped its program yet (then retried).

        On a busy node the loader may not have run at all 10 ms after the exec; judging then
        would judge the loader. The exec is read again after another settle, at most
        ``LOADER_RETRIES`` times, then judged as it is.
        """
        if snap.launcher is not None or not launchers.is_loader(snap.exe):
            return False
        if launchers.loader_program(snap.argv) is None:
            return False
        key = (snap.pid, snap.start_ticks)
        tries = self._loader_tries.get(key, 0)
        if tries >= LOADER_RETRIES:
            self._loader_tries.pop(key, None)
            return False
        self._loader_tries.put(key, tries + 1)
        self._counters.add("exec_loader_retries")
        self._settling.append(ProcEvent(EventKind.EXEC, snap.pid, self._mono_ns()))
        return True

    def _first_of_container(self, pid: int, owner: attribution.Attribution) -> None:
        """Tell ``on_container`` (the exec gate) of each container until it answers True.

        Asked again under each new policy generation: a new Enforce policy may now cover it.
        """
        generation = self._policies.generation
        if self._containers.get(owner.key) == generation:
            return
        assert self._on_container is not None  # noqa: S101 - checked by the caller
        if not self._on_container(pid, owner):
            return
        self._containers.put(owner.key, generation)

    def _verdict(
        self, snap: ProcessSnapshot, policy: AgentPolicy
    ) -> tuple[float, tuple[Reason, ...]]:
        """``judge``, remembered per (policy generation, exe, comm, argv, env, config texts).

        A build or a shell loop execs the same few commands thousands of times; the engine
        then runs once per distinct command, not once per process.
        """
        if self._verdict_cap <= 0:
            return judge(snap, policy)
        key = (
            self._policies.generation,
            policy.name,
            snap.exe,
            snap.comm,
            snap.kernel_thread,
            snap.argv,
            hash(snap.env),
            hash(snap.texts),
            snap.upper_layer,
            snap.content,
            snap.launcher,
            snap.program_start,
            snap.hidden_code,
        )
        found = self._verdicts.get(key)
        if found is not None:
            self._counters.add("verdict_cache_hits")
            return found
        verdict = judge(snap, policy)
        self._verdicts.put(key, verdict)
        return verdict

    def _judge_all(self, snap: ProcessSnapshot, timestamp_ns: int, rescan: bool) -> Finding | None:
        pod = self._pods.lookup(snap.owner.pod_uid, snap.owner.container_id)
        applying, exempted = self._policies.applying(pod, snap.argv)
        if exempted:
            self._counters.add("exec_exempt", exempted)
        # Every applying policy judges; the finding names the strictest that detected it and
        # asks for what they ask together, so a weaker policy never switches a stronger off.
        verdicts: dict[str, tuple[float, tuple[Reason, ...]]] = {}
        detecting: list[AgentPolicy] = []
        for candidate in applying:
            verdicts[candidate.name] = self._verdict(snap, candidate)
            if verdicts[candidate.name][0] >= engine.THRESHOLD:
                detecting.append(candidate)
        if not detecting:
            return None
        policy = agent_policy.strictest(detecting)
        score, reasons = verdicts[policy.name]
        self._counters.add("exec_detections")
        if rescan:
            reasons = (*reasons, Reason("found-by-rescan", "seen by a /proc rescan", 0.0))
        return self._finding(
            snap,
            timestamp_ns,
            score=score,
            reasons=reasons,
            policy=policy.name,
            mode=policy.mode,
            actions=agent_policy.requested(detecting, score),
        )
