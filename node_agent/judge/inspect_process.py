"""One process as the signature engine sees it: argv, executable, environment, config files.

Config files named on the command line (``-c FILE``, ``--config FILE``, ``--config=FILE``) are
the container's claim, read as the process would see them but never trusted for more: resolved
by openat2 inside /proc/PID/root (a relative path from the process's working directory),
typed before any open (a FIFO, socket or device is never opened, so the agent never takes a
workload's input), bounded, and run off the agent loop under a deadline
(``kernel.container_files``). Whether the executable was written into the container after it
started comes from ``image_layers``.
"""

from __future__ import annotations

from dataclasses import dataclass

from node_agent import errors
from node_agent.judge.exe_content import ExecutableContent
from node_agent.kernel import attribution, container_files, image_layers
from node_agent.kernel.procfs import Executable, ProcFS
from node_agent.records import Reason

CONFIG_OPTIONS = frozenset({"-c", "--config", "-config", "--config-file", "--cfg"})
CONFIG_LIMIT = 64 * 1024
MAX_CONFIG_FILES = 2


@dataclass(frozen=True, slots=True)
class ProcessSnapshot:
    """What the agent knows about one process at one instant."""

    pid: int
    start_ticks: int
    ppid: int
    comm: str
    argv: tuple[str, ...]
    exe: Executable | None
    env: tuple[tuple[str, str], ...]
    owner: attribution.Attribution
    kernel_thread: bool
    texts: tuple[str, ...] = ()
    upper_layer: bool | None = None
    """Executable in the container's writable layer (not in the image); None: cannot tell."""
    content: Reason | None = None
    """Miner strings in the executable's bytes (``exe_content``), when looked for."""

    @property
    def command_line(self) -> str:
        """The argv joined by spaces, as evidence shows it."""
        return " ".join(self.argv)


def config_paths(argv: tuple[str, ...]) -> list[str]:
    """Files named by config options, in order, at most ``MAX_CONFIG_FILES``."""
    found: list[str] = []
    for index, arg in enumerate(argv[1:], start=1):
        name, eq, value = arg.partition("=")
        if eq and name in CONFIG_OPTIONS and value:
            found.append(value)
        elif arg in CONFIG_OPTIONS and index + 1 < len(argv):
            found.append(argv[index + 1])
    return found[:MAX_CONFIG_FILES]


def read_config(
    proc: ProcFS, pid: int, path: str, files: container_files.FileReader | None = None
) -> str | None:
    """The first ``CONFIG_LIMIT`` bytes of a config file as ``pid`` names it, or None.

    Resolved inside the process's root (``container_files``); a relative path is taken from
    the process's working directory as it sees it. Anything refused, too slow, or unreadable
    on this kernel is None: the rest of the snapshot stands.
    """
    target = path
    if not path.startswith("/"):
        try:
            cwd = proc.cwd(pid)
        except errors.AgentError:
            return None
        if not cwd.startswith("/") or cwd.endswith(" (deleted)"):
            return None
        target = f"{cwd.rstrip('/')}/{path}"
    root = proc.task_root(pid)

    def work() -> bytes:
        return container_files.read_in_root(root, target, CONFIG_LIMIT)

    try:
        data = work() if files is None else files.call(work)
    except (container_files.FileRefused, container_files.ReadAbandoned):
        return None
    except errors.KernelFeatureError:
        return None  # no openat2: fail closed, never read through the agent's own root
    return data.decode("utf-8", "replace")


def snapshot(
    proc: ProcFS,
    pid: int,
    *,
    with_env: bool = True,
    with_config: bool = True,
    owner: attribution.Attribution | None = None,
    content: ExecutableContent | None = None,
    files: container_files.FileReader | None = None,
) -> ProcessSnapshot:
    """Read a process; raises ProcessGone or AccessDenied (callers count those).

    ``owner`` may be passed when the caller already read /proc/PID/cgroup to filter;
    ``content`` scans the executable's bytes (once per file, it caches); ``files`` runs the
    reads of container files (configs, executable bytes) off the caller's thread under a
    deadline (None: read on this thread, for tools and tests).
    """
    st = proc.stat(pid)
    if owner is None:
        owner = attribution.attribute_lines(proc.cgroups(pid))
    argv = proc.argv(pid)
    exe = None if st.kernel_thread else proc.exe(pid)
    env: tuple[tuple[str, str], ...] = ()
    if with_env and not st.kernel_thread:
        try:
            env = proc.environ(pid)
        except errors.AccessDenied:
            env = ()
    texts: list[str] = []
    if with_config:
        for path in config_paths(argv):
            text = read_config(proc, pid, path, files)
            if text is not None:
                texts.append(text)
    upper = None if exe is None else image_layers.in_upper_layer(proc, pid, exe, owner.key)
    found = None
    if exe is not None and content is not None:
        try:
            scan = content
            found = (
                scan.of_process(proc, pid)
                if files is None
                else files.call(lambda: scan.of_process(proc, pid), files.scan_deadline_s)
            )
        except errors.AgentError:
            found = None  # evidence we could not read; the rest of the snapshot stands
    again = proc.stat(pid)
    if again.start_ticks != st.start_ticks:
        raise errors.ProcessGone(pid)  # the PID was reused while reading
    return ProcessSnapshot(
        pid=pid,
        start_ticks=st.start_ticks,
        ppid=st.ppid,
        comm=st.comm,
        argv=argv,
        exe=exe,
        env=env,
        owner=owner,
        kernel_thread=st.kernel_thread,
        texts=tuple(texts),
        upper_layer=upper,
        content=found,
    )
