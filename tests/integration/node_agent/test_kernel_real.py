"""Kernel interfaces on their own: fanotify exec gate, netns connections, pidfd kill."""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from minerguard.signatures.content import builtin_scanner
from node_agent.judge.agent_policy import AgentPolicies
from node_agent.judge.exe_content import ExecutableContent
from node_agent.kernel import kill, netconn
from node_agent.kernel.fanotify import Decider, ExecGate, GateDecision
from node_agent.kernel.procfs import ProcFS
from node_agent.layers import gating
from node_agent.records import Connection
from tests.support import wait_for

from .conftest import StratumPool, make_policy, require_root, require_tool

pytestmark = [pytest.mark.root, pytest.mark.timeout(60)]


@pytest.fixture
def tmpfs(tmp_path: Path) -> Iterator[Path]:
    require_root("fanotify on a test tmpfs")
    mount = tmp_path / "mnt"
    mount.mkdir()
    subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=16m", f"mg-{uuid.uuid4().hex[:8]}", str(mount)],
        check=True,
    )
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


MINER_STRINGS = b"\0stratum+tcp://%s\0mining.subscribe\0randomx\0"


def gate_decider() -> Decider:
    return gating.decider(AgentPolicies([make_policy()]), ExecutableContent(builtin_scanner()))


def test_the_exec_gate_refuses_a_miner_by_name_or_by_content_and_allows_the_rest(
    tmpfs: Path,
) -> None:
    shutil.copy("/bin/true", tmpfs / "xmrig")
    shutil.copy("/bin/true", tmpfs / "true")
    renamed = tmpfs / "app"  # a real executable carrying a stratum client's strings
    renamed.write_bytes(Path("/bin/true").read_bytes() + MINER_STRINGS)
    renamed.chmod(0o755)
    gate = ExecGate([tmpfs], gate_decider(), lifetime=20)
    gate.start()
    try:
        with pytest.raises(PermissionError):
            subprocess.run([str(tmpfs / "xmrig")], check=False, timeout=5)
        with pytest.raises(PermissionError):
            subprocess.run([str(renamed)], check=False, timeout=5)
        assert subprocess.run([str(tmpfs / "true")], check=False, timeout=5).returncode == 0
    finally:
        gate.stop()
    assert gate.denied == 2
    assert gate.allowed >= 1
    by_name, by_content = gate.refusals
    assert by_name.path.endswith("/xmrig")
    assert by_content.path.endswith("/app")
    assert "stratum+tcp://" in by_content.reason
    # with the gate gone the kernel allows again
    assert subprocess.run([str(tmpfs / "xmrig")], check=False, timeout=5).returncode == 0
    assert subprocess.run([str(renamed)], check=False, timeout=5).returncode == 0


def test_a_decider_that_raises_or_is_too_slow_fails_open(tmpfs: Path) -> None:
    shutil.copy("/bin/true", tmpfs / "true")

    def broken(_path: str, _fd: int, _pid: int) -> GateDecision:
        raise RuntimeError("decider bug")

    gate = ExecGate([tmpfs], broken, lifetime=10)
    gate.start()
    try:
        started = time.monotonic()
        assert subprocess.run([str(tmpfs / "true")], check=False, timeout=5).returncode == 0
        assert time.monotonic() - started < 1
    finally:
        gate.stop()
    assert gate.failed_open >= 1


@contextlib.contextmanager
def netns_pair() -> Iterator[tuple[str, str, str]]:
    ip = require_tool("ip")
    tag = uuid.uuid4().hex[:6]
    pool_ns, miner_ns = f"mgp-{tag}", f"mgm-{tag}"
    subnet = f"10.{77 + int(tag[:2], 16) % 50}.{int(tag[2:4], 16)}"
    commands = [
        [ip, "netns", "add", pool_ns],
        [ip, "netns", "add", miner_ns],
        [
            ip,
            "link",
            "add",
            f"mgv0{tag}",
            "netns",
            pool_ns,
            "type",
            "veth",
            "peer",
            "name",
            f"mgv1{tag}",
            "netns",
            miner_ns,
        ],
        [ip, "-n", pool_ns, "addr", "add", f"{subnet}.1/24", "dev", f"mgv0{tag}"],
        [ip, "-n", miner_ns, "addr", "add", f"{subnet}.2/24", "dev", f"mgv1{tag}"],
        [ip, "-n", pool_ns, "link", "set", f"mgv0{tag}", "up"],
        [ip, "-n", miner_ns, "link", "set", f"mgv1{tag}", "up"],
        [ip, "-n", pool_ns, "link", "set", "lo", "up"],
        [ip, "-n", miner_ns, "link", "set", "lo", "up"],
    ]
    try:
        for command in commands:
            subprocess.run(command, check=True, timeout=10)
        yield pool_ns, miner_ns, f"{subnet}.1"
    finally:
        for ns in (pool_ns, miner_ns):
            subprocess.run([ip, "netns", "del", ns], check=False, timeout=10)


POOL_IN_NS = r"""
import socket, sys, time
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind((sys.argv[1], 3333)); s.listen(1); s.settimeout(10)
c, _ = s.accept(); c.recv(4096); c.sendall(b'{"id":1,"result":{"status":"OK"}}\n'); time.sleep(8)
"""
MINER_IN_NS = r"""
import socket, sys, time
for _ in range(50):
    try:
        s = socket.create_connection((sys.argv[1], 3333), timeout=2); break
    except OSError:
        time.sleep(0.1)
s.sendall(b'{"id":1,"method":"login","params":{"login":"w"}}\n'); s.recv(4096); time.sleep(8)
"""


def test_connections_inside_a_pod_network_namespace_are_read_from_the_host() -> None:
    require_root("network namespaces")
    with netns_pair() as (pool_ns, miner_ns, pool_ip):
        ip = require_tool("ip")
        server = subprocess.Popen(
            [ip, "netns", "exec", pool_ns, sys.executable, "-c", POOL_IN_NS, pool_ip]
        )
        client = subprocess.Popen(
            [ip, "netns", "exec", miner_ns, sys.executable, "-c", MINER_IN_NS, pool_ip]
        )
        try:
            proc = ProcFS()

            def outbound() -> list[Connection]:
                with contextlib.suppress(Exception):
                    return netconn.outbound(netconn.connections(proc, client.pid))
                return []

            found = wait_for(outbound, 8, what="the miner's connection", interval=0.1)
            assert [(c.remote_address, c.remote_port) for c in found] == [(pool_ip, 3333)]
            assert (
                Path(f"/proc/{client.pid}/ns/net").readlink()
                != Path("/proc/self/ns/net").readlink()
            )
        finally:
            for p in (client, server):
                p.kill()
                p.wait(timeout=5)


def test_pidfd_kill_refuses_a_process_whose_start_time_does_not_match() -> None:
    require_root("signals to other processes")
    proc = ProcFS()
    child = subprocess.Popen(["/bin/sleep", "5"])
    try:
        start = proc.stat(child.pid).start_ticks
        reused = kill.kill(proc, child.pid, start + 1)
        assert reused.outcome is kill.KillOutcome.REUSED
        assert child.poll() is None
        assert kill.kill(proc, child.pid, start).outcome is kill.KillOutcome.KILLED
        assert child.wait(timeout=5) == -9
        assert kill.kill(proc, child.pid, start).outcome is kill.KillOutcome.GONE
    finally:
        with contextlib.suppress(ProcessLookupError):
            child.kill()


def test_stratum_pool_stub_answers_login(pool: StratumPool) -> None:
    import json
    import socket

    with socket.create_connection(("127.0.0.1", pool.port), timeout=5) as s:
        s.sendall(b'{"id":1,"method":"login","params":{}}\n')
        reply = json.loads(s.makefile().readline())
    assert reply["result"]["job"]["algo"] == "rx/0"
    assert errno.EPERM  # keeps errno imported for readers of the gate test


def test_a_connection_past_the_first_page_of_a_busy_tcp_table_is_found() -> None:
    # /proc/PID/net/tcp is a seq_file: each read returns at most a page (~27 sockets), so a
    # reader that stops at the first short read misses everything after it.
    import socket

    listeners = [socket.create_server(("127.0.0.1", 0)) for _ in range(120)]
    pool = StratumPool()
    client = socket.create_connection(("127.0.0.1", pool.port), timeout=5)
    try:
        table = ProcFS().net_file(os.getpid(), "tcp")
        assert table.count("\n") > 120  # the table really spans several pages
        found = netconn.outbound(netconn.connections(ProcFS(), os.getpid()))
        assert pool.port in {c.remote_port for c in found}
    finally:
        client.close()
        pool.close()
        for listener in listeners:
            listener.close()
