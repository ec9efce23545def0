"""A /proc rescan as an event source: the fallback when the proc connector is unavailable.

Each scan lists /proc, remembers (pid, start time) for every process and reports new ones as
EXEC and vanished ones as EXIT. Processes that start and end between two scans are missed;
that is the price of not having the connector, and why the connector is preferred.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from node_agent import errors
from node_agent.kernel.events import EventKind, ProcEvent
from node_agent.kernel.procfs import ProcFS


class RescanSource:
    """An ``EventSource`` that diffs /proc every ``interval`` seconds."""

    def __init__(
        self,
        proc: ProcFS,
        interval: float = 2.0,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._proc = proc
        self._interval = interval
        self._clock = clock
        self._sleep = sleep
        self._known: dict[int, int] = {}
        self._next = 0.0
        self._primed = False

    @property
    def dropped(self) -> int:
        """A rescan drops nothing it can see."""
        return 0

    def fileno(self) -> int | None:
        """No descriptor: polled on a timer."""
        return None

    def scan(self, report_existing: bool) -> list[ProcEvent]:
        """One diff of /proc against the last scan."""
        now_ns = int(self._clock() * 1e9)
        seen: dict[int, int] = {}
        events: list[ProcEvent] = []
        for pid in self._proc.pids():
            try:
                start = self._proc.stat(pid).start_ticks
            except errors.AgentError:
                continue
            seen[pid] = start
            if self._known.get(pid) != start and (report_existing or self._primed):
                events.append(ProcEvent(EventKind.EXEC, pid=pid, timestamp_ns=now_ns, rescan=True))
        for pid in self._known.keys() - seen.keys():
            events.append(ProcEvent(EventKind.EXIT, pid=pid, timestamp_ns=now_ns, rescan=True))
        self._known = seen
        self._primed = True
        return events

    def poll(self, timeout: float) -> list[ProcEvent]:
        """Scan when due, else sleep up to ``timeout`` and return nothing."""
        now = self._clock()
        if now < self._next:
            self._sleep(min(timeout, self._next - now))
            if self._clock() < self._next:
                return []
        self._next = self._clock() + self._interval
        return self.scan(report_existing=True)

    def close(self) -> None:
        """Nothing to release."""
