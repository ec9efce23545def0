"""One process as the signature engine sees it: argv, executable, environment, config files.

Config files named on the command line (``-c FILE``, ``--config FILE``, ``--config=FILE``) are
the container's claim, read as the process would see them but never trusted for more: resolved
by openat2 inside /proc/PID/root (a relative path from the process's working directory),
typed before any open (a FIFO, socket or device is never opened, so the agent never takes a
workload's input), bounded, and run off the agent loop under a deadline
(``kernel.container_files``). Whether the executable was written into the container after it
started comes from ``image_layers``.

The program judged is the one actually run (``launchers``): run through the dynamic loader,
``exe`` is the program the loader maps (its path, bytes and layer), the loader is named in
``launcher``, and ``program_argv`` is the argv the program was given. An interpreter whose
code is not on its command line says so in ``hidden_code``.
"""

from __future__ import annotations

from dataclasses import dataclass

from node_agent import errors
from node_agent.judge import launchers
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
    launcher: str | None = None
    """The launcher looked through (the dynamic loader run directly), named for evidence."""
    program_start: int = 0
    """Where the program's own argv starts in ``argv`` (1 past a loader and its options)."""
    hidden_code: str | None = None
    """Why an interpreter's program is not on its command line; None when it is (or no
    interpreter)."""

    @property
    def program_argv(self) -> tuple[str, ...]:
        """The argv of the program actually run (without a loader in front of it)."""
        return self.argv[self.program_start :]

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
    launcher: str | None = None
    start = 0
    mapping: launchers.Mapping | None = None
    if exe is not None and launchers.is_loader(exe):
        seen = _loaded_program(proc, pid, argv, exe)
        if seen is not None:
            start, mapping, launcher = seen
            exe = Executable(path=mapping.path, deleted=mapping.deleted)
    hidden = _hidden_code(proc, pid, argv[start:], exe, files)
    upper = None if exe is None else image_layers.in_upper_layer(proc, pid, exe, owner.key)
    found = None
    if exe is not None and content is not None:
        scan = content
        held = mapping

        def work() -> Reason | None:
            if held is not None:
                return scan.of_mapping(proc, pid, held.start, held.end)
            return scan.of_process(proc, pid)

        try:
            found = work() if files is None else files.call(work, files.scan_deadline_s)
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
        launcher=launcher,
        program_start=start,
        hidden_code=hidden,
    )


def _loaded_program(
    proc: ProcFS, pid: int, argv: tuple[str, ...], loader: Executable
) -> tuple[int, launchers.Mapping, str] | None:
    """The program a directly run loader maps: (argv index, its mapping, the launcher named)."""
    found = launchers.loader_program(argv)
    if found is None:
        return None
    index, program = found
    try:
        cwd: str | None = proc.cwd(pid)
    except errors.AgentError:
        cwd = None
    try:
        mapping = launchers.program_mapping(
            launchers.parse_maps(proc.maps(pid)), program, cwd, loader
        )
    except errors.AccessDenied:
        return None
    if mapping is None:
        return None
    return index, mapping, f"run through the dynamic loader {loader.path}"


def _hidden_code(
    proc: ProcFS,
    pid: int,
    argv: tuple[str, ...],
    exe: Executable | None,
    files: container_files.FileReader | None,
) -> str | None:
    """Why an interpreter's program is not on its command line (None: it is, or no interpreter)."""
    interpreter = launchers.interpreter_of(exe)
    if interpreter is None:
        return None
    operand = launchers.script_operand(argv, interpreter)
    stdin: str | None = None
    missing = False
    if operand is None:
        try:
            stdin = proc.fd_target(pid, 0)
        except errors.AccessDenied:
            return None
    elif operand and operand.startswith("/") and not launchers.FROM_DESCRIPTOR.match(operand):
        missing = _script_missing(proc, pid, operand, files)
    elif operand and not operand.startswith("/"):
        try:
            cwd = proc.cwd(pid)
        except errors.AgentError:
            cwd = ""
        if cwd.startswith("/") and not cwd.endswith(" (deleted)"):
            missing = _script_missing(proc, pid, f"{cwd.rstrip('/')}/{operand}", files)
    return launchers.hidden_code(argv, interpreter, stdin, missing)


def _script_missing(
    proc: ProcFS, pid: int, path: str, files: container_files.FileReader | None
) -> bool:
    """Whether ``path`` is gone from the process's root (a script deleted after start)."""
    root = proc.task_root(pid)

    def work() -> bool:
        try:
            container_files.lstat_in_root(root, path)
        except FileNotFoundError:
            return True
        except (OSError, errors.AgentError):
            return False
        return False

    try:
        return work() if files is None else files.call(work)
    except errors.AgentError:
        return False
