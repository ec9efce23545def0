"""Exec-session Events through the real server: written to the emulator, never in the way.

Every ``kubectl exec`` the webhook reviews becomes an ``ExecSession`` Event on the pod, with the
session as JSON the operator parses back. Writing it must never slow an answer: against an API
server whose Event endpoint hangs or fails, reviews are answered as fast as ever and the
sessions are dropped and counted; a flood of execs is capped per second.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator, Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest

from minerguard.api.investigation import EXEC_SESSION_REASON, ExecSession
from tests.integration.webhook import oci
from tests.integration.webhook.conftest import POOL, Server, ServerFactory
from tests.integration.webhook.reviews import review
from tests.kube_emulator import EmulatorThread
from tests.support import wait_for

pytestmark = pytest.mark.slow
UID = "5f1c1a52-9d0e-4b8e-8f51-0c6c2b1f7e11"
POD = {
    "apiVersion": "v1",
    "kind": "Pod",
    "metadata": {"name": "web", "namespace": "apps", "uid": UID, "labels": {"app": "web"}},
    "spec": {"containers": [{"name": "app", "image": "nginx:1.27"}]},
}


def _exec(command: list[str], user: str = "alice@example.com") -> dict[str, Any]:
    options = {"kind": "PodExecOptions", "apiVersion": "v1", "container": "app", "command": command}
    return review(
        options,
        kind="PodExecOptions",
        operation="CONNECT",
        sub_resource="exec",
        name="web",
        user=user,
        groups=("sre", "system:authenticated"),
    )


def _start(serve: ServerFactory, url: str, **env: str) -> Server:
    settings = {"MINERGUARD_WEBHOOK_POD_NAME": "minerguard-webhook-abc12", **env}
    return serve("--kube-server", url, env={**oci.LOOPBACK_ENV, **settings})


def _create_pod(kube: EmulatorThread) -> str:
    """The pod in the emulator, as kubectl creates it; its uid."""
    answer = httpx.post(f"{kube.url}/api/v1/namespaces/apps/pods", json=POD, timeout=10)
    assert answer.status_code == 201, answer.text
    (stored,) = kube.objects("v1/pods", "apps")
    uid: str = stored["metadata"]["uid"]
    return uid


def _plain(value: Any) -> Any:
    """Stored objects as plain JSON, as a client reads them (the emulator keeps its own maps)."""
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def _sessions(kube: EmulatorThread) -> list[dict[str, Any]]:
    events = [_plain(e) for e in kube.objects("v1/events", "apps")]
    return [e for e in events if e.get("reason") == EXEC_SESSION_REASON]


def _metric(server: Server, name: str) -> float:
    text = server.client.get("/metrics").text
    total = 0.0
    for line in text.splitlines():
        if line.startswith(name) and not line.startswith("#"):
            total += float(line.rsplit(" ", 1)[1])
    return total


def test_an_allowed_and_a_denied_exec_each_leave_an_event_the_operator_can_parse(
    kube: EmulatorThread, serve: ServerFactory
) -> None:
    uid = _create_pod(kube)
    server = _start(serve, kube.url)
    assert server.review(_exec(["sh", "-c", "cat /etc/os-release"]))["allowed"] is True
    assert server.review(_exec(["xmrig", "-o", POOL], user="mallory"))["allowed"] is False
    events: list[dict[str, Any]] = wait_for(lambda: e if len(e := _sessions(kube)) == 2 else None)
    parsed = {}
    for event in events:
        assert event["involvedObject"]["uid"] == uid  # the pod as the webhook read it
        assert event["involvedObject"]["name"] == "web"
        assert event["action"] == "Exec"
        assert event["reportingComponent"] == "minerguard.io/webhook"
        assert event["reportingInstance"] == "minerguard-webhook-abc12"
        found = ExecSession.parse_event(event)
        assert found is not None, event
        assert found.event == event["metadata"]["name"]
        parsed[found.username] = (found, event)
    alice, alice_event = parsed["alice@example.com"]
    assert alice.allowed
    assert alice_event["type"] == "Normal"
    assert alice.command == ["sh", "-c", "cat /etc/os-release"]
    assert alice.groups == ["sre", "system:authenticated"]
    assert alice.container == "app"
    mallory, mallory_event = parsed["mallory"]
    assert not mallory.allowed
    assert mallory_event["type"] == "Warning"
    assert mallory.command == ["xmrig", "-o", POOL]
    assert "exec by mallory (sre, system:authenticated)" in mallory_event["message"]
    assert _metric(server, 'minerguard_webhook_exec_sessions_total{result="queued"}') == 2


class _Hostile(BaseHTTPRequestHandler):
    """An API server whose reads work and whose Event writes hang (or fail with 500)."""

    mode = "hang"
    released = threading.Event()
    posts = 0

    def log_message(self, fmt: str, *args: Any) -> None:
        return

    def _json(self, status: int, body: Any) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:
        if "watch=" in self.path:
            self.released.wait(60)
            return
        if self.path.startswith("/api/v1/namespaces/apps/pods/web"):
            self._json(200, POD)
            return
        self._json(200, {"kind": "List", "apiVersion": "v1", "metadata": {}, "items": []})

    def do_POST(self) -> None:
        type(self).posts += 1
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        if self.mode == "hang":
            self.released.wait(60)
            return
        self._json(500, {"kind": "Status", "code": 500, "message": "etcd is unhappy"})


@pytest.fixture(params=["hang", "fail"])
def hostile(request: pytest.FixtureRequest) -> Iterator[str]:
    released = threading.Event()
    handler = type("Handler", (_Hostile,), {"mode": request.param, "released": released})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    released.set()
    server.shutdown()
    server.server_close()


def test_an_api_server_that_hangs_or_fails_on_events_never_slows_an_answer(
    hostile: str, serve: ServerFactory
) -> None:
    server = _start(
        serve,
        hostile,
        MINERGUARD_WEBHOOK_EXEC_SESSION_CAPACITY="3",
        MINERGUARD_WEBHOOK_EXEC_SESSION_TIMEOUT="30",
        MINERGUARD_WEBHOOK_POLICY_SYNC_GRACE="0",
    )
    started = time.monotonic()
    for _ in range(20):
        assert server.review(_exec(["sh"]))["allowed"] is True
    spent = time.monotonic() - started
    # One Event write alone would hang for 30 s: the answers never waited for one.
    assert spent < 15, spent
    queued = _metric(server, 'minerguard_webhook_exec_sessions_total{result="queued"}')
    dropped = _metric(server, 'minerguard_webhook_exec_sessions_total{result="queue_full"}')
    assert queued + dropped == 20
    assert dropped >= 20 - 3 - 1  # the queue holds 3, the writer holds one more in hand
    assert _metric(server, "minerguard_webhook_exec_session_events_written") == 0


def test_a_flood_of_execs_is_capped_and_the_rest_counted(
    kube: EmulatorThread, serve: ServerFactory
) -> None:
    _create_pod(kube)
    server = _start(
        serve,
        kube.url,
        MINERGUARD_WEBHOOK_EXEC_SESSION_RATE="2",
        MINERGUARD_WEBHOOK_EXEC_SESSION_BURST="5",
    )
    started = time.monotonic()
    for _ in range(40):
        assert server.review(_exec(["sh"]))["allowed"] is True
    elapsed = time.monotonic() - started
    limited = _metric(server, 'minerguard_webhook_exec_sessions_total{result="rate_limited"}')
    queued = _metric(server, 'minerguard_webhook_exec_sessions_total{result="queued"}')
    assert queued + limited == 40
    assert 5 <= queued <= 5 + 2 * elapsed + 1
    wait_for(lambda: len(_sessions(kube)) == queued)
    time.sleep(0.5)
    assert len(_sessions(kube)) == queued
