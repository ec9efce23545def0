"""Exhausting the webhook: slow bodies, large bodies, reviews that cost seconds to judge.

With ``failurePolicy: Fail`` a webhook replica that runs out of memory or stalls is a
cluster-wide outage of pod creation; with ``Ignore`` it is a bypass. Every test here runs the
real ``python -m webhook`` over TLS on loopback and attacks it as a pod on the cluster
network could: raw sockets trickling bodies, bodies larger than any API server sends, and
reviews of legal pods built to be expensive to judge.
"""

from __future__ import annotations

import asyncio
import select
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path

import httpx
import orjson
import pytest

from tests.integration.webhook.conftest import PKI, POOL, Server
from tests.integration.webhook.reviews import container, pod, review
from webhook import bodies
from webhook import review as wire

pytestmark = pytest.mark.slow
MIB = 1 << 20


@pytest.fixture
def pki(tmp_path: Path) -> PKI:
    return PKI.issue(tmp_path)


Start = Callable[..., Server]


@pytest.fixture
def start(pki: PKI) -> Iterator[Start]:
    started: list[Server] = []

    def run(env: Mapping[str, str] | None = None) -> Server:
        server = Server(pki, (), env or {})
        started.append(server)
        return server.wait_ready()

    yield run
    for server in started:
        server.stop()


def rss(server: Server) -> int:
    """Resident memory of the webhook process (one worker: the process itself), in bytes."""
    for line in Path(f"/proc/{server.process.pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


def connect(server: Server) -> ssl.SSLSocket:
    raw = socket.create_connection(("127.0.0.1", server.port), timeout=20)
    return server.pki.client_context().wrap_socket(raw, server_hostname="127.0.0.1")


def head(length: int | None) -> bytes:
    size = f"Content-Length: {length}" if length is not None else "Transfer-Encoding: chunked"
    return (
        f"POST /validate HTTP/1.1\r\nHost: webhook\r\nContent-Type: application/json\r\n"
        f"{size}\r\n\r\n"
    ).encode()


class SlowClient(threading.Thread):
    """Declares ``length`` bytes, sends ``upfront`` at once, then one byte every 0.2 s.

    Records when the server cut it off and the status line it answered with, if any.
    """

    def __init__(self, server: Server, length: int, upfront: int, give_up: float) -> None:
        super().__init__(daemon=True)
        self.server, self.length, self.upfront, self.give_up = server, length, upfront, give_up
        self.cut_after: float | None = None
        self.status = b""

    def run(self) -> None:
        started = time.monotonic()
        with connect(self.server) as sock:
            try:
                sock.sendall(head(self.length) + b"{" + b" " * (self.upfront - 1))
                while time.monotonic() - started < self.give_up:
                    readable, _, _ = select.select([sock], [], [], 0.2)
                    if readable or sock.pending():
                        break
                    sock.sendall(b" ")
                self.status = sock.recv(64).split(b"\r\n", 1)[0]
            except OSError:
                pass  # cut off while sending: reset by the server
            if time.monotonic() - started < self.give_up:
                self.cut_after = time.monotonic() - started


def watch_rss(server: Server, stop: threading.Event, peak: list[int]) -> None:
    while not stop.wait(0.05):
        peak[0] = max(peak[0], rss(server))


def test_slow_clients_trickling_bodies_are_cut_at_the_deadline_within_the_memory_budget(
    start: Start,
) -> None:
    """The issue's attack: twelve connections sending large bodies and never finishing.

    Before: no read deadline (the clients were never cut) and every byte buffered (one
    replica went from 87 to 295 MiB). Now each connection is closed at ``body_timeout`` and
    what is held stays within ``inflight_bytes``; the clients that found no memory are
    refused (503) or closed without being read.
    """
    budget = 24 * MIB
    server = start(
        {
            "MINERGUARD_WEBHOOK_BODY_TIMEOUT": "2",
            "MINERGUARD_WEBHOOK_INFLIGHT_BYTES": str(budget),
        }
    )
    server.review(review(pod(container("nginx:1.27", command=["nginx"]))))  # warm
    baseline = rss(server)
    stop, peak = threading.Event(), [baseline]
    watcher = threading.Thread(target=watch_rss, args=(server, stop, peak), daemon=True)
    watcher.start()
    clients = [SlowClient(server, 6 * MIB, 5 * MIB, give_up=8.0) for _ in range(12)]
    for client in clients:
        client.start()
    for client in clients:
        client.join(15)
    stop.set()
    watcher.join()
    cut = [c.cut_after for c in clients]
    assert all(after is not None and after < 2 + 3 for after in cut), cut
    statuses = {c.status.split(b" ")[1] if c.status else b"closed" for c in clients}
    assert statuses <= {b"503", b"closed"}, statuses
    grown = peak[0] - baseline
    assert grown < budget + 24 * MIB, f"RSS grew {grown / MIB:.0f} MiB over {baseline / MIB:.0f}"
    # and the replica still serves
    assert server.review(review(pod(container("nginx:1.27", command=["nginx"]))))["allowed"]


def test_an_honest_review_is_answered_while_slow_clients_hold_connections(
    start: Start,
) -> None:
    """Slow clients inside the budget hold memory, not the worker: a review still gets in."""
    server = start({"MINERGUARD_WEBHOOK_BODY_TIMEOUT": "4"})
    clients = [SlowClient(server, 6 * MIB, 1 * MIB, give_up=8.0) for _ in range(8)]
    for client in clients:
        client.start()
    time.sleep(0.5)
    started = time.monotonic()
    answer = server.review(review(pod(container("alpine", command=["xmrig", "-o", POOL]))))
    waited = time.monotonic() - started
    assert answer["allowed"] is False
    assert waited < 4, "the honest review waited for the slow clients' deadline"
    for client in clients:
        client.join(15)
    assert all(c.cut_after is not None for c in clients)


def test_slow_large_bodies_filling_the_budget_cannot_shut_out_a_small_honest_review(
    start: Start,
) -> None:
    """With the whole body budget held by slow 6 MiB bodies, a review (a few KiB, as the
    API server sends nearly all of them) still finds memory in the share kept for small
    bodies, instead of queueing behind the attackers until its deadline (503)."""
    server = start(
        {
            "MINERGUARD_WEBHOOK_BODY_TIMEOUT": "4",
            "MINERGUARD_WEBHOOK_INFLIGHT_BYTES": str(24 * MIB),
        }
    )
    clients = [SlowClient(server, 6 * MIB, 5 * MIB, give_up=8.0) for _ in range(12)]
    for client in clients:
        client.start()
    time.sleep(1.0)  # the budget is full, the rest are queued
    began = time.monotonic()
    answer = server.review(review(pod(container("alpine", command=["xmrig", "-o", POOL]))))
    waited = time.monotonic() - began
    assert answer["allowed"] is False
    assert waited < 4 / 2, f"waited {waited:.1f}s, as long as the attackers' deadline"
    for client in clients:
        client.join(15)


def test_an_oversized_body_is_refused_before_it_is_read(start: Start) -> None:
    """No API server sends more than the object and its old version (2 x 3 MiB decoded)."""
    server = start()
    with connect(server) as sock:
        sock.sendall(head(10 * MIB))  # and not a byte of the body
        sock.settimeout(5)
        assert sock.recv(64).startswith(b"HTTP/1.1 413")
    baseline = rss(server)
    with connect(server) as sock:  # no length declared: refused once it passes the cap
        sock.sendall(head(None))
        chunk = b"%x\r\n%s\r\n" % (256 * 1024, b" " * 256 * 1024)
        status = b""
        try:
            for _ in range(64):  # 16 MiB offered; the server closes once past 7 MiB
                sock.sendall(chunk)
        except OSError:
            pass
        try:
            sock.settimeout(5)
            status = sock.recv(64)
        except OSError:
            pass
    assert status.startswith(b"HTTP/1.1 413") or status == b"", status
    assert rss(server) - baseline < 16 * MIB


def test_a_client_that_never_finishes_its_request_head_is_disconnected(start: Start) -> None:
    """Before: a connection sending half a request head was held open for ever."""
    server = start({"MINERGUARD_WEBHOOK_BODY_TIMEOUT": "1"})
    with connect(server) as sock:
        sock.sendall(b"POST /validate HTTP/1.1\r\nHost: webhook\r\n")  # and no more
        sock.settimeout(6)
        began = time.monotonic()
        assert sock.recv(64) == b""
        assert time.monotonic() - began < 1 + 4
    assert server.review(review(pod(container("nginx:1.27", command=["nginx"]))))["allowed"]


def test_connections_beyond_the_cap_are_closed_and_freed_ones_serve_again(start: Start) -> None:
    """Idle connections cost TLS buffers each: at most ``max_connections`` are kept."""
    server = start({"MINERGUARD_WEBHOOK_MAX_CONNECTIONS": "4"})
    server.client.close()  # its keep-alive connection would count
    idle = [connect(server) for _ in range(4)]
    try:
        with connect(server) as extra:
            extra.settimeout(6)
            extra.sendall(b"GET /healthz HTTP/1.1\r\nHost: webhook\r\n\r\n")
            assert extra.recv(64) == b""
    finally:
        for sock in idle:
            sock.close()

    def answered() -> bool:
        with httpx.Client(base_url=server.url, verify=server.pki.client_context()) as client:
            return client.get("/healthz").status_code == 200

    deadline = time.monotonic() + 10
    while not answered():
        assert time.monotonic() < deadline, "freed connections were not reused"
        time.sleep(0.2)


def heavy_review(words: int) -> bytes:
    """A legal pod whose ``sh -c`` script is ``words`` words: the issue's CPU attack."""
    script = "true " * words + "; sleep 1"
    return orjson.dumps(review(pod(container("busybox", command=["sh", "-c", script]))))


def test_judging_a_review_costs_the_same_however_long_its_script(start: Start, pki: PKI) -> None:
    """Before: judging ran in time proportional to the script (~1 s a MiB) on the event loop
    every review shares, so four ~1 MiB scripts kept an honest review waiting for ~1 s. Now
    the engine's work per review is bounded: a script sixteen times longer costs about the
    same to review (only reading and parsing the body grow, at C speed) -- a relative bound,
    not a timing -- the answers say what was not examined, and an honest review sent during
    a flood of them is answered.
    """
    server = start()
    honest = orjson.dumps(review(pod(container("alpine", command=["xmrig", "-o", POOL]))))
    short, long = heavy_review(25_000), heavy_review(400_000)

    async def timed(client: httpx.AsyncClient, body: bytes) -> tuple[float, httpx.Response]:
        began = time.monotonic()
        response = await client.post("/validate", content=body)
        return time.monotonic() - began, response

    async def attack() -> tuple[float, float, list[httpx.Response], httpx.Response]:
        async with httpx.AsyncClient(
            base_url=server.url, verify=pki.client_context(), timeout=60
        ) as client:
            await timed(client, honest)  # warm
            small = min([(await timed(client, short))[0] for _ in range(3)])
            large = min([(await timed(client, long))[0] for _ in range(3)])
            flood = [asyncio.create_task(timed(client, long)) for _ in range(8)]
            await asyncio.sleep(0.05)
            _, answer = await timed(client, honest)
            return small, large, [r for _, r in await asyncio.gather(*flood)], answer

    small, large, responses, answer = asyncio.run(attack())
    assert large <= 3 * small + 0.05, f"a 16x longer script took {large:.3f}s vs {small:.3f}s"
    assert answer.json()["response"]["allowed"] is False
    for response in responses:
        judged = response.json()["response"]
        assert judged["allowed"] is False  # what could not be examined is not admitted
        assert "not fully examined" in judged["status"]["message"], judged
        assert any("not examined" in w for w in judged["warnings"]), judged
        assert "incomplete" in judged["auditAnnotations"]


def test_a_container_left_unexamined_by_the_budget_is_not_remembered_as_clean(
    start: Start,
) -> None:
    """A review whose first container uses up the judging budget leaves the next one
    unexamined; that verdict must not be memoised, or a later pod holding only the miner
    container would be admitted from the cache without a look."""
    server = start()
    miner = container("alpine", name="miner", command=["xmrig", "-o", POOL])
    padding = container("busybox", name="pad", command=["sh", "-c", "true " * 50_000])
    first = server.review(review(pod(padding, miner)))
    assert first["allowed"] is False, first  # the miner was not examined, so not admitted
    assert any("not examined" in w for w in first.get("warnings", ())), first
    assert server.review(review(pod(miner)))["allowed"] is False


def test_lists_longer_than_anything_examined_are_cut_before_the_pod_is_read() -> None:
    """Reading a pod costs Python time per list entry: a 6 MiB pod of a million and a half
    one-letter arguments held a worker for ~0.5 s before judging began (now ~0.1 s,
    parsing). Lists are cut past what the engine's budget or the container limit could
    ever examine."""
    obj = {"spec": {"containers": [{"args": ["x"] * 1_000_000, "env": [{"n": 1}] * 9}]}}
    body = orjson.dumps(
        {
            "apiVersion": "admission.k8s.io/v1",
            "kind": "AdmissionReview",
            "request": {
                "uid": "u",
                "kind": {"kind": "Pod"},
                "operation": "CREATE",
                "object": obj,
                "oldObject": {"a": [[1] * 50, [2] * 3]},
            },
        }
    )
    request = wire.parse(body, max_items=5)
    container = request.object["spec"]["containers"][0]
    assert container["args"] == ["x"] * 5
    assert len(container["env"]) == 5
    assert request.old_object == {"a": [[1] * 5, [2] * 3]}


def test_a_miner_hidden_past_the_judging_budget_is_refused_unexamined(
    start: Start,
) -> None:
    """Padding a pod past the judging budget must not hide a miner behind it: what could
    not be examined is refused wherever the policy refuses miners (the pod's author chose
    to pad it), and the answer says why; what lies before the budget is still judged."""
    server = start()
    many = ["x"] * 700_000  # ~2.8 MiB: what an API server can send (3 MiB decoded)
    hidden = server.review(review(pod(container("busybox", command=["app", *many, "xmrig"]))))
    assert hidden["allowed"] is False
    assert "not fully examined" in hidden["status"]["message"], hidden
    assert any("not examined" in w for w in hidden["warnings"]), hidden
    first = server.review(review(pod(container("busybox", command=["xmrig", "-o", POOL, *many]))))
    assert first["allowed"] is False
    assert "would run a cryptominer" in first["status"]["message"], first


def test_memory_is_granted_in_arrival_order_so_newcomers_cannot_starve_a_waiting_review() -> None:
    async def scenario() -> list[str]:
        budget = bodies.Budget(10)
        later = asyncio.get_running_loop().time() + 60
        order: list[str] = []
        await budget.acquire(8, later)  # an attacker holds most of it

        async def want(name: str, size: int) -> None:
            await budget.acquire(size, later)
            order.append(name)

        honest = asyncio.create_task(want("honest", 5))
        await asyncio.sleep(0)
        newcomers = [asyncio.create_task(want(f"attacker{i}", 2)) for i in range(3)]
        await asyncio.sleep(0)
        assert order == []  # 2 bytes are free, but the honest review came first
        budget.release(8)
        await asyncio.gather(honest, *newcomers[:2])
        newcomers[2].cancel()
        return order

    assert asyncio.run(scenario())[0] == "honest"


def test_a_waiter_whose_deadline_passes_gives_its_place_to_the_next() -> None:
    async def scenario() -> int:
        budget = bodies.Budget(10)
        now = asyncio.get_running_loop().time()
        await budget.acquire(9, now + 60)
        big = asyncio.create_task(budget.acquire(5, now + 0.05))
        small = asyncio.create_task(budget.acquire(1, now + 60))
        await asyncio.sleep(0)
        assert not small.done()
        with pytest.raises(TimeoutError):
            await big  # refused (503): the one behind it fits now
        await small
        return budget.used

    assert asyncio.run(scenario()) == 10


def test_parsed_cost_charges_hostile_json_for_the_objects_it_becomes() -> None:
    flat = b"[" + b"{}," * 100_000 + b"{}]"
    script = orjson.dumps({"args": ["sh", "-c", "a " * 100_000]})
    assert bodies.parsed_cost(flat) > 20 * len(flat)
    assert bodies.parsed_cost(script) < 2 * len(script)
    assert bodies.parsed_cost(b"{}" * 100) == 32 * 200  # small: the worst ratio, uncounted
