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

What a session records is bounded and scrubbed, because an exec trace is readable by everyone
who may list Events in the namespace: the command line is cut to :data:`MAX_COMMAND_BYTES`, and
secrets lose their values wherever they are written, in a word of their own or inside a script
(``sh -c '...'``, re-tokenised with the signature engine's shell lexer, so quoting does not
hide them): environment assignments (``TOKEN=...``, ``export K=v``), secret-looking options
(``--password=...``, ``--token ...``), tools' password flags (``mysql -pX``, ``redis-cli -a
X``), curl's ``-u user:password``, credential headers (``Authorization: Bearer X``), URL
passwords (``https://user:pw@host``), and the values of any Secret the review read for the pod.
What is not a secret stays as written: it is the evidence of what was run.
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
from minerguard.signatures.shell.syntax import LIT, SUB, VAR, Limits, Parser, Word
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
(``env TOKEN=x cmd``, ``sh -c 'KEY=x; run --password=y'``); a quoted value as a whole. The last
net behind the tokenised reading below, for text too deep to re-tokenise."""
_SECRET_WORD = re.compile(r"pass|secret|token|key|cred|auth|pwd", re.IGNORECASE)
_OPTION = re.compile(r"^(-{1,2})([A-Za-z][\w.-]{0,63})$")
"""A word that is an option whose value is the next word (``--token abc``)."""
_WORD_ASSIGNMENT = re.compile(r"(-{0,2})([A-Za-z_][\w.-]{0,127})=(.*)", re.DOTALL)
_HEADER = re.compile(r"\s*([A-Za-z][\w-]{0,63})\s*:\s*(.*)", re.DOTALL)
"""An HTTP header as ``curl -H``/``wget --header`` take it."""
_SECRET_HEADERS = frozenset({"authorization", "proxy-authorization", "cookie", "set-cookie"})
_SCHEME = re.compile(r"([A-Za-z][\w-]{0,31} +)(\S.*)", re.DOTALL)
"""``Bearer``/``Basic`` before a credential: kept, it says what kind of secret was sent."""
_USERINFO = re.compile(r"([A-Za-z][\w+.-]{0,31}://[^\s/@:]{0,256}):([^\s/@]{1,256})@")
"""``scheme://user:password@``: the user stays (a wallet, an account), the password goes."""
_PASSWORD_FLAG = {
    **dict.fromkeys(
        (
            "mysql",
            "mysqldump",
            "mysqladmin",
            "mysqlimport",
            "mysqlshow",
            "mysqlcheck",
            "mariadb",
            "mariadb-dump",
            "sshpass",
        ),
        "-p",
    ),
    "redis-cli": "-a",
    "keydb-cli": "-a",
}
"""Tools whose short option takes a password, attached (``-pXXX``) or as the next word."""
_USER_OPTIONS = frozenset({"-u", "--user", "-U", "--proxy-user"})
"""The ``user:password`` of curl's ``-u`` options."""
_SHELLS = frozenset({"sh", "bash", "dash", "ash", "zsh", "ksh", "mksh", "busybox", "su"})
_SCRIPT_OPTION = re.compile(r"-[a-z]{0,8}c[a-z]{0,8}")
"""``-c``, ``-lc``, ``-ec``: the next word is the shell's script, never an assignment."""
_SCRIPTISH = re.compile(r"[\s;|&`]|\$\(")
"""A word that is itself a script (``sh -c``, ``su -c``, ``ssh host``): re-tokenised."""
MAX_SCRIPT_DEPTH = 4
"""Scripts inside scripts re-tokenised; deeper text gets only the regular expressions."""
MAX_SCRIPT_WORDS = 4096
"""Words one re-tokenised script may hold (its substitutions included)."""
_SEPARATORS = frozenset(";\n&|()")


def _hidden(match: re.Match[str]) -> str:
    dashes, name, value = match.group(1), match.group(2), match.group(3)
    assignment = not dashes and re.fullmatch(r"[A-Za-z_]\w*", name) is not None
    if value and (assignment or (dashes and _SECRET_WORD.search(name))):
        return f"{dashes}{name}={REDACTED}"
    return match.group(0)


def _scrub_word(word: str) -> str:
    """One word with the values it assigns replaced (bounded input: linear time)."""
    return _USERINFO.sub(rf"\1:{REDACTED}@", _ASSIGNMENT.sub(_hidden, word))


def _user_pass(value: str) -> str:
    """A ``user:password`` (curl -u) without the password (a bare user stays: curl prompts)."""
    user, colon, _ = value.partition(":")
    return f"{user}:{REDACTED}" if colon else value


def _header(word: str) -> str | None:
    """A credential-carrying header with its value gone; None when the word is no such header."""
    match = _HEADER.fullmatch(word)
    if match is None or not match.group(2):
        return None
    name = match.group(1)
    if name.lower() not in _SECRET_HEADERS and not _SECRET_WORD.search(name):
        return None
    scheme = _SCHEME.fullmatch(match.group(2))
    return f"{name}: {scheme.group(1) if scheme else ''}{REDACTED}"


def _script_word(word: str, depth: int) -> str:
    """A word that is a script, scrubbed as one (past the depth limit, by the regexes only)."""
    return _scrub_script(word, depth + 1) if depth < MAX_SCRIPT_DEPTH else _scrub_word(word)


def _single(word: str, tool: str, depth: int) -> str | None:
    """What one word is recorded as on its own (None: as it is)."""
    assigned = _WORD_ASSIGNMENT.fullmatch(word)
    if assigned is not None and assigned.group(3):
        dashes, name, value = assigned.groups()
        if (not dashes and re.fullmatch(r"[A-Za-z_]\w*", name)) or (
            dashes and _SECRET_WORD.search(name)
        ):
            return f"{dashes}{name}={REDACTED}"
        if dashes and tool == "curl" and f"--{name}" in _USER_OPTIONS:
            return f"{dashes}{name}={_user_pass(value)}"
        if dashes and (header := _header(value)) is not None:
            return f"{dashes}{name}={header}"
    header = _header(word)
    if header is not None:
        return header
    flag = _PASSWORD_FLAG.get(tool)
    if flag and word.startswith(flag) and len(word) > len(flag) and not word.startswith("--"):
        return flag + REDACTED
    if tool == "curl" and word.startswith("-u") and len(word) > 2 and not word.startswith("--"):
        return "-u" + _user_pass(word[2:])
    shown = word
    if _SCRIPTISH.search(word):
        shown = _script_word(word, depth)
    shown = _USERINFO.sub(rf"\1:{REDACTED}@", shown)
    return None if shown == word else shown


def _command(words: Sequence[str], depth: int) -> list[str | None]:
    """One simple command's words as the program receives them, each as recorded (None: as is).

    The tool a word belongs to is the last known one named before it in the command, so
    ``sudo mysql -pX``, ``env A=b curl -u u:p`` and ``timeout 5 redis-cli -a X`` are read alike.
    """
    out: list[str | None] = []
    tool, pending = "", ""
    for word in words:
        if pending == "secret":
            out.append(REDACTED)
        elif pending == "user":
            shown = _user_pass(word)
            out.append(None if shown == word else shown)
        elif pending == "header":
            out.append(_header(word) or _single(word, tool, depth))
        elif pending == "script":
            shown = (
                _scrub_script(word, depth + 1) if depth < MAX_SCRIPT_DEPTH else _scrub_word(word)
            )
            out.append(None if shown == word else shown)
        else:
            out.append(_single(word, tool, depth))
        if pending:
            pending = ""
            continue
        option = _OPTION.match(word)
        secret_option = bool(option and _SECRET_WORD.search(option.group(2)))
        if secret_option or (tool in _PASSWORD_FLAG and word == _PASSWORD_FLAG[tool]):
            pending = "secret"
        elif tool == "curl" and word in _USER_OPTIONS:
            pending = "user"
        elif word in ("-H", "--header"):
            pending = "header"
        elif tool in _SHELLS and _SCRIPT_OPTION.fullmatch(word):
            pending = "script"
        base = word.rsplit("/", 1)[-1]
        if base in _PASSWORD_FLAG or base in _SHELLS or base in ("curl", "wget"):
            tool = base
    return out


def _literal(parts: Word) -> str:
    """A word as its command receives it, with variables and substitutions left as written."""
    text = []
    for kind, value, _, _ in parts:
        if kind == LIT:
            text.append(str(value))
        elif kind == VAR:
            text.append("${" + str(value) + "}")
        else:
            text.append("$(…)")
    return "".join(text)


def _nested_values(parts: Word, depth: int, found: set[str]) -> None:
    """Secret values in the commands of a word's substitutions (``$(curl -u u:p ...)``)."""
    for kind, value, _, _ in parts:
        if kind != SUB or not isinstance(value, list):
            continue
        for pipeline in value:
            for cmd in pipeline:
                if cmd.group is not None:
                    _nested_values([(SUB, cmd.group, False, "")], depth, found)
                words = [_literal(w) for w in cmd.words]
                for word, shown in zip(words, _command(words, depth), strict=True):
                    if shown is not None:
                        found.add(_difference(word, shown))
                for w in cmd.words:
                    _nested_values(w, depth, found)


def _difference(before: str, after: str) -> str:
    """The part of ``before`` that ``after`` replaced (their common ends removed)."""
    head = 0
    limit = min(len(before), len(after))
    while head < limit and before[head] == after[head]:
        head += 1
    tail = 0
    while tail < limit - head and before[-1 - tail] == after[-1 - tail]:
        tail += 1
    return before[head : len(before) - tail]


def _quoted(text: str) -> str:
    """``text`` as one shell word again (single quotes when it holds what would split it)."""
    if re.search(r"[\s;|&'\"`$()\\]", text):
        return "'" + text.replace("'", "'\\''") + "'"
    return text


def _scrub_script(text: str, depth: int) -> str:
    """A shell script with the secrets its commands are given replaced, the rest as written.

    The script is re-tokenised with the signature engine's shell lexer
    (:class:`minerguard.signatures.shell.syntax.Parser`: quotes, escapes, ``$(...)``,
    backticks), so ``--token abc``, ``-pXXX`` and ``export K=v`` are read as the shell reads
    them, whatever the quoting. A word whose decision changes is written back as one shell
    word; a secret inside a substitution is replaced where it is written. Bounded: the parser
    charges :data:`MAX_SCRIPT_WORDS`, every step advances, scripts nest
    :data:`MAX_SCRIPT_DEPTH` deep.
    """
    limits = Limits(words=MAX_SCRIPT_WORDS)
    parser = Parser(text, limits)
    commands: list[list[tuple[int, int, Word]]] = [[]]
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if c in " \t\r<>":
            i += 1
        elif c in _SEPARATORS:
            i += 1
            if commands[-1]:
                commands.append([])
        elif c == "#" and (i == 0 or text[i - 1] in " \t\n;&|("):
            newline = text.find("\n", i)
            i = n if newline < 0 else newline
        else:
            if limits.words is not None and limits.words <= 0:
                break
            parser.i = i
            parts = parser.word(0)
            end = min(max(parser.i, i + 1), n)
            commands[-1].append((i, end, parts))
            i = end
    edits: list[tuple[int, int, str]] = []
    for command in commands:
        words = [_literal(parts) for _, _, parts in command]
        for (start, end, parts), shown in zip(command, _command(words, depth), strict=True):
            raw = text[start:end]
            if shown is not None:
                edits.append((start, end, _quoted(shown)))
                continue
            found: set[str] = set()
            _nested_values(parts, depth, found)
            for value in sorted(found - {""}, key=len, reverse=True):
                raw = raw.replace(value, REDACTED)
            if raw != text[start:end]:
                edits.append((start, end, raw))
    out, at = [], 0
    for start, end, shown in edits:
        out.append(text[at:start])
        out.append(shown)
        at = end
    out.append(text[at:])
    return _scrub_word("".join(out))


def scrub(argv: Sequence[str], secrets: Sequence[str] = ()) -> tuple[list[str], bool]:
    """The command line as recorded, and whether it was cut.

    Secrets lose their values wherever they are written, in the words themselves and inside
    scripts (``sh -c '...'``, re-tokenised): environment assignments (``TOKEN=x``,
    ``export K=v``), secret-looking options (``--password=x``, ``--token x``), tools' password
    flags (``mysql -pX``, ``redis-cli -a X``), curl's ``-u user:password``, credential headers
    (``Authorization: Bearer X``), URL passwords (``https://user:pw@host``), and the Secret
    values the review read. The whole is then cut to :data:`MAX_COMMAND_BYTES` (UTF-8) with
    a ``…`` mark. Only the first :data:`MAX_READ_CHARS` characters are read at all.
    """
    words: list[str] = []
    read, cut = 0, False
    for raw in argv:
        word = str(raw)
        if read + len(word) > MAX_READ_CHARS:
            words.append(word[: max(MAX_READ_CHARS - read, 0)])
            cut = True
            break
        read += len(word)
        words.append(word)
    out: list[str] = []
    size = 0
    for word, decided in zip(words, _command(words, 0), strict=True):
        shown = _scrub_word(word if decided is None else decided)
        if secrets:
            shown = references.redact(shown, secrets)
        encoded = shown.encode()
        room = MAX_COMMAND_BYTES - size - (1 if out else 0)
        if len(encoded) > room:
            kept = encoded[: max(room - len(CUT.encode()), 0)].decode(errors="ignore")
            out.append(kept + CUT)
            return out, True
        out.append(shown)
        size += len(encoded) + (1 if len(out) > 1 else 0)
    if cut and out:
        out[-1] += CUT
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
