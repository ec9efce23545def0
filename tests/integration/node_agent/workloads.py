"""Bounded workloads for the demand and launcher tests: benign CPU-bound work and miners.

Benign: a compression loop (reads its input file each round, writes the result), a
compile-like loop (writes a module and byte-compiles it), a hashing benchmark reading a file
in 64 KiB chunks, and a numeric loop that only computes (the hardest benign case: it has the
miner's profile, but no pool). Miners: a hashing loop that speaks stratum to a stub pool
listening on a built-in pool port (3333) inside a network namespace the test creates, so the
default policy applies and no traffic leaves the namespace. Every program ends by itself
after the seconds it is given.
"""

from __future__ import annotations

import contextlib
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

from tests.support import wait_for

from .conftest import require_tool

POOL_PORT = 3333
"""A pool port of the built-in bundle: the default policy knows it."""

COMPRESS = r"""
import os, sys, time, zlib, tempfile
end = time.monotonic() + float(sys.argv[1])
d = tempfile.mkdtemp()
src = os.path.join(d, "in")
with open(src, "wb") as f:
    f.write(os.urandom(1 << 19) + b"the quick brown fox " * 30000)
while time.monotonic() < end:
    with open(src, "rb") as f:
        data = f.read()
    with open(os.path.join(d, "out"), "wb") as f:
        f.write(zlib.compress(data, 6))
"""

COMPILE = r"""
import os, py_compile, random, sys, time, tempfile
end = time.monotonic() + float(sys.argv[1])
d = tempfile.mkdtemp()
n = 0
while time.monotonic() < end:
    n += 1
    path = os.path.join(d, f"m{n % 8}.py")
    with open(path, "w") as f:
        for i in range(60):
            f.write(f"def f{i}(x):\n    return sum(j * {random.random()} for j in range(x))\n")
    py_compile.compile(path, doraise=True)
"""

HASHING = r"""
import hashlib, os, sys, time, tempfile
end = time.monotonic() + float(sys.argv[1])
d = tempfile.mkdtemp()
src = os.path.join(d, "blob")
with open(src, "wb") as f:
    f.write(os.urandom(4 << 20))
while time.monotonic() < end:
    h = hashlib.sha256()
    with open(src, "rb") as f:
        while chunk := f.read(65536):
            h.update(chunk)
    with open(os.path.join(d, "sum"), "w") as f:
        f.write(h.hexdigest())
"""

NUMERIC = r"""
import sys, time
end = time.monotonic() + float(sys.argv[1])
x = 0.0
while time.monotonic() < end:
    for i in range(20000):
        x = (x + i * 1.0001) % 1e9
"""

BENIGN = {"compression": COMPRESS, "compile": COMPILE, "hashing": HASHING, "numeric": NUMERIC}

STDIN_MINER = r"""
import hashlib, json, socket, time
s = socket.create_connection(("127.0.0.1", {port}), timeout=5)
login = {{"id": 1, "jsonrpc": "2.0", "method": "login",
          "params": {{"login": "wallet", "pass": "x", "agent": "sim/1.0"}}}}
s.sendall(json.dumps(login).encode() + b"\n"); s.recv(4096)
end = time.monotonic() + {seconds}
h = hashlib.sha256(b"job")
while time.monotonic() < end:
    for _ in range(20000):
        h.update(b"n")
"""
"""A miner with no miner binary: its program comes on stdin (``python3 -``)."""

POOL = r"""
import json, socketserver, sys
class H(socketserver.StreamRequestHandler):
    def handle(self):
        for raw in self.rfile:
            try:
                m = json.loads(raw)
            except ValueError:
                return
            r = {"id": m.get("id"), "jsonrpc": "2.0", "error": None,
                 "result": {"id": "1", "job": {"job_id": "j1", "blob": "00" * 76,
                            "target": "ffff0000", "algo": "rx/0"}, "status": "OK"}}
            self.wfile.write(json.dumps(r).encode() + b"\n")
class S(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True
S(("127.0.0.1", int(sys.argv[1])), H).serve_forever(poll_interval=0.2)
"""


def visible_miner(seconds: float, port: int = POOL_PORT) -> list[str]:
    """argv of the same miner with its program on the command line (``python3 -c``)."""
    return [sys.executable, "-c", STDIN_MINER.format(port=port, seconds=seconds)]


def stdin_miner(seconds: float, port: int = POOL_PORT) -> bytes:
    """The miner program to write to an interpreter's stdin."""
    return STDIN_MINER.format(port=port, seconds=seconds).encode()


@dataclass
class PoolNetns:
    """A network namespace holding a stub pool on 127.0.0.1:``port``."""

    name: str
    ip: str
    port: int

    def prefix(self) -> list[str]:
        """argv prefix that runs a program inside the namespace."""
        return [self.ip, "netns", "exec", self.name]


@contextlib.contextmanager
def pool_netns(port: int = POOL_PORT) -> Iterator[PoolNetns]:
    """A fresh namespace (random name) with loopback up and the stub pool listening."""
    ip = require_tool("ip")
    name = f"mg-demand-{uuid.uuid4().hex[:8]}"
    subprocess.run([ip, "netns", "add", name], check=True, timeout=10)
    server: subprocess.Popen[bytes] | None = None
    try:
        subprocess.run([ip, "-n", name, "link", "set", "lo", "up"], check=True, timeout=10)
        server = subprocess.Popen(
            [ip, "netns", "exec", name, sys.executable, "-c", POOL, str(port)]
        )
        probe = "import socket,sys; socket.create_connection(('127.0.0.1', int(sys.argv[1])), 1)"

        def listening() -> bool:
            done = subprocess.run(
                [ip, "netns", "exec", name, sys.executable, "-c", probe, str(port)],
                check=False,
                capture_output=True,
                timeout=10,
            )
            return done.returncode == 0

        wait_for(listening, 10, what=f"the stub pool in {name}", interval=0.1)
        yield PoolNetns(name=name, ip=ip, port=port)
    finally:
        if server is not None:
            server.kill()
            server.wait(timeout=5)
        time.sleep(0.05)
        subprocess.run([ip, "netns", "del", name], check=False, timeout=10)
