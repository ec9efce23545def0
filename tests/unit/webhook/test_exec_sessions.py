"""Every ``kubectl exec``/``attach`` the webhook reviews leaves a trace a responder can read.

The trace is an Event on the pod (reason ``ExecSession``) whose annotation the operator parses
back with :meth:`ExecSession.parse_event`; these tests build the reviewer with a collecting sink
and read the Events as the API server would store them (:func:`resources.event_body`).
"""

from __future__ import annotations

from typing import Any

from minerguard.api.investigation import EXEC_SESSION_REASON, ExecSession
from minerguard.kube import resources
from minerguard.kube.resources import EventSpec
from tests.support import policy
from tests.unit.webhook.helpers import MINER_COMMAND, Sink, request, reviewer
from webhook import audit, sessions
from webhook.admission import Reviewer


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class FullSink(Sink):
    def submit(self, detection: Any, event: EventSpec | None = None) -> bool:
        return False


def _recording(
    sink: Sink, *, rate: float = 1000, burst: int = 1000, clock: Clock | None = None, **kw: Any
) -> tuple[Reviewer, sessions.Recorder]:
    recorder = sessions.Recorder(
        sink, instance="minerguard-webhook-7d9c", rate=rate, burst=burst, clock=clock or Clock()
    )
    judge = reviewer([policy()], **kw)
    judge._sessions = recorder  # the app wires it through the constructor (see app._start)
    return judge, recorder


def _exec(command: list[str], *, container: str | None = "c", sub: str = "exec", **kw: Any) -> Any:
    options: dict[str, Any] = {"kind": "PodExecOptions", "apiVersion": "v1", "command": command}
    options.update(kw)
    if container:
        options["container"] = container
    kind = "PodExecOptions" if sub == "exec" else "PodAttachOptions"
    return request(options, kind=kind, sub_resource=sub, operation="CONNECT", name="web")


def _stored(sink: Sink) -> list[dict[str, Any]]:
    """The session Events as the API server stores them."""
    return [
        resources.event_body(event, "webhook")
        for _, event in sink.items
        if event is not None and event.reason == EXEC_SESSION_REASON
    ]


async def test_an_allowed_and_a_denied_exec_are_each_recorded_on_the_pod() -> None:
    sink = Sink()
    judge, recorder = _recording(sink)
    assert (await judge.review(_exec(["/bin/sh", "-c", "ls /"], tty=True, stdin=True))).allowed
    assert not (await judge.review(_exec(MINER_COMMAND))).allowed
    allowed, denied = _stored(sink)
    for event in (allowed, denied):
        assert event["involvedObject"] == {
            "kind": "Pod",
            "name": "web",
            "namespace": "apps",
            "apiVersion": "v1",
        }
        assert event["reason"] == "ExecSession"
        assert event["action"] == "Exec"
        assert event["reportingComponent"] == "minerguard.io/webhook"
        assert event["reportingInstance"] == "minerguard-webhook-7d9c"
    assert allowed["type"] == "Normal"
    assert denied["type"] == "Warning"
    first = ExecSession.parse_event(allowed)
    assert first is not None
    assert first.model_dump(exclude={"time"}) == {
        "username": "mallory@example.com",
        "groups": ["devs", "system:authenticated"],
        "uid": None,
        "subresource": "exec",
        "container": "c",
        "command": ["/bin/sh", "-c", "ls /"],
        "tty": True,
        "stdin": True,
        "allowed": True,
        "authenticated": False,
        "event": None,
    }
    assert first.time
    assert first.time.endswith("Z")
    second = ExecSession.parse_event(denied)
    assert second is not None
    assert second.allowed is False
    assert second.command == MINER_COMMAND
    assert allowed["message"] == (
        "exec by mallory@example.com (devs, system:authenticated) "
        f"{audit.UNAUTHENTICATED} into container c: /bin/sh -c ls /"
    )
    assert denied["message"].startswith("exec by mallory@example.com")
    assert "; denied by minerguard: " in denied["message"]
    assert recorder.counts[sessions.QUEUED] == 2


async def test_an_attach_is_recorded_without_a_command() -> None:
    sink = Sink()
    judge, _ = _recording(sink)
    options = {"kind": "PodAttachOptions", "container": "c", "stdin": True}
    connect = request(
        options, kind="PodAttachOptions", sub_resource="attach", operation="CONNECT", name="web"
    )
    assert (await judge.review(connect)).allowed
    (event,) = _stored(sink)
    assert event["action"] == "Attach"
    found = ExecSession.parse_event(event)
    assert found is not None
    assert (found.subresource, found.container, found.command) == ("attach", "c", [])
    assert "attach by mallory@example.com" in event["message"]


async def test_only_connects_are_recorded() -> None:
    sink = Sink()
    judge, recorder = _recording(sink)
    options = {"kind": "PodExecOptions", "command": ["sh"]}
    for operation in ("CREATE", "UPDATE", "DELETE"):
        other = request(
            options, kind="PodExecOptions", sub_resource="exec", operation=operation, name="web"
        )
        await judge.review(other)
    assert not _stored(sink)
    assert sum(recorder.counts.values()) == 0


def test_a_command_line_is_cut_to_one_kibibyte() -> None:
    argv = ["sh", "-c", "echo " + "A" * 5000, "never", "shown"]
    shown, cut = sessions.scrub(argv)
    assert cut
    assert len(" ".join(shown).encode()) <= sessions.MAX_COMMAND_BYTES
    assert shown[:2] == ["sh", "-c"]
    assert shown[-1].endswith(sessions.CUT)
    # Multi-byte text is cut on a character boundary, never into invalid UTF-8.
    shown, cut = sessions.scrub(["echo", "é" * 2000])
    assert cut
    assert len(" ".join(shown).encode()) <= sessions.MAX_COMMAND_BYTES
    # A million words cost no more than the first few thousand characters.
    shown, cut = sessions.scrub(["x"] * 1_000_000)
    assert cut
    assert len(shown) <= sessions.MAX_COMMAND_BYTES


def test_environment_values_and_secret_options_are_never_recorded() -> None:
    argv = [
        "env",
        "AWS_SECRET_ACCESS_KEY=wJalrXUtnFEMI",
        "sh",
        "-c",
        "export TOKEN=ghp_abcdef; DB_URL='postgres://u:pw@db' run --password=hunter2",
        "--token",
        "s3cr3t",
        "-api-key=abc123",
        "--url=stratum+tcp://pool.example:3333",
    ]
    shown, cut = sessions.scrub(argv, secrets=("mounted-secret-value",))
    text = " ".join(shown)
    for value in ("wJalrXUtnFEMI", "ghp_abcdef", "hunter2", "s3cr3t", "abc123", "postgres://"):
        assert value not in text, value
    assert "AWS_SECRET_ACCESS_KEY=<redacted>" in text
    assert "--token <redacted>" in text
    # What is not a value assignment stays: the evidence of what was run.
    assert "--url=stratum+tcp://pool.example:3333" in text
    assert not cut
    shown, _ = sessions.scrub(["cat", "/etc/x", "mounted-secret-value"], ("mounted-secret-value",))
    assert "mounted-secret-value" not in " ".join(shown)


async def test_a_flood_of_execs_is_capped_per_second_and_every_drop_is_counted() -> None:
    sink, clock = Sink(), Clock()
    judge, recorder = _recording(sink, rate=5, burst=10, clock=clock)
    for _ in range(50):
        assert (await judge.review(_exec(["sh"]))).allowed  # answered whatever is recorded
    assert len(_stored(sink)) == 10
    assert recorder.counts[sessions.RATE_LIMITED] == 40
    clock.now += 1.0  # a second later the cap lets five more through
    for _ in range(10):
        await judge.review(_exec(["sh"]))
    assert len(_stored(sink)) == 15
    assert recorder.counts[sessions.RATE_LIMITED] == 45


async def test_a_full_queue_drops_the_session_and_counts_it_without_failing_the_review() -> None:
    sink = FullSink()
    judge, recorder = _recording(sink)
    assert (await judge.review(_exec(["sh"]))).allowed
    assert not (await judge.review(_exec(MINER_COMMAND))).allowed
    assert recorder.counts[sessions.QUEUE_FULL] == 2


async def test_a_review_naming_no_pod_records_nothing() -> None:
    sink = Sink()
    judge, recorder = _recording(sink)
    options = {"kind": "PodExecOptions", "command": ["sh"]}
    nameless = request(options, kind="PodExecOptions", sub_resource="exec", operation="CONNECT")
    await judge.review(nameless)
    assert not _stored(sink)
    assert recorder.counts[sessions.UNNAMED] == 1


def test_an_authenticated_caller_is_not_marked_as_a_claim() -> None:
    found, _ = sessions.session(
        _exec(["sh"]), allowed=True, container="c", authenticated=True, time_text="t"
    )
    assert found.authenticated is True
    assert audit.UNAUTHENTICATED not in sessions.message(found)
