"""Act on findings: kill the process when the policy says so, within a rate limit.

Never acts on the agent itself, on host processes (unless configured), in Audit mode or
dry-run. A storm of detections (a false-positive wave) trips the rate limit and turns
into alerts rather than kills.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from dataclasses import replace

from node_agent import kill
from node_agent.counters import Counters
from node_agent.finding import Finding
from node_agent.policyset import PolicySet
from node_agent.procfs import ProcFS


class RateLimit:
    """At most ``max_actions`` in any ``window`` seconds."""

    def __init__(self, max_actions: int, window: float, clock: Callable[[], float]) -> None:
        self._max = max_actions
        self._window = window
        self._clock = clock
        self._times: deque[float] = deque()

    def allow(self) -> bool:
        """Take one slot if one is free."""
        now = self._clock()
        while self._times and now - self._times[0] > self._window:
            self._times.popleft()
        if len(self._times) >= self._max:
            return False
        self._times.append(now)
        return True


class Responder:
    """Applies the agent-side runtime actions (KillProcess) to findings."""

    def __init__(
        self,
        proc: ProcFS,
        policies: PolicySet,
        counters: Counters,
        *,
        act_on_host: bool,
        ignore_pids: frozenset[int],
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._proc = proc
        self._policies = {p.name: p for p in policies.policies}
        self._counters = counters
        self._act_on_host = act_on_host
        self._ignore = ignore_pids
        self._limits = {
            p.name: RateLimit(
                p.compiled.spec.rate_limit.max_actions,
                float(p.compiled.spec.rate_limit.window_seconds),
                clock,
            )
            for p in policies.policies
        }
        self._clock = clock

    def act(self, finding: Finding) -> Finding:
        """The finding with ``actions_taken`` filled in."""
        policy = self._policies.get(finding.policy)
        if policy is None or not policy.kills:
            return finding
        if finding.pid is None or finding.start_ticks is None or finding.pid in self._ignore:
            return finding
        if finding.pod_uid is None and not self._act_on_host:
            return replace(finding, actions_taken=("KillProcess skipped: host process",))
        if not self._limits[policy.name].allow():
            self._counters.add("actions_rate_limited")
            return replace(finding, actions_taken=("KillProcess suppressed: rate limit",))
        started = self._clock()
        result = kill.kill(self._proc, finding.pid, finding.start_ticks)
        took = self._clock() - started
        self._counters.add(f"kill_{result.outcome.value}")
        text = f"KillProcess: {result.outcome.value} in {took * 1000:.1f} ms"
        if result.detail:
            text += f" ({result.detail})"
        return replace(finding, actions_taken=(text,))
