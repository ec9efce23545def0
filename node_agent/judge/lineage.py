"""Who forked whom, remembered past exits: the launcher pattern and the orphan's real ancestry.

Fed by FORK/EXIT events where the proc connector gives them, and by the ppid seen on each
observation otherwise (a changed ppid means the original parent is gone). The exec layer adds
what it read of a process anyway (start ticks, command line, executable, container) when it
judges it, so none of this costs a /proc read of its own.

``kubectl exec pod -- sh -c 'nohup ./miner &'``: the exec'd shell exits at once and the kernel
hands the miner to the container's init, and /proc alone then reads as if the init had started
it. So a process that exits while something it forked lives on is not forgotten: its
``Record`` moves to a bounded, expiring map of exited processes (``EXITED_CAPACITY`` records,
``EXITED_TTL`` seconds), where the ancestry walk (``judge.ancestry``) finds it. A process that
exits with no descendants on record (nearly every process of a busy node) is forgotten at once,
so the per-event work stays one dict operation or two.

Each record names its parent by the parent's record ``serial``, not only its pid: a pid reused
after its process exited gets a new record with a new serial, and can never be mistaken for
the exited ancestor. Memory is bounded: the oldest live records are dropped first and counted
(``evicted``); exited records go by age and by the bound.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable
from dataclasses import dataclass

from minerguard.cache import BoundedCache

COMMAND_LIMIT = 512
"""Characters of a command line kept per record."""
EXITED_CAPACITY = 4096
"""Exited processes remembered at most (only those that left a descendant running)."""
EXITED_TTL = 600.0
"""Seconds an exited process is remembered: long enough for its orphan to be reported."""


@dataclass(frozen=True, slots=True)
class Detached:
    """A process whose original parent exited while it ran on."""

    pid: int
    parent: int


@dataclass(slots=True)
class Record:
    """What the agent knows of one process instance, kept past its exit while it matters."""

    serial: int
    """This record's identity (a pid is reused; a serial never is)."""
    pid: int
    parent: int
    """The pid that forked it (its original parent)."""
    parent_serial: int | None
    """The parent's record at the fork; None when the parent had none (older than the agent)."""
    forked_ns: int | None = None
    """The FORK event's timestamp (monotonic ns, the kernel's clock); None when observed."""
    exited_ns: int | None = None
    """The EXIT event's timestamp once it exited (0 when the event had none)."""
    start_ticks: int | None = None
    command_line: str | None = None
    executable: str | None = None
    container: str | None = None
    """Its container's attribution key as the exec layer read it; None when never read."""
    descendants: int = 0
    """Child records that point at this one (live, or exited and kept)."""

    @property
    def exited(self) -> bool:
        """Whether the process has exited (the record is kept for its descendants)."""
        return self.exited_ns is not None


class Lineage:
    """Bounded map of pid → its record, plus exited ancestors and which pids were left behind."""

    def __init__(
        self,
        capacity: int = 65536,
        *,
        exited_capacity: int = EXITED_CAPACITY,
        exited_ttl: float = EXITED_TTL,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        # Oldest fork first out: lookups (``peek``) leave the order alone.
        self._live: BoundedCache[int, Record] = BoundedCache(capacity, on_evict=self._evicted)
        self._exited: BoundedCache[int, Record] = BoundedCache(
            exited_capacity, ttl=exited_ttl, clock=clock, on_evict=self._exited_evicted
        )
        self._children: dict[int, set[int]] = {}
        self._detached: dict[int, int] = {}
        self._serials = itertools.count(1)
        self.evicted = 0
        self.exited_evicted = 0

    def fork(self, child: int, parent: int, at_ns: int | None = None) -> None:
        """Record that ``parent`` forked ``child`` (at ``at_ns``, the event's timestamp)."""
        self._forget(child)
        above = self._live.peek(parent)
        record = Record(
            next(self._serials), child, parent, None if above is None else above.serial, at_ns
        )
        if above is not None:
            above.descendants += 1
        self._live.put(child, record)
        self._children.setdefault(parent, set()).add(child)

    def _evicted(self, pid: int, record: Record) -> None:
        self._detached.pop(pid, None)
        self._release(record)
        self.evicted += 1

    def _exited_evicted(self, _serial: int, record: Record) -> None:
        self._release(record)
        self.exited_evicted += 1

    def observe(self, pid: int, ppid: int) -> None:
        """Note the current ppid; a change from the recorded parent means it was orphaned."""
        recorded = self._live.peek(pid)
        if recorded is None:
            self.fork(pid, ppid)
        elif recorded.parent != ppid:
            self._detached[pid] = recorded.parent

    def seen(
        self,
        pid: int,
        *,
        container: str,
        start_ticks: int | None = None,
        command_line: str | None = None,
        executable: str | None = None,
    ) -> None:
        """What the exec layer read of live ``pid`` (no record yet: nothing is added)."""
        record = self._live.peek(pid)
        if record is None:
            return
        record.container = container
        if start_ticks is not None:
            record.start_ticks = start_ticks
        if command_line is not None:
            record.command_line = command_line[:COMMAND_LIMIT]
            record.executable = executable

    def exit(self, pid: int, at_ns: int | None = None) -> None:
        """``pid`` exited: its live children are now detached from it.

        Its record is kept (as exited) while a descendant's record points at it, else dropped.
        """
        children = self._children.pop(pid, None)
        if children:
            for child in children:
                found = self._live.peek(child)
                if found is not None and found.parent == pid:
                    self._detached[child] = pid
        record = self._live.pop(pid, None)
        if self._detached:
            self._detached.pop(pid, None)
        if record is None:
            return
        self._unlink(record)
        if record.descendants > 0:
            record.exited_ns = at_ns or 0
            self._exited.put(record.serial, record)
        elif record.parent_serial is not None:
            self._release(record)

    def detached(self, pid: int) -> Detached | None:
        """Whether ``pid`` outlived the parent that forked it."""
        parent = self._detached.get(pid)
        return None if parent is None else Detached(pid, parent)

    def record(self, pid: int) -> Record | None:
        """The record of live ``pid`` (the latest fork of that pid the agent saw)."""
        return self._live.peek(pid)

    def parent_of(self, record: Record) -> Record | None:
        """The record of the process that forked ``record``'s, live or exited; None if gone."""
        if record.parent_serial is None:
            return None
        live = self._live.peek(record.parent)
        if live is not None and live.serial == record.parent_serial:
            return live
        return self._exited.peek(record.parent_serial)

    def _forget(self, pid: int) -> None:
        """Drop a live record without an exit (its pid is forked again: the exit was lost)."""
        record = self._live.pop(pid, None)
        self._detached.pop(pid, None)
        if record is not None:
            self._unlink(record)
            self._release(record)

    def _unlink(self, record: Record) -> None:
        siblings = self._children.get(record.parent)
        if siblings is not None:
            siblings.discard(record.pid)
            if not siblings:
                del self._children[record.parent]

    def _release(self, record: Record) -> None:
        """``record`` no longer points at its parent: an exited parent may now be let go.

        A loop, not recursion: a chain of exited records (a fork-and-exit worm) may be long.
        """
        above = self.parent_of(record)
        while above is not None:
            above.descendants -= 1
            if not above.exited or above.descendants > 0:
                return
            self._exited.pop(above.serial, None)
            above = self.parent_of(above)

    @property
    def exited_count(self) -> int:
        """Exited processes remembered now."""
        return len(self._exited)

    def __len__(self) -> int:
        return len(self._live)
