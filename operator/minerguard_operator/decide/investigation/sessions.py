"""Which ``kubectl exec`` session started the offending process, and how far it is believed.

The webhook records every exec/attach CONNECT as an Event on the pod; the agent reports the
process's lineage up to its exec'd root. A session matches by container, time window and
command (:func:`correlation`). Matching is not believing (:func:`session_trust`): an Event is
the webhook's word only where a ValidatingAdmissionPolicy stops anyone else from writing one and
where the webhook knew its caller was the API server. Otherwise whoever may create Events in the
namespace can forge one to blame someone else, so the session is at most ``Likely`` and the
reason is said; so is a flood of sessions that all match the command.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

from minerguard.api.detection import Evidence, Layer, MinerDetection
from minerguard.api.investigation import Confidence, ExecSession
from minerguard_operator.decide.investigation import reading
from minerguard_operator.decide.investigation.reading import MAX_ARGS, MAX_LONG, MAX_SCAN, clean

EXEC_WINDOW_S: Final = 600.0
"""How long before the exec'd process started its session may have begun."""
CLOCK_SKEW_S: Final = 2.0
"""The node's clock (process start) and the webhook's (session) may differ by this much."""
EXEC_KINDS: Final = frozenset({"PodExecOptions", "PodAttachOptions"})
"""``spec.objectKind`` of an admission detection on ``pods/exec`` and ``pods/attach``."""
MAX_RIVALS: Final = 5
"""Users named when several exec sessions matched the process's command."""
NO_EXEC_SESSION: Final = (
    "an exec session started it but no ExecSession Event was found: exec tracing off or the "
    "Event expired (1 h TTL)"
)
UNGUARDED_SESSIONS: Final = (
    "exec-session Events are not guarded against forgery on this cluster (no "
    "ValidatingAdmissionPolicy): the session is a claim"
)
UNAUTHENTICATED_SESSION: Final = (
    "the exec session's user is only claimed: the webhook did not authenticate the caller of "
    "that review"
)


@dataclass(frozen=True, slots=True)
class Correlation:
    """The exec session that started the process, how well it matched, and who else matched."""

    session: ExecSession | None = None
    confidence: Confidence = Confidence.UNKNOWN
    rivals: tuple[ExecSession, ...] = ()
    """Other sessions whose command matched too, nearest first (a decoy flood, or a rerun)."""


def is_exec_request(detection: MinerDetection) -> bool:
    """An admission detection of a ``kubectl exec``/``attach`` CONNECT (what the webhook writes)."""
    return detection.spec.layer is Layer.ADMISSION and detection.spec.object_kind in EXEC_KINDS


def _basename(word: str) -> str:
    return word.rsplit("/", 1)[-1]


def command_matches(argv: Sequence[str], command_line: str | None) -> bool:
    """Whether an exec session's argv is the root process's command line (or names its program)."""
    if not argv or not command_line:
        return False
    words = command_line[:MAX_LONG].split()
    if not words:
        return False
    if " ".join(argv[:MAX_ARGS])[:MAX_LONG].split() == words:
        return True
    return _basename(argv[0]) == _basename(words[0]) != ""


def correlate(
    exec_sessions: Sequence[ExecSession], evidence: Evidence, container: str | None
) -> tuple[ExecSession | None, Confidence]:
    """The exec session that started the offending process's exec'd root, and how sure.

    How well the session matches, not whether the session itself is believed: see
    :func:`correlation` and :func:`session_trust`.
    """
    found = correlation(exec_sessions, evidence, container)
    return found.session, found.confidence


def correlation(
    exec_sessions: Sequence[ExecSession], evidence: Evidence, container: str | None
) -> Correlation:
    """The exec session that started the offending process's exec'd root, and its rivals.

    A candidate is an allowed session into the same container (when both name one) that began
    no later than the root process (with :data:`CLOCK_SKEW_S` of slack) and no earlier than
    :data:`EXEC_WINDOW_S` before it. Of those whose command is the root's the nearest earlier
    wins, ``Certain`` unless another user's matched too (a decoy flood names several people:
    then ``Likely``); with no command match the nearest earlier is ``Likely``. Without a start
    time to bound by, only a command match counts, as ``Likely``.
    """
    root = evidence.lineage[-1] if evidence.lineage else None
    root_time = reading.time(root.started_at) if root is not None else None
    root_command = root.command_line if root is not None else evidence.command_line
    candidates: list[tuple[float, int, ExecSession]] = []
    for index, session in enumerate(exec_sessions[:MAX_SCAN]):
        if not isinstance(session, ExecSession) or not session.allowed:
            continue
        if container and session.container and session.container != container:
            continue
        at = reading.time(session.time)
        if root_time is not None and (
            at is None or not root_time - EXEC_WINDOW_S <= at <= root_time + CLOCK_SKEW_S
        ):
            continue
        candidates.append((at if at is not None else float("-inf"), index, session))
    matched = [c for c in candidates if command_matches(c[2].command, root_command)]
    if matched:
        matched.sort(key=lambda c: c[:2], reverse=True)
        chosen = matched[0][2]
        rivals = tuple(c[2] for c in matched[1:])
        certain = root_time is not None and all(r.username == chosen.username for r in rivals)
        confidence = Confidence.CERTAIN if certain else Confidence.LIKELY
        return Correlation(chosen, confidence, rivals)
    if root_time is not None and candidates:
        return Correlation(max(candidates, key=lambda c: c[:2])[2], Confidence.LIKELY)
    return Correlation()


def session_trust(session: ExecSession, guarded: bool) -> tuple[Confidence, list[str]]:
    """How far an exec-session Event is believed, and why not further.

    The Event is the webhook's word only where nothing else may write one (``guarded``: the
    chart's ValidatingAdmissionPolicy, Kubernetes >= 1.30) and where the webhook knew its
    caller was the API server (``authenticated`` not False); otherwise it is a claim.
    """
    notes = []
    if not guarded:
        notes.append(UNGUARDED_SESSIONS)
    if session.authenticated is False:
        notes.append(UNAUTHENTICATED_SESSION)
    return (Confidence.LIKELY if notes else Confidence.CERTAIN), notes


def rivals_note(found: Correlation) -> str | None:
    """Said when more than one session matched the command: the nearest earlier was taken."""
    if found.session is None or not found.rivals:
        return None
    users: list[str] = []
    for candidate in (found.session, *found.rivals):
        user = clean(candidate.username) or "?"
        if user not in users:
            users.append(user)
    listed = ", ".join(users[:MAX_RIVALS]) + (" and others" if len(users) > MAX_RIVALS else "")
    return (
        f"{len(found.rivals) + 1} exec sessions matched the process's command in the window "
        f"(users, nearest first: {listed}): the nearest earlier one was taken"
    )


def request_session(
    detection: MinerDetection, sessions: Sequence[ExecSession], *, guarded: bool = False
) -> ExecSession:
    """The session an exec admission detection judged: its Event if found, else the request.

    The detection is the webhook's own record; its Event adds the uid, tty and the command as
    scrubbed for the trace. An Event agreeing on user, time and container is taken where only
    the webhook may write one (``guarded``); elsewhere it must also agree on the command, so a
    forged one cannot rewrite what the requester ran.
    """
    spec = detection.spec
    observed = reading.time(spec.observed_at)
    command = (spec.evidence.command_line or "")[:MAX_LONG].split()
    for session in sessions[:MAX_SCAN]:
        at = reading.time(session.time) if isinstance(session, ExecSession) else None
        if (
            isinstance(session, ExecSession)
            and session.username == spec.requesting_user
            and at is not None
            and observed is not None
            and abs(at - observed) <= CLOCK_SKEW_S
            and not (spec.container and session.container and session.container != spec.container)
            and (guarded or " ".join(session.command[:MAX_ARGS])[:MAX_LONG].split() == command)
        ):
            return reading.bounded_session(session)
    return reading.bounded_session(
        ExecSession(
            username=spec.requesting_user,
            groups=list(spec.requesting_groups),
            time=spec.observed_at,
            subresource="attach" if spec.object_kind == "PodAttachOptions" else "exec",
            container=spec.container,
            command=command,
            allowed=not reading.denied(detection),
        )
    )
