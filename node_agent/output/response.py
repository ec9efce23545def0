"""Act on findings: kill the process when the policy says so, within a rate limit.

Never acts on the agent itself, on host processes (unless configured), in Audit mode or
dry-run. A storm of detections (a false-positive wave) trips the rate limit and turns
into alerts rather than kills.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from collections.abc import Set as AbstractSet
from dataclasses import replace

from minerguard.api.policy import RuntimeAction
from node_agent.counters import Counters
from node_agent.judge.agent_policy import AgentPolicies, AgentPolicy
from node_agent.kernel import kill
from node_agent.kernel.procfs import ProcFS
from node_agent.records import Finding


class RateLimit:
    """At most ``max_actions`` in any ``window`` seconds."""

    def __init__(self, max_actions: int, window: float, clock: Callable[[], float]) -> None:
        self._max = max_actions
        self._window = window
        self._clock = clock
        self._times: deque[float] = deque()
        self._lock = threading.Lock()  # the network layer's thread takes slots too

    def allow(self) -> bool:
        """Take one slot if one is free."""
        with self._lock:
            now = self._clock()
            while self._times and now - self._times[0] > self._window:
                self._times.popleft()
            if len(self._times) >= self._max:
                return False
            self._times.append(now)
            return True


class ProcessKiller:
    """Applies the agent's one runtime action, KillProcess, to findings it is asked for."""

    def __init__(
        self,
        proc: ProcFS,
        policies: AgentPolicies,
        counters: Counters,
        *,
        act_on_host: bool,
        ignore_pids: frozenset[int],
        ignore_pods: AbstractSet[str] = frozenset(),
        kill_enabled: bool = True,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._proc = proc
        self._policies = policies
        self._counters = counters
        self._act_on_host = act_on_host
        self._ignore = ignore_pids
        self._ignore_pods = ignore_pods
        self._kill_enabled = kill_enabled
        self._limits: dict[str, RateLimit] = {}
        self._clock = clock

    def _limit(self, policy: AgentPolicy) -> RateLimit:
        limit = self._limits.get(policy.name)
        if limit is None:
            spec = policy.compiled.spec.rate_limit
            limit = RateLimit(spec.max_actions, float(spec.window_seconds), self._clock)
            limit = self._limits.setdefault(policy.name, limit)
        return limit

    def take_slot(self, policy: AgentPolicy) -> bool:
        """Charge one destructive action other than a kill (a network block) to ``policy``.

        Kills and blocks share the policy's ``rateLimit``: a false-positive storm is one storm,
        whichever action it asks for.
        """
        return self._limit(policy).allow()

    def act(self, finding: Finding) -> Finding:
        """The finding with ``actions_taken`` filled in."""
        policy = self._policies.by_name.get(finding.policy)
        # The finding asks for a kill only where a policy would kill at its evidence
        # (agent_policy.requested): never for a weak or behavioural one in a system namespace.
        if policy is None or RuntimeAction.KILL_PROCESS.value not in finding.actions_requested:
            return finding
        if finding.pid is None or finding.start_ticks is None or finding.pid in self._ignore:
            return finding
        if finding.pod_uid is not None and finding.pod_uid in self._ignore_pods:
            return replace(finding, actions_taken=("KillProcess skipped: the agent's own pod",))
        if finding.pod_uid is None and not self._act_on_host:
            return replace(finding, actions_taken=("KillProcess skipped: host process",))
        if not self._kill_enabled:
            return replace(finding, actions_taken=("KillProcess skipped: disabled on this node",))
        if not self._limit(policy).allow():
            self._counters.add("actions_rate_limited")
            return replace(finding, actions_taken=("KillProcess suppressed: rate limit",))
        started = self._clock()
        result = kill.kill_tree(self._proc, finding.pid, finding.start_ticks)
        took = self._clock() - started
        self._counters.add(f"kill_{result.outcome.value}")
        text = f"KillProcess: {result.outcome.value} in {took * 1000:.1f} ms"
        if result.detail:
            text += f" ({result.detail})"
        return replace(finding, actions_taken=(text,))
