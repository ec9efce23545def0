"""A typed reader for /proc with an injectable root.

Every read maps "the process went away" and "the kernel said no" to ``ProcessGone`` and
``AccessDenied``: callers count those, they are not bugs. Reads are bounded so that a process
with a 10 MB environment cannot make the agent allocate 10 MB. The root is injectable so unit
tests run on golden trees under tests/data/proc.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from node_agent import errors

PF_KTHREAD = 0x00200000
ARGV_LIMIT = 32 * 1024
ENVIRON_LIMIT = 64 * 1024
SMALL_LIMIT = 64 * 1024
MOUNTINFO_LIMIT = 1 << 20
MAPS_LIMIT = 1 << 20
MAX_THREADS = 32
"""Threads whose scheduler counters are summed per process (a miner runs one per core)."""


@dataclass(frozen=True, slots=True)
class ProcStat:
    """The fields of /proc/PID/stat the agent uses; ``start_ticks`` makes (pid, start) unique."""

    pid: int
    comm: str
    state: str
    ppid: int
    flags: int
    utime_ticks: int
    stime_ticks: int
    num_threads: int
    start_ticks: int
    rss_pages: int

    @property
    def kernel_thread(self) -> bool:
        """Whether the kernel marks this as one of its own threads."""
        return bool(self.flags & PF_KTHREAD)

    @property
    def cpu_ticks(self) -> int:
        """User plus system time, in clock ticks."""
        return self.utime_ticks + self.stime_ticks


@dataclass(frozen=True, slots=True)
class Executable:
    """What /proc/PID/exe points at, with the kernel's " (deleted)" suffix taken apart."""

    path: str
    deleted: bool

    @property
    def memfd(self) -> bool:
        """Whether the binary lives only in memory (``memfd_create``), a common dropper trick."""
        return self.path.startswith("/memfd:")

    @classmethod
    def from_link(cls, target: str) -> Executable:
        """Parse a readlink result such as ``/tmp/x (deleted)`` or ``/memfd:a (deleted)``."""
        suffix = " (deleted)"
        if target.endswith(suffix):
            return cls(path=target[: -len(suffix)], deleted=True)
        return cls(path=target, deleted=False)


@dataclass(frozen=True, slots=True)
class CgroupLine:
    """One line of /proc/PID/cgroup: hierarchy id, controllers ("" on v2) and path."""

    hierarchy: int
    controllers: tuple[str, ...]
    path: str

    @property
    def unified(self) -> bool:
        """Whether this is the cgroup v2 line (``0::/path``)."""
        return self.hierarchy == 0 and not self.controllers


@dataclass(frozen=True, slots=True)
class TaskCounters:
    """Cumulative CPU-demand and activity counters of one process, its threads summed.

    ``run_ns + wait_ns`` is the time the threads were runnable (on a CPU or queued for one,
    throttled included): what the process wants, whether or not it gets it. ``syscalls``
    (read/write-family calls) and ``io_bytes`` (storage) come from /proc/PID/io and are None
    where it cannot be read. At most ``MAX_THREADS`` threads are read.
    """

    run_ns: int
    wait_ns: int
    voluntary: int
    involuntary: int
    syscalls: int | None
    io_bytes: int | None
    threads: int


def parse_schedstat(text: str) -> tuple[int, int]:
    """(on-CPU ns, run-queue wait ns) from a schedstat line; zeros when malformed."""
    parts = text.split()
    if len(parts) < 2 or not parts[0].isdigit() or not parts[1].isdigit():
        return 0, 0
    return int(parts[0]), int(parts[1])


def parse_switches(text: str) -> tuple[int, int]:
    """(voluntary, involuntary) context switches from a status text."""
    voluntary = involuntary = 0
    for line in text.splitlines():
        name, _, value = line.partition(":")
        value = value.strip()
        if name == "voluntary_ctxt_switches" and value.isdigit():
            voluntary = int(value)
        elif name == "nonvoluntary_ctxt_switches" and value.isdigit():
            involuntary = int(value)
    return voluntary, involuntary


def parse_io(text: str) -> tuple[int | None, int | None]:
    """(read+write syscalls, storage bytes read+written) from /proc/PID/io."""
    values: dict[str, int] = {}
    for line in text.splitlines():
        name, _, value = line.partition(":")
        value = value.strip()
        if value.isdigit():
            values[name] = int(value)
    syscalls = (
        values["syscr"] + values["syscw"] if "syscr" in values and "syscw" in values else None
    )
    storage = (
        values["read_bytes"] + values["write_bytes"]
        if "read_bytes" in values and "write_bytes" in values
        else None
    )
    return syscalls, storage


def parse_cgroup_lines(text: str) -> tuple[CgroupLine, ...]:
    """Parse the text of /proc/PID/cgroup; malformed lines are skipped."""
    lines: list[CgroupLine] = []
    for raw in text.splitlines():
        parts = raw.split(":", 2)
        if len(parts) != 3 or not parts[0].isdigit():
            continue
        ctrls = tuple(c for c in parts[1].split(",") if c)
        lines.append(CgroupLine(hierarchy=int(parts[0]), controllers=ctrls, path=parts[2]))
    return tuple(lines)


def parse_stat(pid: int, text: str) -> ProcStat:
    """Parse /proc/PID/stat; the comm field may itself contain spaces and parentheses."""
    open_paren = text.find("(")
    close_paren = text.rfind(")")
    if open_paren < 0 or close_paren < open_paren:
        raise errors.ProcessGone(pid)
    rest = text[close_paren + 2 :].split()
    if len(rest) < 22:
        raise errors.ProcessGone(pid)
    return ProcStat(
        pid=pid,
        comm=text[open_paren + 1 : close_paren],
        state=rest[0],
        ppid=int(rest[1]),
        flags=int(rest[6]),
        utime_ticks=int(rest[11]),
        stime_ticks=int(rest[12]),
        num_threads=int(rest[17]),
        start_ticks=int(rest[19]),
        rss_pages=int(rest[21]),
    )


def split_nul(data: bytes) -> tuple[str, ...]:
    """Split a NUL-separated /proc blob, dropping the empty tail."""
    return tuple(p.decode("utf-8", "replace") for p in data.split(b"\0") if p)


def parse_environ(data: bytes) -> tuple[tuple[str, str], ...]:
    """Turn an environ blob into (name, value) pairs; entries without '=' are dropped."""
    pairs: list[tuple[str, str]] = []
    for entry in split_nul(data):
        name, sep, value = entry.partition("=")
        if sep and name:
            pairs.append((name, value))
    return tuple(pairs)


class ProcFS:
    """Reads /proc below ``root``; every method raises ProcessGone or AccessDenied on races."""

    def __init__(self, root: Path = Path("/proc")) -> None:
        self.root = root
        self._prefix = str(root)

    def _path(self, pid: int, name: str) -> str:
        return f"{self._prefix}/{pid}/{name}"

    def read_bytes(self, pid: int, name: str, limit: int = SMALL_LIMIT) -> bytes:
        """Read at most ``limit`` bytes of /proc/PID/<name>."""
        try:
            fd = os.open(self._path(pid, name), os.O_RDONLY | os.O_CLOEXEC)
        except OSError as err:
            raise _domain(pid, name, err) from err
        try:
            chunks: list[bytes] = []
            left = limit
            while left > 0:
                want = min(left, 65536)
                chunk = os.read(fd, want)
                if not chunk:
                    break
                chunks.append(chunk)
                left -= len(chunk)
                # No early stop on a short read: seq_file tables (net/tcp) answer a page per
                # read, so only an empty read means the end.
            return b"".join(chunks)
        except OSError as err:
            raise _domain(pid, name, err) from err
        finally:
            os.close(fd)

    def pids(self) -> list[int]:
        """The PIDs (thread-group leaders) currently listed under the root."""
        try:
            with os.scandir(self._prefix) as it:
                return [int(e.name) for e in it if e.name.isdigit()]
        except OSError as err:
            raise errors.KernelFeatureError(f"cannot list {self._prefix}: {err}") from err

    def stat(self, pid: int) -> ProcStat:
        """Parsed /proc/PID/stat."""
        return parse_stat(pid, self.read_bytes(pid, "stat", 4096).decode("utf-8", "replace"))

    def argv(self, pid: int, limit: int = ARGV_LIMIT) -> tuple[str, ...]:
        """The command line; empty for kernel threads and zombies."""
        return split_nul(self.read_bytes(pid, "cmdline", limit))

    def comm(self, pid: int) -> str:
        """The 15-character task name (what ``ps -o comm`` shows; trivially spoofed)."""
        return self.read_bytes(pid, "comm", 64).decode("utf-8", "replace").rstrip("\n")

    def environ(self, pid: int, limit: int = ENVIRON_LIMIT) -> tuple[tuple[str, str], ...]:
        """The initial environment, truncated at ``limit`` bytes."""
        return parse_environ(self.read_bytes(pid, "environ", limit))

    def cgroups(self, pid: int) -> tuple[CgroupLine, ...]:
        """The cgroup memberships of the process, one per hierarchy."""
        return parse_cgroup_lines(self.read_bytes(pid, "cgroup").decode("utf-8", "replace"))

    def status(self, pid: int) -> dict[str, str]:
        """/proc/PID/status as a name → value mapping."""
        text = self.read_bytes(pid, "status").decode("utf-8", "replace")
        out: dict[str, str] = {}
        for line in text.splitlines():
            name, sep, value = line.partition(":")
            if sep:
                out[name] = value.strip()
        return out

    def task_counters(self, pid: int, max_threads: int = MAX_THREADS) -> TaskCounters:
        """Scheduler, switch and I/O counters of ``pid``, summed over its first threads.

        A thread that exits while being read is skipped; the process itself gone raises.
        """
        task_dir = self._path(pid, "task")
        try:
            with os.scandir(task_dir) as it:
                tids = sorted(int(e.name) for e in it if e.name.isdigit())[:max_threads]
        except OSError as err:
            raise _domain(pid, "task", err) from err
        run = wait = voluntary = involuntary = threads = 0
        for tid in tids:
            try:
                sched = self.read_bytes(pid, f"task/{tid}/schedstat", 256)
                status = self.read_bytes(pid, f"task/{tid}/status", 8192)
            except errors.ProcessGone:
                continue
            r, w = parse_schedstat(sched.decode("ascii", "replace"))
            v, i = parse_switches(status.decode("utf-8", "replace"))
            run, wait, voluntary, involuntary = run + r, wait + w, voluntary + v, involuntary + i
            threads += 1
        if threads == 0:
            raise errors.ProcessGone(pid)
        try:
            syscalls, storage = parse_io(
                self.read_bytes(pid, "io", 1024).decode("ascii", "replace")
            )
        except errors.AccessDenied:
            syscalls, storage = None, None
        return TaskCounters(run, wait, voluntary, involuntary, syscalls, storage, threads)

    def uptime(self) -> float:
        """Seconds since boot (/proc/uptime), to turn start ticks into ages."""
        try:
            fd = os.open(f"{self._prefix}/uptime", os.O_RDONLY | os.O_CLOEXEC)
            try:
                text = os.read(fd, 256).decode("ascii", "replace")
            finally:
                os.close(fd)
            return float(text.split()[0])
        except (OSError, ValueError, IndexError) as err:
            raise errors.KernelFeatureError(f"cannot read {self._prefix}/uptime") from err

    def fd_target(self, pid: int, fd: int) -> str | None:
        """What descriptor ``fd`` of ``pid`` refers to (``pipe:[n]``, a path...); None if closed."""
        try:
            return str(Path(self._path(pid, f"fd/{fd}")).readlink())
        except FileNotFoundError:
            return None
        except OSError as err:
            raise _domain(pid, f"fd/{fd}", err) from err

    def maps(self, pid: int) -> str:
        """/proc/PID/maps, truncated at ``MAPS_LIMIT`` bytes (the program maps first)."""
        return self.read_bytes(pid, "maps", MAPS_LIMIT).decode("utf-8", "surrogateescape")

    def open_map_file(self, pid: int, start: str, end: str) -> int:
        """A read-only descriptor on the file mapped at ``start-end`` (deleted or memfd too)."""
        try:
            return os.open(
                self._path(pid, f"map_files/{start}-{end}"),
                os.O_RDONLY | os.O_CLOEXEC | os.O_NONBLOCK,
            )
        except OSError as err:
            raise _domain(pid, "map_files", err) from err

    def exe(self, pid: int) -> Executable | None:
        """The executable, or None for kernel threads (which have none)."""
        try:
            target = Path(self._path(pid, "exe")).readlink()
        except FileNotFoundError as err:
            if Path(self._path(pid, "stat")).exists():
                return None
            raise errors.ProcessGone(pid) from err
        except OSError as err:
            raise _domain(pid, "exe", err) from err
        return Executable.from_link(str(target))

    def exe_identity(self, pid: int) -> tuple[int, int, int, int]:
        """(device, inode, size, mtime ns) of the executable: the same bytes, whatever its name."""
        try:
            st = Path(self._path(pid, "exe")).stat()
        except OSError as err:
            raise _domain(pid, "exe", err) from err
        return st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns

    def open_exe(self, pid: int) -> int:
        """A read-only descriptor on the executable itself, deleted or memfd included."""
        try:
            return os.open(self._path(pid, "exe"), os.O_RDONLY | os.O_CLOEXEC | os.O_NONBLOCK)
        except OSError as err:
            raise _domain(pid, "exe", err) from err

    def cwd(self, pid: int) -> str:
        """The working directory as the process sees it."""
        try:
            return str(Path(self._path(pid, "cwd")).readlink())
        except OSError as err:
            raise _domain(pid, "cwd", err) from err

    def socket_inodes(self, pid: int) -> dict[int, int]:
        """Socket inode → fd number for every socket the process holds."""
        found: dict[int, int] = {}
        fd_dir = self._path(pid, "fd")
        try:
            with os.scandir(fd_dir) as it:
                names = [e.name for e in it]
        except OSError as err:
            raise _domain(pid, "fd", err) from err
        for name in names:
            try:
                link = str(Path(f"{fd_dir}/{name}").readlink())
            except OSError:
                continue  # closed while listing: not an error
            if link.startswith("socket:[") and link.endswith("]") and name.isdigit():
                found[int(link[8:-1])] = int(name)
        return found

    def net_file(self, pid: int, name: str) -> str:
        """/proc/PID/net/<name> (tcp, tcp6), i.e. the table of the process's network namespace."""
        return self.read_bytes(pid, f"net/{name}", 4 << 20).decode("ascii", "replace")

    def mountinfo(self, pid: int) -> str:
        """/proc/PID/mountinfo, the mounts as the process sees them; refused past 1 MiB.

        A truncated table could hide the last "/" line (the root the process really has), so
        it is an error rather than a partial answer.
        """
        data = self.read_bytes(pid, "mountinfo", MOUNTINFO_LIMIT)
        if len(data) >= MOUNTINFO_LIMIT:
            raise errors.AgentError(f"mountinfo of process {pid} exceeds {MOUNTINFO_LIMIT} bytes")
        return data.decode("utf-8", "surrogateescape")

    def mount_ns(self, pid: int) -> str:
        """The mount namespace link (``mnt:[inode]``), shared by all processes of a container."""
        try:
            return str(Path(self._path(pid, "ns/mnt")).readlink())
        except OSError as err:
            raise _domain(pid, "ns/mnt", err) from err

    def pid_ns(self, pid: int) -> str:
        """The pid namespace link (``pid:[inode]``), to tell which processes share one."""
        try:
            return str(Path(self._path(pid, "ns/pid")).readlink())
        except OSError as err:
            raise _domain(pid, "ns/pid", err) from err

    def host_root(self) -> str:
        """The host's / seen through PID 1: with hostPID (or on the host) that is the node's."""
        return self._path(1, "root")

    def task_root(self, pid: int) -> str:
        """The path through which the process's own filesystem view can be read.

        Only as a directory to resolve *within* (``kernel.container_files``): appending a
        container's path to it lets the container's absolute symlinks reach the node's files.
        """
        return self._path(pid, "root")

    def boot_time(self) -> float:
        """Boot time (epoch seconds) from /proc/stat, to turn start ticks into timestamps."""
        try:
            fd = os.open(f"{self._prefix}/stat", os.O_RDONLY | os.O_CLOEXEC)
            try:
                text = os.read(fd, 1 << 20).decode("ascii", "replace")
            finally:
                os.close(fd)
        except OSError as err:
            raise errors.KernelFeatureError(f"cannot read {self._prefix}/stat") from err
        for line in text.splitlines():
            if line.startswith("btime "):
                return float(line.split()[1])
        return 0.0


def _domain(pid: int, what: str, err: OSError) -> errors.AgentError:
    mapped = errors.process_error(pid, what, err)
    if mapped is not None:
        return mapped
    return errors.AgentError(f"reading {what} of process {pid}: {err}")


CLOCK_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
