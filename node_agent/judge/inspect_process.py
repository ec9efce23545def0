"""One process as the signature engine sees it: argv, executable, environment, config files.

Config files named on the command line (``-c FILE``, ``--config FILE``, ``--config=FILE``) are
read through /proc/PID/root and /proc/PID/cwd, so the agent reads the file the process sees
inside its container. Reads are bounded, regular files only, non-blocking (a FIFO cannot
stall the agent) and the final path component is not followed if it is a symlink. Whether the
executable was written into the container after it started comes from ``image_layers``.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass

from node_agent import errors
from node_agent.judge.exe_content import ExecutableContent
from node_agent.kernel import attribution, image_layers
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


def read_bounded(path: str, limit: int = CONFIG_LIMIT) -> str | None:
    """The first ``limit`` bytes of a regular file, or None."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return None
        return os.read(fd, limit).decode("utf-8", "replace")
    except OSError:
        return None
    finally:
        os.close(fd)


def snapshot(
    proc: ProcFS,
    pid: int,
    *,
    with_env: bool = True,
    with_config: bool = True,
    owner: attribution.Attribution | None = None,
    content: ExecutableContent | None = None,
) -> ProcessSnapshot:
    """Read a process; raises ProcessGone or AccessDenied (callers count those).

    ``owner`` may be passed when the caller already read /proc/PID/cgroup to filter;
    ``content`` scans the executable's bytes (once per file, it caches).
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
            if path.startswith("/"):
                full = proc.task_root(pid) + path
            else:
                full = f"{proc.task_cwd(pid)}/{path}"
            text = read_bounded(full)
            if text is not None:
                texts.append(text)
    upper = None if exe is None else image_layers.in_upper_layer(proc, pid, exe, owner.key)
    found = None
    if exe is not None and content is not None:
        try:
            found = content.of_process(proc, pid)
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
