"""Exec-session traces: an Event on the pod for every ``kubectl exec``/``attach`` reviewed.

A responder asks who ran the miner. When it was started through ``kubectl exec``, the only
component that ever saw the session's user, groups and command is this webhook (the API
server's audit log, where one is kept, is not readable from inside the cluster). So every
CONNECT the webhook reviews, allowed or denied, becomes a core/v1 Event on the pod: reason
``ExecSession``, the session as JSON in the ``minerguard.io/exec-session`` annotation (parsed
back by :meth:`minerguard.api.investigation.ExecSession.parse_event`), and a line a human
reads in ``kubectl describe pod``. Events are the Kubernetes-native, TTL-bounded place for a
short-lived trace: the API server expires them (one hour by default) without any cleanup here.

Recording must never delay or break an answer. :meth:`Recorder.record` only builds the Event
and hands it to a :class:`minerguard.kube.reporter.Reporter` of its own (a bounded queue
drained by one writer thread, the same machinery as the audit trail, so a flood of execs can
never crowd a detection out of the audit trail's queue). A token bucket caps the Events a
replica writes per second; beyond it, and when the queue is full because the API server is
down or hung, sessions are dropped and counted (``minerguard_webhook_exec_sessions``), never
waited for. Sessions are not coalesced per pod: every one may be the one that started a miner.

What a session records is bounded and scrubbed: the command line is cut to
:data:`MAX_COMMAND_BYTES`, and the values of environment assignments (``TOKEN=...``) and of
secret-looking options (``--password=...``, ``--token ...``) are replaced, as are the values
of any Secret the review read for the pod: an exec trace is readable by everyone who may list
Events in the namespace.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import orjson

from minerguard import references, timestamps
from minerguard.api.investigation import (
    EXEC_SESSION_ANNOTATION,
    EXEC_SESSION_REASON,
    ExecSession,
)
from minerguard.kube.resources import EventSpec, ObjectRef
from webhook import audit
from webhook.review import AdmissionRequest

MAX_COMMAND_BYTES = 1024
"""A session's command line, all words together (UTF-8), is cut to this."""
MAX_READ_CHARS = 8 * MAX_COMMAND_BYTES
"""Characters of the command line scrubbed at all: more can never be kept."""
MAX_GROUPS = 20
MAX_FIELD_CHARS = 256
REDACTED = "<redacted>"
CUT = "…"
QUEUED, RATE_LIMITED, QUEUE_FULL, UNNAMED = "queued", "rate_limited", "queue_full", "unnamed"
RESULTS = (QUEUED, RATE_LIMITED, QUEUE_FULL, UNNAMED)
"""What became of a session, as counted."""

_ASSIGNMENT = re.compile(
    r"""(?:^|(?<=[\s;&|(`'"]))(-{0,2})([A-Za-z_][\w.-]{0,127})="""
    r"""('[^']*'|"[^"]*"|[^\s;&|)`'"]*)"""
)
"""``NAME=value`` or ``--option=value`` at the start of a word, also inside a shell script
(``env TOKEN=x cmd``, ``sh -c 'KEY=x; run --password=y'``); a quoted value as a whole."""
_SECRET_WORD = re.compile(r"pass|secret|token|key|cred|auth|pwd", re.IGNORECASE)
_OPTION = re.compile(r"^(-{1,2})([A-Za-z][\w.-]{0,63})$")
"""A word that is an option whose value is the next word (``--token abc``)."""


def _hidden(match: re.Match[str]) -> str:
    dashes, name, value = match.group(1), match.group(2), match.group(3)
    assignment = not dashes and re.fullmatch(r"[A-Za-z_]\w*", name) is not None
    if value and (assignment or (dashes and _SECRET_WORD.search(name))):
        return f"{dashes}{name}={REDACTED}"
    return match.group(0)


def _scrub_word(word: str) -> str:
    """One word with the values it assigns replaced (bounded input: linear time)."""
    return _ASSIGNMENT.sub(_hidden, word)


def scrub(argv: Sequence[str], secrets: Sequence[str] = ()) -> tuple[list[str], bool]:
    """The command line as recorded, and whether it was cut.

    Environment assignments and secret-looking options lose their values, the value following
    a secret-looking option (``--token abc``) is replaced, Secret values the review read are
    replaced, and the whole is cut to :data:`MAX_COMMAND_BYTES` (UTF-8) with a ``…`` mark.
    """
    out: list[str] = []
    size, read, cut, hide_next = 0, 0, False, False
    for raw in argv:
        word = str(raw)
        if read + len(word) > MAX_READ_CHARS:
            word = word[: max(MAX_READ_CHARS - read, 0)]
            cut = True
        read += len(word)
        if hide_next:
            shown, hide_next = REDACTED, False
        else:
            shown = references.redact(_scrub_word(word), secrets) if secrets else _scrub_word(word)
            option = _OPTION.match(word)
            hide_next = bool(option and _SECRET_WORD.search(option.group(2)))
        encoded = shown.encode()
        room = MAX_COMMAND_BYTES - size - (1 if out else 0)
        if len(encoded) > room:
            kept = encoded[: max(room - len(CUT.encode()), 0)].decode(errors="ignore")
            out.append(kept + CUT)
            return out, True
        out.append(shown)
        size += len(encoded) + (1 if len(out) > 1 else 0)
        if cut:
            out[-1] += CUT
            return out, True
    return out, cut


def _clip(text: str, limit: int = MAX_FIELD_CHARS) -> str:
    return text if len(text) <= limit else text[: limit - 1] + CUT


class TokenBucket:
    """At most ``rate`` per second on average, ``burst`` at once; thread-safe, never waits."""

    def __init__(self, rate: float, burst: int, clock: Callable[[], float] = time.monotonic):
        self._rate = rate
        self._burst = float(max(burst, 1))
        self._tokens = self._burst
        self._clock = clock
        self._last = clock()
        self._lock = threading.Lock()

    def take(self) -> bool:
        """Spend one token; False when none is left."""
        with self._lock:
            now = self._clock()
            self._tokens = min(self._burst, self._tokens + (now - self._last) * self._rate)
            self._last = now
            if self._tokens < 1.0:
                return False
            self._tokens -= 1.0
            return True


def session(
    request: AdmissionRequest,
    *,
    allowed: bool,
    container: str | None,
    secrets: Sequence[str] = (),
    authenticated: bool = False,
    time_text: str | None = None,
) -> tuple[ExecSession, bool]:
    """The session a CONNECT review describes, and whether its command line was cut."""
    options = request.object if isinstance(request.object, Mapping) else {}
    command = options.get("command")
    argv = [str(w) for w in command] if isinstance(command, list) else []
    shown, cut = scrub(argv, secrets)
    user = request.user_info
    found = ExecSession(
        username=_clip(user.username) or None,
        groups=[_clip(g) for g in user.groups[:MAX_GROUPS]],
        uid=_clip(user.uid) or None,
        time=time_text or timestamps.now(),
        subresource="attach" if request.sub_resource == "attach" else "exec",
        container=_clip(container) if container else None,
        command=shown,
        tty=_flag(options.get("tty")),
        stdin=_flag(options.get("stdin")),
        allowed=allowed,
        authenticated=authenticated,
    )
    return found, cut


def _flag(value: Any) -> bool | None:
    return value if isinstance(value, bool) else None


def message(found: ExecSession, *, cut: bool = False, refusal: str = "") -> str:
    """What ``kubectl describe pod`` shows: ``exec by alice (devs) into container app: sh``."""
    who = found.username or "an unknown user"
    if found.groups:
        who += f" ({', '.join(found.groups)})"
    if found.authenticated is False:
        who += f" {audit.UNAUTHENTICATED}"
    where = f"container {found.container}" if found.container else "the default container"
    if found.subresource == "attach":
        text = f"attach by {who} to {where}"
    else:
        text = f"exec by {who} into {where}: {' '.join(found.command)}"
        if cut:
            text += " (command cut)"
    if not found.allowed:
        text += f"; denied by minerguard: {_clip(refusal, 300)}" if refusal else "; denied"
    return text


def event(
    request: AdmissionRequest,
    found: ExecSession,
    *,
    pod_uid: str | None,
    instance: str,
    cut: bool = False,
    refusal: str = "",
) -> EventSpec:
    """The Event recording one session on its pod."""
    ref = ObjectRef(kind="Pod", name=request.name, namespace=request.namespace, uid=pod_uid)
    return EventSpec(
        involved=ref,
        reason=EXEC_SESSION_REASON,
        message=message(found, cut=cut, refusal=refusal),
        type="Normal" if found.allowed else "Warning",
        action="Attach" if found.subresource == "attach" else "Exec",
        annotations={EXEC_SESSION_ANNOTATION: orjson.dumps(found.to_k8s()).decode()},
        instance=instance,
    )


class Recorder:
    """Turns reviewed CONNECTs into Events for a sink, within a rate; never blocks."""

    def __init__(
        self,
        sink: audit.Sink,
        *,
        instance: str,
        rate: float,
        burst: int,
        authenticated: bool = False,
        clock: Callable[[], float] = time.monotonic,
        observe: Callable[[str], None] = lambda _result: None,
    ) -> None:
        self._sink = sink
        self._instance = instance
        self._bucket = TokenBucket(rate, burst, clock)
        self._authenticated = authenticated
        self._observe = observe
        self.counts = dict.fromkeys(RESULTS, 0)

    def record(
        self,
        request: AdmissionRequest,
        *,
        allowed: bool,
        pod: Mapping[str, Any] | None,
        container: str | None,
        secrets: Sequence[str] = (),
        refusal: str = "",
    ) -> str:
        """Queue the session's Event; what became of it (:data:`RESULTS`)."""
        if not request.name or not request.namespace:
            return self._count(UNNAMED)  # the API server always names the pod
        if not self._bucket.take():
            return self._count(RATE_LIMITED)
        found, cut = session(
            request,
            allowed=allowed,
            container=container,
            secrets=secrets,
            authenticated=self._authenticated,
        )
        spec = event(
            request, found, pod_uid=_uid(pod), instance=self._instance, cut=cut, refusal=refusal
        )
        return self._count(QUEUED if self._sink.submit(None, spec) else QUEUE_FULL)

    def _count(self, result: str) -> str:
        self.counts[result] += 1
        self._observe(result)
        return result


def _uid(pod: Mapping[str, Any] | None) -> str | None:
    metadata = pod.get("metadata") if pod is not None else None
    uid = metadata.get("uid") if isinstance(metadata, Mapping) else None
    return uid if isinstance(uid, str) and uid else None
