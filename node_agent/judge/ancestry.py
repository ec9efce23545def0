"""Who started a reported process, and was its executable shipped or dropped?

Two questions an incident responder asks of every process the agent reports:

- **Entry**: does its ancestry in the container begin at the container's first process
  (``Init``: the workload itself, or a dropper inside a compromised service), or at a process
  the runtime started in the running container later (``Exec``: ``kubectl exec``, ``runc
  exec``)? The container's first process is the one whose parent is outside the container and
  whose pid in its own pid namespace is 1. An exec'd process also has its parent outside the
  container (runc, the shim), but another pid. A process cannot change its own parent, so an
  exec session cannot pass itself off as the init by its chain.

  What an attacker can do is orphan: ``kubectl exec pod -- sh -c './miner &'`` and let the
  shell exit. The kernel re-parents the miner to its pid namespace's init, and its chain now
  reads "Init". The agent's ``Lineage`` (fed by fork and exit events) remembers that a process
  outlived the parent that forked it: a link adopted by the init that way makes the answer
  ``Unknown``, never a wrong ``Init``. Re-parenting to a subreaper is always to an original
  ancestor, so a chain through one is still true. Also ``Unknown``: a process sharing the
  host's pid namespace (hostPID), a pod sharing one pid namespace between its containers (the
  pause process is init, in another container), a chain cut by a vanished process, by /proc
  refusing, or by the depth bound; and an orphan whose fork the agent did not see (started
  before the agent, or while its events overran) cannot be told from a child of the init.

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
from dataclasses import replace
from pathlib import PurePosixPath

from minerguard.api.investigation import Entry, ExecutableOrigin
from node_agent import errors
from node_agent.counters import Counters
from node_agent.judge.lineage import Lineage
from node_agent.kernel import ancestry, attribution, image_layers
from node_agent.kernel.ancestry import Ancestor, Walk
from node_agent.kernel.cgroups import CgroupReader, ContainerCgroup
from node_agent.kernel.procfs import CLOCK_TICKS, Executable, ProcFS
from node_agent.records import Ancestry, Finding, ProcessLink

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


def executable_origin(
    upper_layer: bool | None, ancestors: Iterable[Ancestor]
) -> tuple[ExecutableOrigin, str | None]:
    """Where the executable came from, and the ancestor that fetched it where one did."""
    if upper_layer is None:
        return ExecutableOrigin.UNKNOWN, None
    if not upper_layer:
        return ExecutableOrigin.IMAGE, None
    for ancestor in ancestors:
        if fetches(ancestor.command_line):
            return ExecutableOrigin.DOWNLOADED, ancestor.command_line
    return ExecutableOrigin.WRITTEN_AFTER_START, None


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
        entry, why = decide_entry(walk, self._detached)
        upper = self._upper_layer(walk.chain[0], executable)
        origin, fetcher = executable_origin(upper, walk.chain[1:])
        boot = self._boot_time()
        links = tuple(
            ProcessLink(
                pid=a.pid,
                executable=a.executable,
                command_line=a.command_line,
                started_at=None if boot is None else boot + a.start_ticks / CLOCK_TICKS,
            )
            for a in walk.chain[1:]
        )
        return Ancestry(links, entry, origin, fetcher, why)

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
