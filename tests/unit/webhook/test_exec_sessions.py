"""Every ``kubectl exec``/``attach`` the webhook reviews leaves a trace a responder can read.

The trace is an Event on the pod (reason ``ExecSession``) whose annotation the operator parses
back with :meth:`ExecSession.parse_event`; these tests build the reviewer with a collecting sink
and read the Events as the API server would store them (:func:`resources.event_body`).
"""

from __future__ import annotations

from typing import Any

import orjson
import pytest

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


SCRIPT_SECRETS = [
    # (command line, secret values that must never be recorded, evidence that must stay)
    (["sh", "-c", "run --token abc123tok --url x"], ["abc123tok"], ["run --token", "--url x"]),
    (["bash", "-lc", "deploy -password 'hunter 2'; ls"], ["hunter 2", "hunter"], ["deploy"]),
    (["sh", "-c", "mysql -uroot -pS3cretPw db"], ["S3cretPw"], ["mysql -uroot -p"]),
    (["mysqldump", "-h", "db", "-pS3cretPw", "app"], ["S3cretPw"], ["mysqldump"]),
    (["sh", "-c", "mysql -p S3cretPw"], ["S3cretPw"], ["mysql -p"]),
    (["sh", "-c", "curl -u admin:CurlPass1 https://x.example/"], ["CurlPass1"], ["admin"]),
    (["curl", "--user", "admin:CurlPass2", "https://x.example/"], ["CurlPass2"], ["admin"]),
    (["sh", "-c", "curl -uadmin:CurlPass3 https://x"], ["CurlPass3"], ["-uadmin"]),
    (
        ["sh", "-c", "curl -H 'Authorization: Bearer eyJhbGciOi.x.y' https://api/"],
        ["eyJhbGciOi"],
        ["Authorization: Bearer", "https://api/"],
    ),
    (
        ["curl", "-H", "X-Api-Key: k3yv4lue", "--header", "Cookie: sid=c00kie", "https://a"],
        ["k3yv4lue", "c00kie"],
        ["X-Api-Key", "https://a"],
    ),
    (["wget", "--header=Authorization: Basic dXNlcjpwdw==", "u"], ["dXNlcjpwdw"], ["wget"]),
    (
        ["sh", "-c", "git clone https://bob:gh_pat_999@github.example/r.git"],
        ["gh_pat_999"],
        ["https://bob:", "@github.example/r.git"],
    ),
    (["psql", "postgres://app:PgPass9@db:5432/app"], ["PgPass9"], ["postgres://app:"]),
    (["sh", "-c", "export API_KEY=exported1; run"], ["exported1"], ["export API_KEY=", "run"]),
    (["sh", "-c", 'TOKEN="pre fix" ./agent --x'], ["pre fix", "pre"], ["./agent --x"]),
    (["sh", "-c", "echo $(curl -u u:SubPass7 https://h)"], ["SubPass7"], ["echo"]),
    (["sh", "-c", 'sh -c "run --token nested77"'], ["nested77"], ["run --token"]),
    (["redis-cli", "-h", "r", "-a", "RedisPw1", "ping"], ["RedisPw1"], ["redis-cli", "ping"]),
    (["sshpass", "-p", "SshPw123", "ssh", "h"], ["SshPw123"], ["ssh h"]),
]


@pytest.mark.parametrize(("argv", "hidden", "kept"), SCRIPT_SECRETS)
def test_a_secret_in_any_common_form_is_never_recorded(
    argv: list[str], hidden: list[str], kept: list[str]
) -> None:
    shown, cut = sessions.scrub(argv)
    text = " ".join(shown)
    for value in hidden:
        assert value not in text, (value, text)
    for evidence in kept:
        assert evidence in text, (evidence, text)
    assert sessions.REDACTED in text
    assert not cut


async def test_a_secret_in_an_exec_script_never_reaches_the_event() -> None:
    sink = Sink()
    judge, _ = _recording(sink)
    script = "export DB_PASS=evP4ss; mysql -pevP4ss2 && curl -H 'Authorization: Bearer evTok'"
    assert (await judge.review(_exec(["sh", "-c", script]))).allowed
    (stored,) = _stored(sink)
    raw = orjson.dumps(stored).decode()
    for value in ("evP4ss", "evTok"):
        assert value not in raw, value
    assert "mysql -p" in stored["message"]


def test_scrubbing_a_hostile_script_is_bounded() -> None:
    nasty = [
        "sh",
        "-c",
        "$(" * 3000 + "'" + '"' * 2000 + "--token " * 500 + "`" * 1000,
        "x" * 100_000,
    ]
    shown, cut = sessions.scrub(nasty)
    assert cut
    assert len(" ".join(shown).encode()) <= sessions.MAX_COMMAND_BYTES
    nested = ["sh", "-c", "sh -c " * 200 + "'run --token deep'"]
    shown, _ = sessions.scrub(nested)
    assert "deep" not in " ".join(shown)
