"""Who started a reported process, and was its executable shipped or dropped?

Two questions an incident responder asks of every process the agent reports:

- **Entry**: does its ancestry in the container begin at the container's first process
  (``Init``: the workload itself, or a dropper inside a compromised service), or at a process
  the runtime started in the running container later (``Exec``: ``kubectl exec``, ``runc
  exec``)? The container's first process is the one whose parent is outside the container and
  whose pid in its own pid namespace is 1. An exec'd process also has its parent outside the
  container (runc, the shim), but another pid. A process cannot change its own parent, so an
  exec session cannot pass itself off as the init by its chain.

  What an attacker can do is orphan: ``kubectl exec pod -- sh -c 'nohup ./miner &'`` and let
  the shell exit. The kernel re-parents the miner to its pid namespace's init, and its chain in
  /proc now reads "Init". The agent's ``Lineage`` (fed by fork and exit events) remembers who
  forked whom past an exit: where a link of the chain was re-parented, the walk goes on
  through the exited processes that really started it (each named by its record's serial, so
  a reused pid cannot stand in for one; a live ancestor reached that way must have started
  before the fork it is said to have made) until it reaches a live one: outside the container
  means the top exited link was the exec'd root (``Exec``), the container's init means
  ``Init``. Those links are marked ``exited``; their command line is there when the exec layer
  read the process before it exited (a shell that ran for more than its 10 ms settle: one
  that downloaded something first), else absent. An exited process can never have been its
  pid namespace's init (its death would have killed the orphan too). Where a record is
  missing (the agent started later, the record expired or was evicted, events were lost) a
  link adopted by the init makes the answer ``Unknown``, never a wrong ``Init``.
  Re-parenting to a subreaper is always to an original ancestor, so a chain through one is
  true; the exited links between are shown all the same. Also ``Unknown``: a process sharing
  the host's pid namespace (hostPID), a pod sharing one pid namespace between its containers
  (the pause process is init, in another container), a chain cut by a vanished process, by
  /proc refusing, or by the depth bound.

- **Executable origin**: ``Image`` when the executable is in the image's layers,
  ``WrittenAfterStart`` when it is in the container's writable layer (``kernel.image_layers``),
  ``Downloaded`` when, in addition, an ancestor's command line names a fetch (curl, wget, tftp,
  scp, an interpreter with an HTTP library...): that ancestor is the dropper.

Run only for findings about to be reported: the walk is a few small reads per ancestor.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from pathlib import PurePosixPath
from typing import Protocol

from minerguard.api.investigation import Entry, ExecutableOrigin
from node_agent import errors
from node_agent.counters import Counters
from node_agent.judge.lineage import Lineage, Record
from node_agent.kernel import ancestry, attribution, image_layers
from node_agent.kernel.ancestry import Ancestor, Walk
from node_agent.kernel.cgroups import CgroupReader, ContainerCgroup
from node_agent.kernel.procfs import CLOCK_TICKS, Executable, ProcFS
from node_agent.records import Ancestry, Finding, ProcessLink

TICK_NS = 1e9 / CLOCK_TICKS
REUSE_SLACK_NS = 50e6
"""How far a live process's start (clock ticks since boot) may sit from the FORK event that
recorded it (the kernel's monotonic clock) and still be that process: a few ticks of rounding.
After a suspend the two clocks part, the check fails and the answer is Unknown, never wrong."""
PER_SECOND = 64
"""Ancestries read per second at most; findings past it are reported without one (counted)."""
FETCHERS = frozenset(
    {"curl", "wget", "tftp", "scp", "sftp", "ftp", "lftp", "aria2c", "axel", "rsync", "fetch",
     "lwp-download", "lwp-request", "lwp-mirror", "wget2", "curlie", "xh", "tnftp"}
)  # fmt: skip
"""Programs whose whole purpose is to fetch files (busybox applets included by name)."""
INTERPRETER = re.compile(
    r"^(python[0-9.]*|perl[0-9.]*|ruby[0-9.]*|php[0-9.]*|node(js)?|lua[0-9.]*|pwsh|powershell)$"
)
"""Interpreters whose command line may carry fetching code (``python3 -c "import urllib..."``)."""
FETCH_CODE = re.compile(
    r"urllib|\brequests\b|http\.client|httpx|urlopen|urlretrieve|LWP::|HTTP::Tiny|Net::HTTP"
    r"|open-uri|file_get_contents\s*\(\s*['\"]https?:|\bfetch\s*\(|https?\.get\s*\("
    r"|require\(\s*['\"]https?['\"]\s*\)|Invoke-WebRequest|DownloadFile|curl_exec",
    re.IGNORECASE,
)
"""Code that fetches over HTTP, as it reads on an interpreter's command line."""
_TOKEN_SPLIT = re.compile(r"[\s;|&()<>`'\"=$]+")
_DEV_TCP = "/dev/tcp/"
"""bash's ``exec 3<>/dev/tcp/host/port``: a fetch without any fetching program."""


def fetches(command_line: str) -> bool:
    """Whether a command line names a fetch: a fetching program, or an interpreter's HTTP code.

    Shell scripts (``sh -c "wget ...; chmod +x x; ./x"``) are read word by word, so a fetch
    anywhere in the script counts; only the program's base name is compared.
    """
    if _DEV_TCP in command_line:
        return True
    interpreter = False
    for token in _TOKEN_SPLIT.split(command_line):
        if not token:
            continue
        name = PurePosixPath(token).name
        if name in FETCHERS:
            return True
        interpreter = interpreter or bool(INTERPRETER.match(name))
    return interpreter and FETCH_CODE.search(command_line) is not None


def decide_entry(walk: Walk, detached: Callable[[int], int | None]) -> tuple[Entry, str]:
    """Init, Exec or Unknown for a walked chain, with why when Unknown.

    ``detached(pid)`` is the parent that originally forked ``pid`` when it has since exited
    (the agent's ``Lineage``), else None.
    """
    top = walk.chain[-1]
    if not walk.complete:
        return Entry.UNKNOWN, "the chain was cut (a process vanished, /proc refused, or too deep)"
    if len(top.nspid) < 2:
        return Entry.UNKNOWN, "the container shares the host's pid namespace"
    if walk.outside is None:
        return Entry.UNKNOWN, "the container's creator is out of sight"
    if top.own_pid == 1:
        for link in walk.chain[:-1]:
            original = detached(link.pid)
            if link.ppid == top.pid and original is not None and original != top.pid:
                return Entry.UNKNOWN, (
                    f"pid {link.pid} was orphaned (its parent {original} exited) and adopted "
                    "by the container's init: it may come from an exec session"
                )
        return Entry.INIT, ""
    if walk.ns_init_in_container:
        return Entry.EXEC, ""
    return Entry.UNKNOWN, "the pid namespace's init is not in this container (shared)"


class _Commanded(Protocol):
    @property
    def command_line(self) -> str | None: ...


def executable_origin(
    upper_layer: bool | None, ancestors: Iterable[_Commanded]
) -> tuple[ExecutableOrigin, str | None]:
    """Where the executable came from, and the ancestor that fetched it where one did.

    Ancestors that exited count too (``sh -c 'curl -o /tmp/x ... && /tmp/x &'``): where the
    agent read their command line before they exited, it is here.
    """
    if upper_layer is None:
        return ExecutableOrigin.UNKNOWN, None
    if not upper_layer:
        return ExecutableOrigin.IMAGE, None
    for ancestor in ancestors:
        if ancestor.command_line and fetches(ancestor.command_line):
            return ExecutableOrigin.DOWNLOADED, ancestor.command_line
    return ExecutableOrigin.WRITTEN_AFTER_START, None


def same_instance(record: Record, live: Ancestor) -> bool:
    """Whether ``record`` is about the process /proc shows as ``live`` (not a reused pid)."""
    if record.start_ticks is not None:
        return record.start_ticks == live.start_ticks
    if record.forked_ns:
        return abs(live.start_ticks * TICK_NS - record.forked_ns) <= REUSE_SLACK_NS
    return True


def _started_before(live: Ancestor, fork: Record) -> bool:
    """Whether ``live`` was running when ``fork`` was forked (so could have forked it)."""
    if not fork.forked_ns:
        return True
    return live.start_ticks * TICK_NS <= fork.forked_ns + REUSE_SLACK_NS


@dataclass(frozen=True, slots=True)
class _Link:
    """One ancestor for the report: read live from /proc, or remembered after its exit."""

    pid: int
    executable: str | None
    command_line: str | None
    start_ticks: int | None
    forked_ns: int | None
    exited: bool

    @classmethod
    def live(cls, ancestor: Ancestor) -> _Link:
        return cls(
            ancestor.pid,
            ancestor.executable,
            ancestor.command_line,
            ancestor.start_ticks,
            None,
            exited=False,
        )

    @classmethod
    def remembered(cls, record: Record) -> _Link:
        return cls(
            record.pid,
            record.executable,
            record.command_line,
            record.start_ticks,
            record.forked_ns,
            exited=True,
        )


@dataclass(frozen=True, slots=True)
class _Traced:
    links: tuple[_Link, ...]
    entry: Entry
    why: str


class _Outside:
    """An exited ancestor read outside the container: the one below it was the exec'd root."""


_OUTSIDE = _Outside()


class Investigator:
    """Fills a finding's ``ancestry`` from /proc, the agent's lineage and the overlay."""

    def __init__(
        self,
        proc: ProcFS,
        lineage: Lineage,
        counters: Counters,
        *,
        cgroups: CgroupReader | None = None,
        max_links: int = ancestry.MAX_LINKS,
        per_second: int = PER_SECOND,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._proc = proc
        self._lineage = lineage
        self._counters = counters
        self._cgroups = cgroups
        self._max_links = max_links
        self._boot: float | None = None
        self._per_second = per_second
        self._clock = clock
        self._window: tuple[int, int] = (-1, 0)

    def attach(self, finding: Finding) -> Finding:
        """``finding`` with its ancestry, when it names a process in a container."""
        if finding.pid is None or finding.ancestry is not None or not finding.container_id:
            return finding
        if not self._take():
            self._counters.add("ancestry_skipped")
            return finding
        found = self.describe(finding.pid, finding.executable, finding.start_ticks)
        return finding if found is None else replace(finding, ancestry=found)

    def describe(
        self, pid: int, executable: str | None = None, start_ticks: int | None = None
    ) -> Ancestry | None:
        """The ancestry of ``pid`` (running ``executable``); None when it is gone."""
        walk = ancestry.walk(
            self._proc, pid, max_links=self._max_links, container_pids=self._container_pids
        )
        if walk is None or (start_ticks is not None and walk.chain[0].start_ticks != start_ticks):
            self._counters.add("ancestry_gone")
            return None
        self._counters.add("ancestry_read")
        traced = self._trace(walk)
        if traced is None:
            entry, why = decide_entry(walk, self._detached)
            found = tuple(_Link.live(a) for a in walk.chain[1:])
        else:
            self._counters.add("ancestry_through_exited")
            entry, why, found = traced.entry, traced.why, traced.links
        upper = self._upper_layer(walk.chain[0], executable)
        origin, fetcher = executable_origin(upper, found)
        boot = self._boot_time()
        links = tuple(
            ProcessLink(
                pid=link.pid,
                executable=link.executable,
                command_line=link.command_line,
                started_at=self._started_at(boot, link),
                exited=True if link.exited else None,
            )
            for link in found
        )
        return Ancestry(links, entry, origin, fetcher, why)

    @staticmethod
    def _started_at(boot: float | None, link: _Link) -> float | None:
        if boot is None:
            return None
        if link.start_ticks is not None:
            return boot + link.start_ticks / CLOCK_TICKS
        if link.forked_ns:
            return boot + link.forked_ns / 1e9  # the kernel's monotonic clock counts from boot
        return None

    def _trace(self, walk: Walk) -> _Traced | None:
        """The chain through exited ancestors, where a link of ``walk`` was re-parented.

        None when no link was (the live chain is the truth) or when what was remembered does
        not reach a live ancestor (a record missing, a pid reused): then the live chain is
        judged as before, and an orphan adopted by the init stays Unknown.
        """
        container = walk.chain[0].container
        links: list[_Link] = []
        live = walk  # the live chain being followed: the reported process's, then an ancestor's
        skip = 1  # the reported process is not its own ancestor
        traced = False
        while True:
            found = self._reparented(live.chain)
            if found is None:
                if not traced:
                    return None
                links.extend(_Link.live(a) for a in live.chain[skip:])
                entry, why = decide_entry(live, self._detached)
                return _Traced(tuple(links), entry, why)
            index, record = found
            links.extend(_Link.live(a) for a in live.chain[skip : index + 1])
            traced = True
            reached = self._exited_ancestors(record, container, links)
            if reached is None:
                return None
            if isinstance(reached, _Outside) or reached.container != container:
                entry, why = self._exec_entry(walk)
                return _Traced(tuple(links), entry, why)
            if reached.own_pid == 1:  # the container's init: the exited chain began there
                links.append(_Link.live(reached))
                return _Traced(tuple(links), Entry.INIT, "")
            rest = ancestry.walk(
                self._proc,
                reached.pid,
                max_links=max(self._max_links - len(links) - 1, 0),
                container_pids=self._container_pids,
            )
            if rest is None or rest.chain[0].start_ticks != reached.start_ticks:
                return None
            live, skip = rest, 0

    def _reparented(self, chain: tuple[Ancestor, ...]) -> tuple[int, Record] | None:
        """The first link whose recorded original parent is not its parent now.

        Never the pid namespace's init: it begins the container, and its own re-parenting
        (``runc run -d`` exits, the shim adopts it) happens outside.
        """
        for index, link in enumerate(chain):
            if link.own_pid == 1:
                return None
            record = self._lineage.record(link.pid)
            if record is not None and record.parent != link.ppid and same_instance(record, link):
                return index, record
        return None

    def _exited_ancestors(
        self, record: Record, container: str, links: list[_Link]
    ) -> Ancestor | _Outside | None:
        """Append ``record``'s exited ancestors to ``links``; the live one reached above them.

        ``_OUTSIDE`` when an exited one was read outside the container; None when the trail is
        lost (a record gone, a pid reused, /proc refused, the depth bound).
        """
        current = record
        while len(links) < self._max_links:
            parent = self._lineage.parent_of(current)
            if parent is None and current.parent_serial is not None:
                self._counters.add("ancestry_record_missing")
                return None
            if parent is not None and parent.exited:
                if parent.container is not None and parent.container != container:
                    return _OUTSIDE
                links.append(_Link.remembered(parent))
                current = parent
                continue
            try:
                live = ancestry.read_ancestor(self._proc, current.parent)
            except errors.AgentError:
                return None
            if parent is not None and not same_instance(parent, live):
                return None
            if not _started_before(live, current):
                return None
            return live
        return None

    @staticmethod
    def _exec_entry(walk: Walk) -> tuple[Entry, str]:
        """Exec for a chain whose top (live or exited) was started from outside the container.

        As for a live chain: not in the host's pid namespace, and the namespace's init is in
        this container (the live chain's top is it, or was found in the container's pids).
        """
        top = walk.chain[-1]
        if len(walk.chain[0].nspid) < 2:
            return Entry.UNKNOWN, "the container shares the host's pid namespace"
        if top.own_pid == 1 or walk.ns_init_in_container:
            return Entry.EXEC, ""
        return Entry.UNKNOWN, "the pid namespace's init is not in this container (shared)"

    def _take(self) -> bool:
        """Take one read from this second's budget.

        A storm of findings stays a storm of findings, not a storm of /proc walks (each costs
        about a millisecond).
        """
        now = int(self._clock())
        start, used = self._window
        if now != start:
            start, used = now, 0
        if used >= self._per_second:
            return False
        self._window = (start, used + 1)
        return True

    def _detached(self, pid: int) -> int | None:
        found = self._lineage.detached(pid)
        return None if found is None else found.parent

    def _upper_layer(self, subject: Ancestor, executable: str | None) -> bool | None:
        """Whether the reported executable is in the writable layer (see ``in_upper_layer``).

        The finding's path wins over /proc's link where they differ: behind a loader, or for
        an exec the gate refused, it names the program that was judged.
        """
        try:
            exe = self._proc.exe(subject.pid)
        except errors.AgentError:
            exe = None
        if exe is None or (executable is not None and exe.path != executable):
            if executable is None:
                return None
            exe = Executable(executable, deleted=False)
        return image_layers.in_upper_layer(self._proc, subject.pid, exe, subject.container)

    def _container_pids(self, pid: int) -> list[int]:
        if self._cgroups is None:
            return []
        lines = self._proc.cgroups(pid)
        dirs = self._cgroups.dirs_for(lines)
        if not dirs:
            return []
        owner = attribution.attribute_lines(lines)
        return self._cgroups.pids(ContainerCgroup(attribution=owner, dirs=dirs))

    def _boot_time(self) -> float | None:
        if self._boot is None:
            try:
                self._boot = self._proc.boot_time() or None
            except errors.AgentError:
                return None
        return self._boot
