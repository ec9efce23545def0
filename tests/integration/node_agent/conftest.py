"""Real-kernel fixtures: kubelet-shaped cgroups, a stub stratum pool, an agent in a thread.

Every fixture cleans up in ``finally``; names are random so parallel runs do not collide.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socketserver
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from minerguard.compiled_policy import CompiledPolicy
from node_agent import errors
from node_agent.agent import Agent
from node_agent.kernel.procfs import ProcFS
from node_agent.records import Finding, PodRef
from node_agent.settings import AgentSettings
from node_agent.wiring import build_agent
from tests.support import policy, wait_for

CGROUP_ROOT = Path("/sys/fs/cgroup")
CONTROLLERS = ("cpu", "cpuacct", "memory", "pids", "blkio")


def require_root(feature: str) -> None:
    """Skip without root, unless CI=true: there a missing capability is a failure."""
    if os.geteuid() == 0:
        return
    message = f"{feature} needs root (real cgroups, netlink, fanotify or netns)"
    if os.environ.get("CI") == "true":
        pytest.fail(f"{message}; CI=true, so this is a failure, not a skip")
    pytest.skip(message)


def require_tool(name: str) -> str:
    """The path of a system tool; skip (or fail under CI) when it is missing."""
    for directory in ("/usr/sbin", "/usr/bin", "/sbin", "/bin"):
        candidate = Path(directory) / name
        if candidate.exists():
            return str(candidate)
    message = f"{name} is not installed (apt-get install it)"
    if os.environ.get("CI") == "true":
        pytest.fail(message)
    pytest.skip(message)
    raise AssertionError  # unreachable


def own_cgroup(controller: str) -> str:
    for line in Path("/proc/self/cgroup").read_text().splitlines():
        _, ctrls, path = line.split(":", 2)
        if controller in ctrls.split(","):
            return path.rstrip("/")
    return ""


class Pod:
    """One container's cgroups in the kubelet cgroupfs layout, nested under ours."""

    def __init__(self, qos: str = "burstable") -> None:
        self.uid = str(uuid.uuid4())
        self.container_id = uuid.uuid4().hex + uuid.uuid4().hex
        rel = f"kubepods/{qos}/pod{self.uid}/{self.container_id}"
        self.dirs = {
            c: CGROUP_ROOT / c / own_cgroup(c).lstrip("/") / rel
            for c in CONTROLLERS
            if (CGROUP_ROOT / c).is_dir()
        }
        for directory in self.dirs.values():
            directory.mkdir(parents=True, exist_ok=True)
        self.processes: list[subprocess.Popen[bytes]] = []

    def join(self) -> None:
        """preexec_fn: move the child into every controller before it execs."""
        for directory in self.dirs.values():
            (directory / "cgroup.procs").write_text("0")

    def spawn(self, argv: list[str], **kwargs: object) -> subprocess.Popen[bytes]:
        proc = subprocess.Popen(argv, preexec_fn=self.join, **kwargs)  # type: ignore[call-overload]  # noqa: PLW1509
        self.processes.append(proc)
        return proc  # type: ignore[no-any-return]

    def set_quota(self, cores: float) -> None:
        quota = str(int(cores * 100_000))
        (self.dirs["cpu"].parent / "cpu.cfs_quota_us").write_text(quota)
        (self.dirs["cpu"] / "cpu.cfs_quota_us").write_text(quota)

    def cleanup(self) -> None:
        for proc in self.processes:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=5)
        for directory in self.dirs.values():
            for stray in (directory / "cgroup.procs").read_text().split():
                with contextlib.suppress(ProcessLookupError):
                    os.kill(int(stray), signal.SIGKILL)
        time.sleep(0.05)
        for directory in self.dirs.values():
            for level in (directory, directory.parent):
                for _ in range(50):
                    try:
                        level.rmdir()
                        break
                    except FileNotFoundError:
                        break
                    except OSError:
                        time.sleep(0.02)
            for shared in (directory.parent.parent, directory.parent.parent.parent):
                with contextlib.suppress(OSError):
                    shared.rmdir()  # qos and kubepods levels: only when nobody else uses them


@pytest.fixture
def pods() -> Iterator[list[Pod]]:
    """A factory list: append ``Pod()`` objects; all are removed afterwards."""
    require_root("kubelet-shaped cgroups")
    made: list[Pod] = []
    try:
        yield made
    finally:
        for pod in made:
            pod.cleanup()


class StratumPool(socketserver.ThreadingTCPServer):
    """A stub pool speaking newline-delimited JSON-RPC (login → job, submit → OK)."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, host: str = "127.0.0.1") -> None:
        super().__init__((host, 0), _PoolHandler)
        self.logins: list[dict[str, object]] = []
        self.thread = threading.Thread(target=self.serve_forever, kwargs={"poll_interval": 0.1})
        self.thread.daemon = True
        self.thread.start()

    @property
    def port(self) -> int:
        return int(self.server_address[1])

    def close(self) -> None:
        self.shutdown()
        self.server_close()


class _PoolHandler(socketserver.StreamRequestHandler):
    def handle(self) -> None:
        server = self.server
        assert isinstance(server, StratumPool)
        for raw in self.rfile:
            try:
                message = json.loads(raw)
            except ValueError:
                return
            if message.get("method") == "login":
                server.logins.append(message)
                result: object = {
                    "id": "1",
                    "job": {
                        "job_id": "j1",
                        "blob": "00" * 76,
                        "target": "ffff0000",
                        "algo": "rx/0",
                    },
                    "status": "OK",
                }
            else:
                result = {"status": "OK"}
            reply = {"id": message.get("id"), "jsonrpc": "2.0", "error": None, "result": result}
            self.wfile.write(json.dumps(reply).encode() + b"\n")


@pytest.fixture
def pool() -> Iterator[StratumPool]:
    server = StratumPool()
    try:
        yield server
    finally:
        server.close()


MINER = r"""
import hashlib, json, socket, sys, time
port, seconds = int(sys.argv[1]), float(sys.argv[2])
duty_on = float(sys.argv[3]) if len(sys.argv) > 3 else 0.0
duty_off = float(sys.argv[4]) if len(sys.argv) > 4 else 0.0
s = socket.create_connection(("127.0.0.1", port), timeout=5)
login = {"id": 1, "jsonrpc": "2.0", "method": "login",
         "params": {"login": "wallet", "pass": "x", "agent": "sim/1.0"}}
s.sendall(json.dumps(login).encode() + b"\n"); s.recv(4096)
end = time.monotonic() + seconds
h = hashlib.sha256(b"job")
cycle_start = time.monotonic()
while time.monotonic() < end:
    if duty_on and time.monotonic() - cycle_start > duty_on:
        time.sleep(duty_off); cycle_start = time.monotonic(); continue
    for _ in range(20000):
        h.update(b"n")
"""

NUMERIC = r"""
import sys, time
end = time.monotonic() + float(sys.argv[1])
x = 0.0
while time.monotonic() < end:
    for i in range(20000):
        x = (x + i * 1.0001) % 1e9
"""


def miner_argv(port: int, seconds: float, *extra: str) -> list[str]:
    return [sys.executable, "-c", MINER, str(port), str(seconds), *extra]


def make_policy(pool_port: int = 3333, kill: bool = False, window: int = 10) -> CompiledPolicy:
    """The policy these tests judge by: built-in signatures plus a pool port and two names."""
    return policy(
        "it",
        builtinSignatures=True,
        signatures={"poolPorts": [pool_port], "binaries": ["xmrig", "sysupdate"]},
        behaviour={"windowSeconds": window},
        actions={"runtime": ["Alert", "KillProcess"] if kill else ["Alert"]},
    )


class Collect:
    """A sink that keeps findings for assertions."""

    def __init__(self) -> None:
        self.findings: list[Finding] = []
        self.seen = threading.Event()

    def emit(self, finding: Finding, pod: PodRef | None) -> None:
        self.findings.append(finding)
        self.seen.set()

    def for_pod(self, pod: Pod) -> list[Finding]:
        return [f for f in self.findings if f.pod_uid == pod.uid]

    def wait_for(self, pod: Pod, layer: str, timeout: float, *, what: str = "") -> Finding:
        """The pod's first finding in ``layer``; fails the test if none comes in time."""
        return self.wait_for_match(
            lambda f: f.pod_uid == pod.uid and f.layer == layer,
            timeout,
            what=what or f"a {layer} finding for pod {pod.uid}",
        )

    def wait_for_match(
        self, match: Callable[[Finding], bool], timeout: float, *, what: str
    ) -> Finding:
        """The first finding that ``match`` accepts; fails naming ``what`` and what was found."""
        return wait_for(
            lambda: next((f for f in list(self.findings) if match(f)), None),
            timeout,
            what=lambda: f"{what}; found instead: {[f.summary for f in self.findings]}",
        )


class RunningAgent:
    def __init__(self, agent: Agent, sink: Collect) -> None:
        self.agent = agent
        self.sink = sink
        self.stop = threading.Event()
        self.thread = threading.Thread(target=agent.run, kwargs={"duration": 60, "stop": self.stop})
        self.thread.start()


@contextlib.contextmanager
def running_agent(compiled: CompiledPolicy, **overrides: object) -> Iterator[RunningAgent]:
    """The real agent (proc connector, real cgroups) in a thread, judging pods only."""
    values: dict[str, object] = {
        "no_cluster": True,
        "sample_interval": 0.5,
        "rescan_interval": 1.0,
        "discover_every": 1,
        "include_host_processes": False,
        "event_source": "connector",
        "status_interval": 3600,
    }
    values.update(overrides)
    settings = AgentSettings(**values)  # type: ignore[arg-type]
    sink = Collect()
    agent = build_agent(settings, sink, policies=[compiled])
    running = RunningAgent(agent, sink)
    try:
        time.sleep(0.2)
        yield running
    finally:
        running.stop.set()
        running.thread.join(timeout=10)
        agent.close()


def remove_runtime_cgroups(rel: str) -> None:
    """runc removes only the leaf: remove the pod level too, and qos/kubepods when unused."""
    for ctrl in (*CONTROLLERS, "cpuset", "devices", "freezer", "systemd", "unified"):
        base = CGROUP_ROOT / ctrl
        if not base.is_dir():
            continue
        leaf = base / own_cgroup(ctrl if ctrl != "systemd" else "name=systemd").lstrip("/") / rel
        for level in (leaf, leaf.parent, leaf.parent.parent, leaf.parent.parent.parent):
            for _ in range(40):
                try:
                    level.rmdir()
                    break
                except FileNotFoundError:
                    break
                except OSError:
                    if level not in (leaf, leaf.parent):
                        break  # shared qos/kubepods levels: leave them to whoever uses them
                    time.sleep(0.05)


def children(proc: ProcFS, parent: int) -> list[int]:
    found = []
    for pid in proc.pids():
        with contextlib.suppress(errors.AgentError):
            if proc.stat(pid).ppid == parent:
                found.append(pid)
    return found


def wait_for_exe(proc: ProcFS, pid: int, path: str, timeout: float = 5) -> None:
    """Wait until process ``pid`` runs the executable at ``path``."""

    def runs_it() -> bool:
        exe = proc.exe(pid)
        return exe is not None and exe.path == path

    wait_for(runs_it, timeout, what=f"process {pid} to run {path}", interval=0.02)
