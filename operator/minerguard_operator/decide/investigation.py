"""The investigation of one detection, assembled from what the investigator gathered.

:mod:`minerguard_operator.investigator` reads the pod, its owners, the exec-session Events, the
registry and the entry points into :class:`Facts`; :func:`investigate` turns them into the
``status.investigation`` a responder reads. Pure, so every conclusion is unit-tested on the
objects as the API server returns them, and each conclusion is one small function:

- :func:`origin`: where the code came from (a foreign image, one of ours, written at runtime);
- :func:`method`: how it was started (an applied workload, ``kubectl exec``, a dropper);
- :func:`correlate`: which exec session started the offending process;
- :func:`creator` / :func:`last_changer`: who made and last changed an object;
- :func:`restart_paths` and :func:`link_state`: what would bring it back and where each stands;
- :func:`checklist`, :func:`timeline` and :func:`summary`: what a responder reads and does.

Every string in a pod, owner, Event or registry answer is written by whoever controls the
workload, so each one is cut to a bound, stripped of control characters (``kubectl describe``
prints them to a terminal) and shell-quoted where it lands in a command a responder will paste.
No shape of input makes :func:`investigate` raise: a managedFields that is a string or an owner
without a kind is read as nothing, and what could not be told is said in ``unknowns``.
"""

from __future__ import annotations

import shlex
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

from minerguard import images
from minerguard.api.detection import ActionTaken, Evidence, Layer, MinerDetection
from minerguard.api.investigation import (
    CREATED_BY_ANNOTATION,
    MAX_LIST,
    Actor,
    Basis,
    CheckItem,
    CheckState,
    Confidence,
    Cost,
    Entry,
    EntryPoint,
    ExecSession,
    ExecutableOrigin,
    HistoryStep,
    ImageProvenance,
    Investigation,
    InvestigationState,
    LinkState,
    Origin,
    Provenance,
    RestartPath,
    Severity,
    TimelineEntry,
    Via,
)
from minerguard.timestamps import format_time, parse_time
from minerguard_operator.decide import marks

MAX_TEXT: Final = 256
"""Bound of a name, user or manager taken from an object (Kubernetes names are at most 253)."""
MAX_LONG: Final = 1024
"""Bound of a command line, history step or sentence."""
MAX_SUMMARY: Final = 2048
MAX_SCAN: Final = 1000
"""Most entries of any list in an object that are looked at (managedFields, sessions...)."""
MAX_ARGS: Final = 64
MAX_SESSIONS: Final = 10
"""Exec sessions shown in the timeline besides the one that started the process."""
EXEC_WINDOW_S: Final = 600.0
"""How long before the exec'd process started its session may have begun."""
CLOCK_SKEW_S: Final = 2.0
"""The node's clock (process start) and the webhook's (session) may differ by this much."""
EXEC_KINDS: Final = frozenset({"PodExecOptions", "PodAttachOptions"})
"""``spec.objectKind`` of an admission detection on ``pods/exec`` and ``pods/attach``."""
SCALED_KINDS: Final = frozenset(
    {"Deployment", "StatefulSet", "ReplicaSet", "ReplicationController"}
)
"""Owners the operator stops by scaling to 0 (see ``changes.stop_owner``)."""
RESTARTING: Final = frozenset({"owner", "cronjob"})
"""Relations whose links recreate the pod by themselves."""

NO_EXEC_SESSION: Final = (
    "an exec session started it but no ExecSession Event was found: exec tracing off or the "
    "Event expired (1 h TTL)"
)
MANAGED_FIELDS_NOTE: Final = (
    "managedFields name the field manager, not the user (and whoever edits the object can "
    "rewrite them): who created it is known only by its manager (no minerguard.io/created-by "
    "stamp; the stamping webhook is off?)"
)
UNTRUSTED_STAMP: Final = (
    "a minerguard.io/created-by stamp was ignored: the stamping webhook is off, so whoever "
    "created the object could have written it"
)
CHECKS: Final = (
    "Instances removed",
    "Restart paths stopped",
    "Image quarantined",
    "Registry tags removed",
    "Credentials rotated",
    "Entry points closed",
)
TIMELINE_ORDER: Final = (
    "ImageBuilt",
    "Admission",
    "ExecSession",
    "ProcessStart",
    "Detection",
    "Action",
)


@dataclass(frozen=True, slots=True)
class Facts:
    """Everything the investigator gathered for one detection; the decision is pure over it."""

    detection: MinerDetection
    started_at: str
    now: str
    pod: Mapping[str, Any] | None = None
    owners: Sequence[Mapping[str, Any]] = ()
    cron_jobs: Sequence[Mapping[str, Any]] = ()
    same_digest_pods: Sequence[Mapping[str, Any]] = ()
    exec_sessions: Sequence[ExecSession] = ()
    image: ImageProvenance | None = None
    entry_points: Sequence[EntryPoint] = ()
    anonymous_access: Sequence[EntryPoint] = ()
    quarantined: bool | None = None
    unknowns: Sequence[str] = ()
    api_calls: int = 0
    registry_calls: int = 0
    registry_cached: bool = False
    trust_stamps: bool = True
    """Whether the stamping (mutating) webhook is on, so a created-by stamp is its word."""


@dataclass(frozen=True, slots=True)
class Parts:
    """The conclusions the checklist and the summary are built from."""

    origin: Origin
    provenance: Provenance
    image: ImageProvenance | None
    paths: Sequence[RestartPath]
    points: Sequence[EntryPoint]
    twins: Sequence[RestartPath] = ()
    """Every other pod of the digest (``paths`` may have been cut): what still runs it."""


@dataclass(frozen=True, slots=True)
class Method:
    """How it was started, on what basis and how surely (see :func:`method`)."""

    via: Via
    basis: tuple[Basis, ...] = ()
    confidence: Confidence = Confidence.UNKNOWN
    dropper: str | None = None
    note: str | None = None
    """What could not be told, for ``unknowns``."""


# -- reading hostile objects ---------------------------------------------------------------------


def clean(value: object, limit: int = MAX_TEXT) -> str | None:
    """A string from an object, cut to ``limit``, control characters replaced; else None."""
    if not isinstance(value, str) or not value:
        return None
    return "".join(c if c.isprintable() else "?" for c in value[:limit])


def _map(value: object) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _items(value: object) -> list[Any]:
    return list(value[:MAX_SCAN]) if isinstance(value, list | tuple) else []


def _meta(obj: object) -> Mapping[str, Any]:
    return _map(_map(obj).get("metadata"))


def _ref(obj: object) -> tuple[str, str | None, str]:
    """``(kind, namespace, name)`` of an object, each cleaned ("?" where missing)."""
    meta = _meta(obj)
    kind = clean(_map(obj).get("kind")) or "?"
    return kind, clean(meta.get("namespace")), clean(meta.get("name")) or "?"


def _where(namespace: str | None, name: str) -> str:
    return f"{namespace}/{name}" if namespace else name


def _time(value: object) -> float | None:
    return parse_time(value[:64]) if isinstance(value, str) else None


def _annotation(obj: object, key: str) -> str | None:
    value = _map(_meta(obj).get("annotations")).get(key)
    return value[:MAX_LONG] if isinstance(value, str) else None


def _bounded_actor(actor: Actor) -> Actor:
    return actor.model_copy(
        update={
            "username": clean(actor.username),
            "groups": [clean(g) or "?" for g in actor.groups[:32]],
            "manager": clean(actor.manager),
            "operation": clean(actor.operation, 32),
            "time": clean(actor.time, 64),
        }
    )


def _bounded_session(session: ExecSession) -> ExecSession:
    return session.model_copy(
        update={
            "username": clean(session.username),
            "groups": [clean(g) or "?" for g in session.groups[:32]],
            "uid": clean(session.uid),
            "time": clean(session.time, 64),
            "subresource": clean(session.subresource, 16) or "exec",
            "container": clean(session.container),
            "command": [clean(a, MAX_LONG) or "" for a in session.command[:MAX_ARGS]],
            "event": clean(session.event),
        }
    )


def is_controller(username: str | None) -> bool:
    """Whether a user is a built-in controller: creating pods is its job, not a person's act."""
    if not username:
        return False
    if username.startswith("system:serviceaccount:kube-system:"):
        return username.endswith("-controller")
    return username.startswith(("system:kube-controller-manager", "system:node:"))


# -- where it came from and how it started -------------------------------------------------------


def is_exec_request(detection: MinerDetection) -> bool:
    """An admission detection of a ``kubectl exec``/``attach`` CONNECT (what the webhook writes)."""
    return detection.spec.layer is Layer.ADMISSION and detection.spec.object_kind in EXEC_KINDS


def origin(detection: MinerDetection, image: ImageProvenance | None) -> Origin:
    """Where the offending code came from.

    The agent's overlay view wins: a file written or downloaded after the container started is
    not in any image, whoever's. Otherwise the code is in the image (or, for an admission
    detection, in the image or the manifest), and the image's registry tells ours from foreign.
    """
    found = detection.spec.evidence.executable_origin
    if found in (ExecutableOrigin.WRITTEN_AFTER_START, ExecutableOrigin.DOWNLOADED):
        return Origin.RUNTIME
    trusted = image.trusted if image is not None else None
    if trusted is None:
        return Origin.UNKNOWN
    return Origin.OURS if trusted else Origin.FOREIGN


def method(detection: MinerDetection) -> Method:
    """How it was started: an exec session, a dropper in the pod, or the workload as applied."""
    evidence = detection.spec.evidence
    found = evidence.executable_origin
    dropper = clean(evidence.downloaded_by, MAX_LONG)
    if evidence.entry is Entry.EXEC:
        return Method(Via.EXEC, (Basis.AGENT,), Confidence.CERTAIN, dropper)
    if is_exec_request(detection):
        return Method(Via.EXEC, (Basis.ADMISSION,), Confidence.CERTAIN)
    if found is ExecutableOrigin.DOWNLOADED:
        return Method(Via.DROPPER, (Basis.AGENT,), Confidence.CERTAIN, dropper)
    if found is ExecutableOrigin.WRITTEN_AFTER_START:
        if dropper:
            return Method(Via.DROPPER, (Basis.AGENT,), Confidence.LIKELY, dropper)
        return Method(
            Via.UNKNOWN,
            (Basis.AGENT,),
            note=(
                "the executable was written into the running container but no process that "
                "fetched it was seen: a dropper or someone with a shell"
            ),
        )
    if detection.spec.layer is Layer.ADMISSION:
        return Method(Via.APPLY, (Basis.ADMISSION,), Confidence.CERTAIN)
    if evidence.entry is Entry.INIT:
        if found is ExecutableOrigin.IMAGE:
            return Method(Via.APPLY, (Basis.AGENT,), Confidence.CERTAIN)
        return Method(
            Via.APPLY,
            (Basis.AGENT,),
            Confidence.LIKELY,
            note=(
                "the process descends from the container's own first process; whether its "
                "executable was in the image was not reported"
            ),
        )
    return Method(
        Via.UNKNOWN, note="how the process entered the container was not reported by the agent"
    )


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

    A candidate is an allowed session into the same container (when both name one) that began
    no later than the root process (with :data:`CLOCK_SKEW_S` of slack) and no earlier than
    :data:`EXEC_WINDOW_S` before it. One whose command is the root's is ``Certain``; otherwise
    the nearest earlier is ``Likely``. Without a start time to bound by, only a command match
    counts, as ``Likely``.
    """
    root = evidence.lineage[-1] if evidence.lineage else None
    root_time = _time(root.started_at) if root is not None else None
    root_command = root.command_line if root is not None else evidence.command_line
    candidates: list[tuple[float, int, ExecSession]] = []
    for index, session in enumerate(exec_sessions[:MAX_SCAN]):
        if not isinstance(session, ExecSession) or not session.allowed:
            continue
        if container and session.container and session.container != container:
            continue
        at = _time(session.time)
        if root_time is not None and (
            at is None or not root_time - EXEC_WINDOW_S <= at <= root_time + CLOCK_SKEW_S
        ):
            continue
        candidates.append((at if at is not None else float("-inf"), index, session))
    matched = [c for c in candidates if command_matches(c[2].command, root_command)]
    if matched:
        confidence = Confidence.CERTAIN if root_time is not None else Confidence.LIKELY
        return max(matched, key=lambda c: c[:2])[2], confidence
    if root_time is not None and candidates:
        return max(candidates, key=lambda c: c[:2])[2], Confidence.LIKELY
    return None, Confidence.UNKNOWN


def _request_session(detection: MinerDetection, sessions: Sequence[ExecSession]) -> ExecSession:
    """The session an exec admission detection judged: its Event if found, else the request."""
    spec = detection.spec
    observed = _time(spec.observed_at)
    for session in sessions[:MAX_SCAN]:
        at = _time(session.time) if isinstance(session, ExecSession) else None
        if (
            isinstance(session, ExecSession)
            and session.username == spec.requesting_user
            and at is not None
            and observed is not None
            and abs(at - observed) <= CLOCK_SKEW_S
        ):
            return _bounded_session(session)
    return _bounded_session(
        ExecSession(
            username=spec.requesting_user,
            groups=list(spec.requesting_groups),
            time=spec.observed_at,
            subresource="attach" if spec.object_kind == "PodAttachOptions" else "exec",
            container=spec.container,
            command=(spec.evidence.command_line or "")[:MAX_LONG].split(),
            allowed=not _denied(detection),
        )
    )


# -- who -----------------------------------------------------------------------------------------


def _managed_entries(obj: object) -> list[tuple[float, int, Mapping[str, Any]]]:
    """ManagedFields entries that record a write to the object itself, with their times."""
    found = []
    for index, entry in enumerate(_items(_meta(obj).get("managedFields"))):
        if not isinstance(entry, Mapping) or entry.get("subresource"):
            continue  # status and scale writes are the controllers' (and minerguard's) own
        at = _time(entry.get("time"))
        found.append((at if at is not None else float("inf"), index, entry))
    return found


def _managed_actor(entry: Mapping[str, Any]) -> Actor:
    return _bounded_actor(
        Actor(
            manager=clean(entry.get("manager")),
            operation=clean(entry.get("operation"), 32),
            time=clean(entry.get("time"), 64),
            basis=Basis.MANAGED_FIELDS,
        )
    )


def creator(obj: object, *, stamps: bool = True) -> Actor | None:
    """Who created an object: its ``minerguard.io/created-by`` stamp, else its first manager.

    ``stamps=False`` when the stamping webhook is off: a stamp is then whatever the object's
    creator chose to write (framing someone else), and only managedFields are read.
    """
    stamped = Actor.parse_stamp(_annotation(obj, CREATED_BY_ANNOTATION)) if stamps else None
    if stamped is not None:
        return _bounded_actor(stamped)
    entries = _managed_entries(obj)
    return _managed_actor(min(entries, key=lambda e: e[:2])[2]) if entries else None


def last_changer(obj: object, before: str | None = None) -> Actor | None:
    """The latest manager to write the object before ``before``.

    The response's own writes after the detection (a scale to 0) are not what let the miner in.
    """
    limit = _time(before)
    entries = [e for e in _managed_entries(obj) if limit is None or e[0] <= limit]
    return _managed_actor(max(entries, key=lambda e: e[:2])[2]) if entries else None


def _requester(detection: MinerDetection) -> tuple[Actor | None, str | None]:
    spec = detection.spec
    if spec.layer is not Layer.ADMISSION or not spec.requesting_user:
        return None, None
    actor = _bounded_actor(
        Actor(
            username=spec.requesting_user,
            groups=list(spec.requesting_groups),
            time=spec.observed_at,
            basis=Basis.ADMISSION,
        )
    )
    note = None
    if spec.requester_authenticated is False:
        note = (
            f"the requesting user {actor.username} is as claimed by an AdmissionReview whose "
            "caller was not authenticated"
        )
    return actor, note


def _least(*levels: Confidence) -> Confidence:
    order = (Confidence.UNKNOWN, Confidence.LIKELY, Confidence.CERTAIN)
    return min(levels, key=order.index)


def provenance(facts: Facts, how: Method) -> tuple[Provenance, list[str]]:
    """Who created and changed the workload and the pod, and the exec session if one ran it.

    Its confidence is that of its least sure part: an admission requester the webhook did not
    authenticate, or a creator only managedFields name, make it ``Likely``.
    """
    notes: list[str] = []
    detection = facts.detection
    owners = [o for o in _items(facts.owners) if isinstance(o, Mapping)]
    top = owners[-1] if owners else None
    requester, requester_note = _requester(detection)
    workload_kind = detection.spec.object_kind not in {"Pod", *EXEC_KINDS}
    stamps = facts.trust_stamps
    workload_created = creator(top, stamps=stamps) if top is not None else None
    workload_changed = last_changer(top, detection.spec.observed_at) if top is not None else None
    if workload_kind and requester is not None:
        # The request judged made the workload what it is: its creator, or whoever changed it.
        if workload_created is None:
            workload_created = requester
        elif workload_created.username != requester.username:
            workload_changed = requester
    pod_created = None
    if facts.pod is not None and stamps:
        pod_created = Actor.parse_stamp(_annotation(facts.pod, CREATED_BY_ANNOTATION))
    if pod_created is None and detection.spec.object_kind == "Pod":
        pod_created = requester
    if pod_created is None and facts.pod is not None:
        pod_created = creator(facts.pod, stamps=stamps)
    if not stamps and any(
        _annotation(o, CREATED_BY_ANNOTATION) for o in (top, facts.pod) if o is not None
    ):
        notes.append(UNTRUSTED_STAMP)
    if pod_created is not None:
        pod_created = _bounded_actor(pod_created)
    used = (workload_created, workload_changed, pod_created)
    basis = list(how.basis)
    confidence = how.confidence
    if requester is not None and requester in used:
        vouched = detection.spec.requester_authenticated is True
        confidence = _least(confidence, Confidence.CERTAIN if vouched else Confidence.LIKELY)
        if requester_note:
            notes.append(requester_note)
    if any(a is not None and a.basis is Basis.MANAGED_FIELDS for a in used):
        confidence = _least(confidence, Confidence.LIKELY)
        notes.append(MANAGED_FIELDS_NOTE)
    if facts.pod is not None and workload_created is None and pod_created is None:
        notes.append(
            "who created the pod is unknown: no minerguard.io/created-by stamp and no managedFields"
        )
    session = None
    if how.via is Via.EXEC:
        if is_exec_request(detection):
            session = _request_session(detection, facts.exec_sessions)
            vouched = detection.spec.requester_authenticated is True
            confidence = _least(confidence, Confidence.CERTAIN if vouched else Confidence.LIKELY)
            if requester_note:
                notes.append(requester_note)
        else:
            found, matched = correlate(
                facts.exec_sessions, detection.spec.evidence, detection.spec.container
            )
            if found is None:
                notes.append(NO_EXEC_SESSION)
            else:
                session = _bounded_session(found)
                basis.append(Basis.EXEC_TRACE)
                confidence = _least(confidence, matched)
    for actor in used:
        if actor is not None and actor.basis not in basis:
            basis.append(actor.basis)
    if how.note:
        notes.append(how.note)
    found_provenance = Provenance(
        via=how.via,
        workload_created_by=workload_created,
        workload_changed_by=workload_changed,
        pod_created_by=pod_created,
        exec_session=session,
        dropper=how.dropper,
        basis=basis,
        confidence=confidence,
    )
    return found_provenance, notes


def _maker(found: Provenance) -> str | None:
    """Who made the workload or pod, by name: a person's account, else the field manager.

    A controller creating a ReplicaSet's pods is doing its job; the person is whoever made the
    workload above it.
    """
    for actor in (found.workload_created_by, found.pod_created_by):
        if actor is not None and actor.username and not is_controller(actor.username):
            return actor.username
    for actor in (found.workload_created_by, found.pod_created_by):
        if actor is not None and actor.manager:
            return f"field manager {actor.manager}"
    return None


def plural(count: int, one: str, many: str) -> str:
    """``1 tag points`` / ``2 tags point``: the summary is read by people."""
    return f"{count} {one if count == 1 else many}"


# -- image ---------------------------------------------------------------------------------------


def image_part(facts: Facts) -> tuple[ImageProvenance | None, list[str]]:
    """The registry's provenance with the agent's view of the executable, all bounded."""
    spec = facts.detection.spec
    evidence = spec.evidence
    found = facts.image
    told = evidence.executable_origin not in (None, ExecutableOrigin.UNKNOWN)
    if found is None:
        if not told and not spec.image:
            return None, []
        found = ImageProvenance(image=spec.image, digest=spec.image_digest)
    notes = []
    basis = list(found.basis)
    updates: dict[str, Any] = {}
    if told and evidence.executable_origin is not None:
        updates["executable"] = evidence.executable_origin
        if Basis.AGENT not in basis:
            basis.append(Basis.AGENT)
    if evidence.downloaded_by:
        updates["downloaded_by"] = clean(evidence.downloaded_by, MAX_LONG)
    if len(found.tags) > MAX_LIST:
        notes.append(f"{len(found.tags) - MAX_LIST} more tags point at the digest (not listed)")
    history = [
        HistoryStep(
            created=clean(s.created, 64),
            created_by=clean(s.created_by, MAX_LONG),
            empty_layer=s.empty_layer,
            comment=clean(s.comment, MAX_LONG),
            suspect=s.suspect,
        )
        for s in found.history[:MAX_SCAN]
    ]
    if len(history) > MAX_LIST:
        notes.append(f"image history: {len(history) - MAX_LIST} steps not listed")
        history = _keep_suspect(history)
    labels = {
        (clean(k) or "?"): (clean(v, MAX_LONG) or "")
        for k, v in list(found.labels.items())[:MAX_LIST]
    }
    updates.update(
        {
            "image": clean(found.image, MAX_LONG),
            "registry": clean(found.registry),
            "repository": clean(found.repository),
            "digest": clean(found.digest, 80),
            "tags": [clean(t, 128) or "?" for t in found.tags[:MAX_LIST]],
            "history": history,
            "labels": labels,
            "basis": basis,
        }
    )
    return found.model_copy(update=updates), notes


def _keep_suspect(history: Sequence[HistoryStep]) -> list[HistoryStep]:
    """At most MAX_LIST steps, in order: every suspect one first, then the latest others."""
    keep = [i for i, step in enumerate(history) if step.suspect][:MAX_LIST]
    others = [i for i, step in enumerate(history) if not step.suspect]
    keep += others[len(others) - (MAX_LIST - len(keep)) :] if len(keep) < MAX_LIST else []
    return [history[i] for i in sorted(keep)]


def _reference(image: ImageProvenance | None, spec_image: str | None) -> str:
    name = (image.image if image else None) or clean(spec_image, MAX_LONG) or "an unnamed image"
    digest = image.digest if image else None
    if digest and "@" not in name:
        return f"{images.parse(name).name}@{digest[:19]}…"
    return name


def _suspect_step(image: ImageProvenance | None) -> str | None:
    for step in image.history if image else ():
        if step.suspect and step.created_by:
            return step.created_by
    return None


# -- what restarts it ----------------------------------------------------------------------------


def _finished(obj: Mapping[str, Any]) -> bool:
    for item in _items(_map(obj.get("status")).get("conditions")):
        condition = _map(item)
        if condition.get("status") == "True" and condition.get("type") in ("Complete", "Failed"):
            return True
    return False


def link_state(obj: object) -> LinkState:
    """Whether an owner, CronJob or pod can still make (or be) the miner.

    Read the way the operator's ``StopOwner`` stops each kind: replicas 0, ``suspend``, the
    DaemonSet's unsatisfiable nodeSelector; a kind it does not know is ``Unknown``.
    """
    body = _map(obj)
    if _meta(body).get("deletionTimestamp"):
        return LinkState.GONE
    kind = body.get("kind") if isinstance(body.get("kind"), str) else None
    spec = _map(body.get("spec"))
    if kind in SCALED_KINDS:
        replicas = spec.get("replicas", 1)
        return LinkState.STOPPED if type(replicas) is int and replicas == 0 else LinkState.ACTIVE
    if kind == "CronJob":
        return LinkState.STOPPED if spec.get("suspend") is True else LinkState.ACTIVE
    if kind == "Job":
        parallelism = spec.get("parallelism")
        stopped = spec.get("suspend") is True or (type(parallelism) is int and parallelism == 0)
        return LinkState.STOPPED if stopped or _finished(body) else LinkState.ACTIVE
    if kind == "DaemonSet":
        template = _map(_map(spec.get("template")).get("spec"))
        selector = _map(template.get("nodeSelector"))
        return LinkState.STOPPED if marks.STOPPED_NODE_LABEL in selector else LinkState.ACTIVE
    if kind == "Pod":
        return LinkState.ACTIVE
    return LinkState.UNKNOWN


def _stop_remedy(kind: str, namespace: str | None, name: str) -> str | None:
    where = f"-n {shlex.quote(namespace)} " if namespace else ""
    target = shlex.quote(f"{kind.lower()}/{name}")
    if kind in SCALED_KINDS:
        return f"kubectl scale {where}{target} --replicas=0"
    if kind in {"Job", "CronJob"}:
        return f"kubectl patch {where}{target} -p " + shlex.quote('{"spec":{"suspend":true}}')
    if kind == "DaemonSet":
        patch = '{"spec":{"template":{"spec":{"nodeSelector":{"%s":"true"}}}}}'
        return f"kubectl patch {where}{target} -p " + shlex.quote(patch % marks.STOPPED_NODE_LABEL)
    return None


def _responses(detection: MinerDetection) -> list[ActionTaken]:
    raw = detection.status.actions_taken if detection.status else []
    return ActionTaken.parse_all(raw[:MAX_SCAN])


def _stop_response(actions: Sequence[ActionTaken], kind: str, name: str) -> str | None:
    for action in actions:
        if action.name != "StopOwner":
            continue
        for part in action.detail.split(", "):
            if part.startswith(f"{kind}/{name} "):
                return clean(part, MAX_LONG)
    return None


def _owner_paths(facts: Facts, actions: Sequence[ActionTaken]) -> list[RestartPath]:
    paths = []
    chain = _items(facts.owners)
    failed = any(a.name == "StopOwner" and a.failed for a in actions)
    for index, owner in enumerate(chain):
        kind, namespace, name = _ref(owner)
        state = link_state(owner)
        response = _stop_response(actions, kind, name)
        if response is None and failed and index == len(chain) - 1:
            response = "StopOwner failed (the detection's message says why)"
        paths.append(
            RestartPath(
                kind=kind,
                name=name,
                namespace=namespace,
                relation="owner",
                state=state,
                response=response,
                remedy=_stop_remedy(kind, namespace, name) if state is LinkState.ACTIVE else None,
            )
        )
    return paths


def _cron_paths(facts: Facts, seen: set[tuple[str, str | None, str]]) -> list[RestartPath]:
    paths = []
    for cron in _items(facts.cron_jobs):
        kind, namespace, name = _ref(cron)
        kind = "CronJob" if kind == "?" else kind
        if (kind, namespace, name) in seen:
            continue
        seen.add((kind, namespace, name))
        state = link_state({**_map(cron), "kind": "CronJob"})
        remedy = _stop_remedy("CronJob", namespace, name) if state is LinkState.ACTIVE else None
        paths.append(
            RestartPath(
                kind="CronJob",
                name=name,
                namespace=namespace,
                relation="cronjob",
                state=state,
                remedy=remedy,
            )
        )
    return paths


def _twin_paths(facts: Facts) -> list[RestartPath]:
    spec = facts.detection.spec
    own = (facts.detection.metadata.namespace, spec.pod_name)
    paths = []
    for twin in _items(facts.same_digest_pods):
        _, namespace, name = _ref(twin)
        uid = _meta(twin).get("uid")
        if (spec.pod_uid and uid == spec.pod_uid) or (namespace, name) == own:
            continue
        state = link_state({**_map(twin), "kind": "Pod"})
        where = f"-n {shlex.quote(namespace)} " if namespace else ""
        paths.append(
            RestartPath(
                kind="Pod",
                name=name,
                namespace=namespace,
                relation="same-digest",
                state=state,
                remedy=f"kubectl delete pod {where}{shlex.quote(name)}"
                if state is LinkState.ACTIVE
                else None,
            )
        )
    return paths


def _tag_paths(image: ImageProvenance | None) -> tuple[list[RestartPath], list[str]]:
    if image is None or not image.tags:
        return [], []
    parsed = images.parse(image.image or "")
    registry = clean(image.registry) or parsed.registry
    repository = clean(image.repository) or parsed.repository
    foreign = image.trusted is False
    paths = []
    for tag in image.tags[:MAX_SCAN]:
        name = f"{registry}/{repository}:{clean(tag, 128) or '?'}"[:MAX_LONG]
        remedy = (
            "not our registry: keep the digest quarantined and report the tag to its owner"
            if foreign
            else f"regctl tag delete {shlex.quote(name)}"
        )
        paths.append(
            RestartPath(
                kind="RegistryTag",
                name=name,
                relation="registry-tag",
                state=LinkState.ACTIVE,
                remedy=remedy,
            )
        )
    notes = []
    if image.tags_complete is False:
        notes.append(
            f"the tag listing was cut after {image.tags_checked or '?'} tags compared: more "
            "tags may point at the digest"
        )
    return paths, notes


def restart_paths(
    facts: Facts, twins: Sequence[RestartPath] | None = None
) -> tuple[list[RestartPath], list[str]]:
    """Owner links, CronJobs, registry tags and other pods of the digest, at most MAX_LIST."""
    actions = _responses(facts.detection)
    paths = _owner_paths(facts, actions)
    seen = {(p.kind, p.namespace, p.name) for p in paths}
    paths += _cron_paths(facts, seen)
    # Code written at runtime is in no image: the tags do not bring it back.
    runtime = origin(facts.detection, facts.image) is Origin.RUNTIME
    tags, notes = _tag_paths(None if runtime else facts.image)
    paths += tags
    paths += _twin_paths(facts) if twins is None else twins  # last: counted elsewhere, uncut
    if facts.pod is not None and not facts.owners and facts.detection.spec.owner is not None:
        # Without the pod the investigator followed spec.owner itself, and said what it found.
        owner = facts.detection.spec.owner
        notes.append(
            f"the detection names owner {clean(owner.kind)}/{clean(owner.name)} but it was not "
            "found with that uid: deleted, or never its owner"
        )
    if len(paths) > MAX_LIST:
        notes.append(f"restart paths: {len(paths) - MAX_LIST} more not listed (bound {MAX_LIST})")
        paths = paths[:MAX_LIST]
    return paths, notes


# -- checklist -----------------------------------------------------------------------------------


def _denied(detection: MinerDetection) -> bool:
    """An admission detection whose request was refused: what it judged never ran."""
    spec = detection.spec
    return (
        spec.layer is Layer.ADMISSION
        and spec.mode == "Enforce"
        and "Deny" in spec.actions_requested
    )


def _done(actions: Sequence[ActionTaken], name: str) -> bool:
    return any(a.name == name and not a.failed for a in actions)


def _instances(
    facts: Facts, actions: Sequence[ActionTaken], twins: Sequence[RestartPath]
) -> CheckItem:
    item = CHECKS[0]
    running = [p for p in twins if p.state is LinkState.ACTIVE]
    if _denied(facts.detection):
        removed: str | None = "denied at admission: it never ran"
    elif _done(actions, "DeletePod"):
        removed = "the pod was deleted"
    elif facts.pod is None:
        removed = "the pod was not found"
    elif _meta(facts.pod).get("deletionTimestamp"):
        removed = "the pod is being deleted"
    else:
        removed = None
    if running:
        listed = ", ".join(_where(p.namespace, p.name) for p in running[:5])
        more = f" and {len(running) - 5} more" if len(running) > 5 else ""
        return CheckItem(
            item=item,
            state=CheckState.OPEN,
            detail=plural(len(running), "other pod runs", "other pods run")
            + f" the digest: {listed}{more}",
        )
    if removed is None:
        kept = "isolated and kept for forensics" if _done(actions, "Isolate") else "still runs"
        return CheckItem(item=item, state=CheckState.OPEN, detail=f"the pod {kept}")
    return CheckItem(item=item, state=CheckState.DONE, detail=removed)


def _restart(paths: Sequence[RestartPath]) -> CheckItem:
    item = CHECKS[1]
    links = [p for p in paths if p.relation in RESTARTING]
    if not links:
        return CheckItem(
            item=item, state=CheckState.NOT_APPLICABLE, detail="no owner or CronJob makes it"
        )
    active = [
        f"{p.kind} {_where(p.namespace, p.name)}" for p in links if p.state is LinkState.ACTIVE
    ]
    if active:
        return CheckItem(
            item=item, state=CheckState.OPEN, detail="active: " + ", ".join(active[:5])
        )
    if any(p.state is LinkState.UNKNOWN for p in links):
        return CheckItem(item=item, state=CheckState.UNKNOWN, detail="a link of unknown kind")
    return CheckItem(item=item, state=CheckState.DONE, detail=f"{len(links)} stopped or gone")


def _quarantine(facts: Facts, found: Origin) -> CheckItem:
    item = CHECKS[2]
    note = " (the image itself does not carry it)" if found is Origin.RUNTIME else ""
    if facts.quarantined is True:
        return CheckItem(
            item=item, state=CheckState.DONE, detail="the digest is quarantined" + note
        )
    if facts.quarantined is False:
        return CheckItem(item=item, state=CheckState.OPEN, detail="not quarantined" + note)
    return CheckItem(item=item, state=CheckState.UNKNOWN, detail="the policy status was not read")


def _tags(image: ImageProvenance | None, found: Origin) -> CheckItem:
    item = CHECKS[3]
    if found is Origin.RUNTIME:
        return CheckItem(
            item=item,
            state=CheckState.NOT_APPLICABLE,
            detail="written at runtime, not in the image",
        )
    if image is None or image.trusted is None:
        return CheckItem(item=item, state=CheckState.UNKNOWN, detail="the image was not read")
    if image.trusted is False:
        return CheckItem(
            item=item, state=CheckState.NOT_APPLICABLE, detail="foreign image: not our registry"
        )
    if image.tags:
        least = "at least " if image.tags_complete is False else ""
        return CheckItem(
            item=item,
            state=CheckState.OPEN,
            detail=least
            + plural(len(image.tags), "tag still points", "tags still point")
            + " at the digest",
        )
    if image.tags_checked is None:
        return CheckItem(item=item, state=CheckState.UNKNOWN, detail="the tags were not listed")
    return CheckItem(item=item, state=CheckState.DONE, detail="no tag points at the digest")


def _service_account(pod: Mapping[str, Any] | None) -> str | None:
    if pod is None:
        return None
    spec = _map(_map(pod).get("spec"))
    name = clean(spec.get("serviceAccountName")) or clean(spec.get("serviceAccount")) or "default"
    namespace = clean(_meta(pod).get("namespace")) or "default"
    return f"system:serviceaccount:{namespace}:{name}"


def _credentials(facts: Facts, found: Provenance) -> CheckItem:
    accounts: list[str] = []
    session = found.exec_session
    for user in (
        session.username if session else None,
        found.workload_created_by.username if found.workload_created_by else None,
        found.pod_created_by.username if found.pod_created_by else None,
        _service_account(facts.pod),
    ):
        if user and not is_controller(user) and user not in accounts:
            accounts.append(user)
    detail = (
        "rotate the credentials of " + ", ".join(accounts)
        if accounts
        else "no account identified: rotate whatever could reach the pod"
    )
    return CheckItem(
        item=CHECKS[4],
        state=CheckState.OPEN,
        detail=detail + " (minerguard cannot tell when this is done)",
    )


def _doors(points: Sequence[EntryPoint]) -> CheckItem:
    item = CHECKS[5]
    high = [p for p in points if p.severity is Severity.HIGH]
    if high:
        listed = ", ".join(f"{p.kind} {clean(p.name)}" for p in high[:5])
        return CheckItem(item=item, state=CheckState.OPEN, detail=f"{len(high)} High: {listed}")
    lower = f"; {len(points)} lower ones listed" if points else ""
    return CheckItem(item=item, state=CheckState.DONE, detail="no High entry point found" + lower)


def checklist(facts: Facts, parts: Parts) -> list[CheckItem]:
    """What a responder must see done, each with where it stands now (order of :data:`CHECKS`)."""
    actions = _responses(facts.detection)
    return [
        _instances(facts, actions, parts.twins),
        _restart(parts.paths),
        _quarantine(facts, parts.origin),
        _tags(parts.image, parts.origin),
        _credentials(facts, parts.provenance),
        _doors(parts.points),
    ]


# -- timeline ------------------------------------------------------------------------------------


def _events(facts: Facts, who: Provenance) -> Iterable[tuple[object, str, str, str | None]]:
    """``(raw time, kind, detail, actor)`` of every moment the facts record."""
    detection = facts.detection
    spec = detection.spec
    image = facts.image
    if image is not None and image.created:
        yield image.created, "ImageBuilt", f"image {_reference(image, spec.image)} built", None
    owners = _items(facts.owners)
    if owners:
        kind, namespace, name = _ref(owners[-1])
        actor = who.workload_created_by
        yield (
            _meta(owners[-1]).get("creationTimestamp"),
            "Admission",
            f"{kind} {_where(namespace, name)} created",
            (actor.username or actor.manager) if actor else None,
        )
    if facts.pod is not None:
        _, namespace, name = _ref(facts.pod)
        actor = who.pod_created_by
        yield (
            _meta(facts.pod).get("creationTimestamp"),
            "Admission",
            f"Pod {_where(namespace, name)} created",
            (actor.username or actor.manager) if actor else None,
        )
    if spec.layer is Layer.ADMISSION:
        verdict = "denied" if _denied(detection) else "let through"
        target = _where(clean(detection.metadata.namespace), clean(spec.pod_name) or "?")
        yield (
            spec.observed_at,
            "Admission",
            f"{clean(spec.object_kind)} {target} {verdict} at admission",
            clean(spec.requesting_user),
        )
    sessions = [
        s
        for s in _items(facts.exec_sessions)
        if isinstance(s, ExecSession)
        and not (spec.container and s.container and s.container != spec.container)
    ]
    # The latest few and the one that started it: a busy pod's sessions must not crowd out
    # the detection and the response (the timeline is cut at MAX_LIST).
    sessions.sort(key=lambda s: _time(s.time) or 0.0)
    sessions = sessions[-MAX_SESSIONS:]
    if who.exec_session is not None and who.exec_session not in sessions:
        sessions.append(who.exec_session)
    for session in sessions:
        command = " ".join(clean(a, MAX_LONG) or "" for a in session.command[:MAX_ARGS])
        refused = "" if session.allowed else " (denied)"
        yield (
            session.time,
            "ExecSession",
            f"{clean(session.subresource, 16)}{refused}: {command[:MAX_LONG]}",
            clean(session.username),
        )
    root = spec.evidence.lineage[-1] if spec.evidence.lineage else None
    if root is not None:
        program = clean(root.command_line, MAX_LONG) or clean(root.executable, MAX_LONG) or "?"
        starter = who.exec_session
        yield (
            root.started_at,
            "ProcessStart",
            f"{program} (pid {root.pid})",
            (starter.username if starter else None),
        )
    what = clean(spec.evidence.executable, MAX_LONG) or clean(spec.evidence.command_line, MAX_LONG)
    yield (
        spec.observed_at or detection.metadata.creation_timestamp,
        "Detection",
        f"{spec.layer.value} layer: {what or 'detected'} (score {spec.score:g})",
        None,
    )
    acted = detection.status.acted_at if detection.status else None
    for action in _responses(detection)[:MAX_LIST]:
        yield acted, "Action", clean(str(action), MAX_LONG) or "?", None


def timeline(facts: Facts, who: Provenance | None = None) -> tuple[list[TimelineEntry], list[str]]:
    """Every moment in order, deduplicated; times that cannot be read are skipped and said."""
    if who is None:
        who = provenance(facts, method(facts.detection))[0]
    unread: list[str] = []
    found: dict[tuple[str, str, str], tuple[float, int, TimelineEntry]] = {}
    for raw, kind, detail, actor in _events(facts, who):
        if raw is None or raw == "":
            continue
        at = _time(raw)
        if at is None:
            unread.append(kind)
            continue
        entry = TimelineEntry(time=format_time(at), kind=kind, detail=detail, actor=actor)
        found.setdefault((entry.time, kind, detail), (at, TIMELINE_ORDER.index(kind), entry))
    ordered = [e for _, _, e in sorted(found.values(), key=lambda v: v[:2])]
    notes = []
    if unread:
        notes.append(
            f"timeline: {len(unread)} times could not be read ({', '.join(sorted(set(unread)))})"
        )
    if len(ordered) > MAX_LIST:
        notes.append(f"timeline: {len(ordered) - MAX_LIST} more moments not listed")
        ordered = ordered[:MAX_LIST]
    return ordered, notes


# -- summary -------------------------------------------------------------------------------------


_DONE_PHRASES: Final = {
    "DeletePod": "the pod was deleted",
    "Isolate": "the pod was isolated",
    "QuarantineImage": "the image was quarantined",
    "KillProcess": "the process was killed",
    "Alert": "",
}


def _response_phrase(detection: MinerDetection) -> str:
    phrases = []
    for action in _responses(detection)[:MAX_LIST]:
        if action.failed:
            phrases.append(f"{action.name} failed")
        elif action.name == "StopOwner":
            phrases.append(action.detail or "the owner was stopped")
        else:
            phrase = _DONE_PHRASES.get(action.name, str(action))
            if phrase:
                phrases.append(phrase)
    if not phrases:
        return "" if _denied(detection) else "Nothing was done yet."  # the denial was the response
    text = ", ".join(phrases[:-1]) + (" and " if len(phrases) > 1 else "") + phrases[-1]
    return text[0].upper() + text[1:] + "."


def _opening(facts: Facts, parts: Parts) -> str:
    """What ran, where, how it started and whose workload it is: the summary's first sentence."""
    spec = facts.detection.spec
    who = parts.provenance
    reference = _reference(parts.image, spec.image)
    what = {
        Origin.FOREIGN: f"a foreign image ({reference})",
        Origin.OURS: f"one of our images ({reference})",
        Origin.RUNTIME: f"code written into a running container (image {reference})",
        Origin.UNKNOWN: f"an image of unknown origin ({reference})",
    }[parts.origin]
    step = _suspect_step(parts.image)
    if parts.origin is Origin.OURS and step:
        what += f", changed by the build step `{step[:200]}`,"
    pod = _where(clean(facts.detection.metadata.namespace), clean(spec.pod_name) or "?")
    session = who.exec_session
    user = (session.username if session else None) or "an unknown user"
    verdict = "refused" if _denied(facts.detection) else "let through with a warning"
    if is_exec_request(facts.detection):
        sub = "attach" if spec.object_kind == "PodAttachOptions" else "exec"
        sentence = f"A kubectl {sub} by {user} into pod {pod}, running {what}, was {verdict}"
    elif spec.layer is Layer.ADMISSION:
        sentence = f"{clean(spec.object_kind)} {pod}, running {what}, was {verdict} at admission"
    else:
        sentence = f"{what[0].upper()}{what[1:]} ran the miner in pod {pod}"
        if who.via is Via.EXEC:
            sentence += f", started through a kubectl exec session by {user}"
        elif who.via is Via.DROPPER:
            dropper = (who.dropper or "a process")[:200]
            sentence += f", fetched and started by `{dropper}` in the pod"
    owners = _items(facts.owners)
    if owners:
        kind, namespace, name = _ref(owners[-1])
        sentence += f"; it belongs to {kind} {_where(namespace, name)}"
    maker = _maker(who)
    if maker:
        sentence += f", created by {maker}"
    return sentence + "."


def summary(facts: Facts, parts: Parts) -> str:
    """One paragraph a responder reads first, built only from the parts."""
    paths, points = parts.paths, parts.points
    sentences = [_opening(facts, parts)]
    high = [p for p in points if p.severity is Severity.HIGH]
    if high:
        doors = "; ".join(f"{p.kind} {clean(p.name)} ({clean(p.detail, 120)})" for p in high[:3])
        sentences.append(f"Open doors: {doors}.")
    response = _response_phrase(facts.detection)
    if response:
        sentences.append(response)
    still = []
    tags = [p for p in paths if p.relation == "registry-tag"]
    if tags:
        still.append(plural(len(tags), "tag still points", "tags still point") + " at the digest")
    twins = [p for p in parts.twins if p.state is LinkState.ACTIVE]
    if twins:
        still.append(plural(len(twins), "other pod runs", "other pods run") + " the digest")
    active = [p for p in paths if p.relation in RESTARTING and p.state is LinkState.ACTIVE]
    if active:
        still.append(
            plural(len(active), "owner or CronJob", "owners or CronJobs") + " can restart it"
        )
    if still:
        sentences.append("Still open: " + "; ".join(still) + ".")
    return clean(" ".join(sentences), MAX_SUMMARY) or "?"


# -- all of it -----------------------------------------------------------------------------------


def _entry_points(facts: Facts) -> tuple[list[EntryPoint], list[str]]:
    order = (Severity.HIGH, Severity.MEDIUM, Severity.LOW)
    points = [
        p
        for p in [*_items(facts.entry_points), *_items(facts.anonymous_access)]
        if isinstance(p, EntryPoint)
    ]
    points.sort(key=lambda p: order.index(p.severity))
    if len(points) > MAX_LIST:
        return points[:MAX_LIST], [f"entry points: {len(points) - MAX_LIST} more not listed"]
    return points, []


def _unknowns(notes: Iterable[object]) -> list[str]:
    found: list[str] = []
    for note in notes:
        text = clean(note, MAX_LONG)
        if text and text not in found:
            found.append(text)
    if len(found) > MAX_LIST:
        found = [*found[: MAX_LIST - 1], f"{len(found) - MAX_LIST + 1} more unknowns not listed"]
    return found


def investigate(facts: Facts) -> Investigation:
    """The investigation of one detection: ``Complete`` when nothing is unknown, else ``Partial``.

    ``Failed`` is the investigator's to write, when gathering failed as a whole.
    """
    detection = facts.detection
    image, image_notes = image_part(facts)
    found = origin(detection, image)
    how = method(detection)
    who, who_notes = provenance(facts, how)
    twins = _twin_paths(facts)
    paths, path_notes = restart_paths(facts, twins)
    points, point_notes = _entry_points(facts)
    moments, time_notes = timeline(facts, who)
    parts = Parts(found, who, image, paths, points, twins)
    origin_notes = []
    told = detection.spec.evidence.executable_origin not in (None, ExecutableOrigin.UNKNOWN)
    if found is Origin.UNKNOWN:
        origin_notes.append(
            "where the code came from is unknown: the image's registry was not classified "
            "and the agent did not report where the executable lives"
        )
    elif not told and detection.spec.layer is not Layer.ADMISSION:
        origin_notes.append(
            "the agent did not report whether the executable was in the image or written after "
            "start: the origin rests on the image's registry alone"
        )
    unknowns = _unknowns(
        [
            *_items(facts.unknowns),
            *image_notes,
            *origin_notes,
            *who_notes,
            *path_notes,
            *point_notes,
            *time_notes,
        ]
    )
    return Investigation(
        state=InvestigationState.PARTIAL if unknowns else InvestigationState.COMPLETE,
        origin=found,
        via=how.via,
        summary=summary(facts, parts),
        started_at=clean(facts.started_at, 64),
        completed_at=clean(facts.now, 64),
        image=image,
        provenance=who,
        restart_paths=paths,
        entry_points=points,
        checklist=checklist(facts, parts),
        timeline=moments,
        unknowns=unknowns,
        cost=Cost(
            api_calls=max(0, int(facts.api_calls)),
            registry_calls=max(0, int(facts.registry_calls)),
            cached=bool(facts.registry_cached),
        ),
    )
