"""Who forked whom, to see the launcher pattern: fork, let the parent exit, run on.

Fed by FORK/EXIT events where the proc connector gives them, and by the ppid seen on each
observation otherwise (a changed ppid means the original parent is gone). Memory is bounded:
the oldest entries are dropped first and counted.
"""

from __future__ import annotations

from dataclasses import dataclass

from minerguard.cache import BoundedCache


@dataclass(frozen=True, slots=True)
class Detached:
    """A process whose original parent exited while it ran on."""

    pid: int
    parent: int


class Lineage:
    """Bounded map of pid → original parent, plus which pids were left behind."""

    def __init__(self, capacity: int = 65536) -> None:
        # Oldest fork first out: lookups (``peek``) leave the order alone.
        self._parent: BoundedCache[int, int] = BoundedCache(capacity, on_evict=self._evicted)
        self._children: dict[int, set[int]] = {}
        self._detached: dict[int, int] = {}
        self.evicted = 0

    def fork(self, child: int, parent: int) -> None:
        """Record that ``parent`` forked ``child``."""
        self._forget(child)
        self._parent.put(child, parent)
        self._children.setdefault(parent, set()).add(child)

    def _evicted(self, pid: int, _parent: int) -> None:
        self._detached.pop(pid, None)
        self.evicted += 1

    def observe(self, pid: int, ppid: int) -> None:
        """Note the current ppid; a change from the recorded parent means it was orphaned."""
        recorded = self._parent.peek(pid)
        if recorded is None:
            self.fork(pid, ppid)
        elif recorded != ppid:
            self._detached[pid] = recorded

    def exit(self, pid: int) -> None:
        """``pid`` exited: its live children are now detached from it."""
        for child in self._children.pop(pid, ()):
            if self._parent.peek(child) == pid:
                self._detached[child] = pid
        self._forget(pid)

    def detached(self, pid: int) -> Detached | None:
        """Whether ``pid`` outlived the parent that forked it."""
        parent = self._detached.get(pid)
        return None if parent is None else Detached(pid, parent)

    def _forget(self, pid: int) -> None:
        parent = self._parent.pop(pid, None)
        if parent is not None:
            siblings = self._children.get(parent)
            if siblings is not None:
                siblings.discard(pid)
                if not siblings:
                    del self._children[parent]
        self._detached.pop(pid, None)

    def __len__(self) -> int:
        return len(self._parent)
