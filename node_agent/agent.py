"""The agent loop: one thread waits on the event source and runs the sampler on schedule.

Single-threaded on purpose: the exec path (event → /proc read → engine) and the sampler share
state (lineage, counters) without locks, and the kernel queues events while a sampling round
runs. The fanotify gate, when enabled, is the other thread that decides: it must answer the
kernel even while this loop is busy. Reads of container files run on the small pool of
``kernel.container_files`` under deadlines, so a hung filesystem cannot stop this loop.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from node_agent.counters import Counters
from node_agent.judge.ancestry import Investigator
from node_agent.judge.pods import PodLookup
from node_agent.kernel.container_files import FileReader
from node_agent.kernel.events import EventSource
from node_agent.kernel.fanotify import ExecGate
from node_agent.kernel.rescan import RescanSource
from node_agent.layers.execwatch import ExecWatcher
from node_agent.layers.network import NetworkLayer
from node_agent.layers.sampler import Sampler
from node_agent.output.report import Sink
from node_agent.output.response import ProcessKiller
from node_agent.records import LAYER_EXEC, Finding, Reason

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Schedule:
    """How often the periodic parts run (seconds)."""

    sample_interval: float = 5.0
    rescan_interval: float = 10.0
    status_interval: float = 60.0


class Agent:
    """Wires a source, the exec watcher, the sampler, the process killer and a sink together."""

    def __init__(
        self,
        source: EventSource,
        watcher: ExecWatcher,
        sampler: Sampler,
        killer: ProcessKiller,
        sink: Sink,
        *,
        pods: PodLookup,
        counters: Counters,
        schedule: Schedule,
        rescan: RescanSource | None = None,
        gate: ExecGate | None = None,
        files: FileReader | None = None,
        network: NetworkLayer | None = None,
        ancestry: Investigator | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._source = source
        self._watcher = watcher
        self._sampler = sampler
        self._killer = killer
        self._sink = sink
        self._pods = pods
        self.counters = counters
        self._schedule = schedule
        self._rescan = rescan
        self._gate = gate
        self._files = files
        self.network = network
        self._ancestry = ancestry
        self._clock = clock
        self.findings: list[Finding] = []
        self.keep_findings = False

    @property
    def events_dropped(self) -> int:
        """Events lost: kernel overruns plus execs over the per-poll budget."""
        return self._source.dropped + self.counters.get("exec_dropped")

    @property
    def containers(self) -> int:
        """Container cgroups being sampled."""
        return len(self._sampler.tracked)

    def close(self) -> None:
        """Release the event source, stop the exec gate and the container file readers."""
        if self._gate is not None:
            self._gate.stop()
        if self._files is not None:
            self._files.close()
        if self.network is not None:
            self.network.close()
        self._source.close()

    def run(self, duration: float | None = None, stop: threading.Event | None = None) -> None:
        """Loop until ``duration`` elapses or ``stop`` is set."""
        start = self._clock()
        deadline = None if duration is None else start + duration
        next_sample = start
        next_rescan = start
        next_status = start + self._schedule.status_interval
        first_rescan = True
        while stop is None or not stop.is_set():
            now = self._clock()
            if deadline is not None and now >= deadline:
                break
            due = min(next_sample, next_rescan if self._rescan else next_sample)
            if deadline is not None:
                due = min(due, deadline)
            settling = self._watcher.due
            if settling is not None:
                due = min(due, settling)
            events = self._source.poll(max(min(due - now, 0.5), 0.0))
            self._deliver(self._watcher.handle(events))
            now = self._clock()
            if self._rescan is not None and now >= next_rescan:
                found = self._rescan.scan(report_existing=first_rescan)
                first_rescan = False
                self._deliver(self._watcher.handle(found))
                next_rescan = now + self._schedule.rescan_interval
            if now >= next_sample:
                self._deliver(self._sampler.tick(now))
                next_sample = max(next_sample + self._schedule.sample_interval, now)
            if self._gate is not None:
                self._deliver(self._refusals())
            if self.network is not None:
                self._deliver(self.network.drain())
            if now >= next_status:
                self._status()
                next_status = now + self._schedule.status_interval
        self._status()

    def _refusals(self) -> list[Finding]:
        assert self._gate is not None  # noqa: S101 - only called when a gate exists
        out: list[Finding] = []
        while self._gate.refusals:
            refusal = self._gate.refusals.popleft()
            owner = refusal.owner
            out.append(
                Finding(
                    layer=LAYER_EXEC,
                    score=1.0,
                    reasons=(Reason("exec-refused", refusal.reason, 1.0),),
                    policy="exec-gate",
                    mode="Enforce",
                    observed_at=refusal.timestamp,
                    cgroup=owner.cgroup_path if owner else "",
                    pod_uid=owner.pod_uid if owner else None,
                    container_id=owner.container_id if owner else None,
                    pid=refusal.pid,
                    executable=refusal.path,
                    actions_taken=("RefuseExec",),
                )
            )
        return out

    def _deliver(self, findings: list[Finding]) -> None:
        for finding in findings:
            # Who started it, before a kill takes the process (and its /proc) away.
            described = finding if self._ancestry is None else self._ancestry.attach(finding)
            acted = self._killer.act(described)
            if self.keep_findings:
                self.findings.append(acted)
            try:
                self._sink.emit(acted, self._pods.lookup(acted.pod_uid, acted.container_id))
            except Exception:
                log.exception("reporting a detection failed")
                self.counters.add("report_errors")

    def _status(self) -> None:
        counts = self.counters.snapshot()
        counts["events_dropped"] = self._source.dropped
        counts["containers"] = len(self._sampler.tracked)
        log.info("status %s", " ".join(f"{k}={v}" for k, v in sorted(counts.items())))
