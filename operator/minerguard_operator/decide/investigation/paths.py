"""What would bring the miner back, where each link stands, and the command that stops it.

Owner links, CronJobs, registry tags still pointing at the digest and other pods running it.
A link's state is read the way the operator's ``StopOwner`` stops each kind; every name lands
in a command a responder will paste, so each one is shell-quoted.
"""

from __future__ import annotations

import shlex
from collections.abc import Mapping, Sequence
from typing import Any, Final

from minerguard import images
from minerguard.api.detection import ActionTaken
from minerguard.api.investigation import (
    MAX_LIST,
    ImageProvenance,
    LinkState,
    Origin,
    RestartPath,
)
from minerguard_operator.decide import marks
from minerguard_operator.decide.investigation import reading
from minerguard_operator.decide.investigation.facts import Facts
from minerguard_operator.decide.investigation.image import origin
from minerguard_operator.decide.investigation.reading import MAX_LONG, MAX_SCAN, clean

SCALED_KINDS: Final = frozenset(
    {"Deployment", "StatefulSet", "ReplicaSet", "ReplicationController"}
)
"""Owners the operator stops by scaling to 0 (see ``changes.stop_owner``)."""
RESTARTING: Final = frozenset({"owner", "cronjob"})
"""Relations whose links recreate the pod by themselves."""


def _finished(obj: Mapping[str, Any]) -> bool:
    for item in reading.items(reading.mapping(obj.get("status")).get("conditions")):
        condition = reading.mapping(item)
        if condition.get("status") == "True" and condition.get("type") in ("Complete", "Failed"):
            return True
    return False


def link_state(obj: object) -> LinkState:
    """Whether an owner, CronJob or pod can still make (or be) the miner.

    Read the way the operator's ``StopOwner`` stops each kind: replicas 0, ``suspend``, the
    DaemonSet's unsatisfiable nodeSelector; a kind it does not know is ``Unknown``.
    """
    body = reading.mapping(obj)
    if reading.meta(body).get("deletionTimestamp"):
        return LinkState.GONE
    kind = body.get("kind") if isinstance(body.get("kind"), str) else None
    spec = reading.mapping(body.get("spec"))
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
        template = reading.mapping(reading.mapping(spec.get("template")).get("spec"))
        selector = reading.mapping(template.get("nodeSelector"))
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
    chain = reading.items(facts.owners)
    failed = any(a.name == "StopOwner" and a.failed for a in actions)
    for index, owner in enumerate(chain):
        kind, namespace, name = reading.ref(owner)
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
    for cron in reading.items(facts.cron_jobs):
        kind, namespace, name = reading.ref(cron)
        kind = "CronJob" if kind == "?" else kind
        if (kind, namespace, name) in seen:
            continue
        seen.add((kind, namespace, name))
        state = link_state({**reading.mapping(cron), "kind": "CronJob"})
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


def twin_paths(facts: Facts) -> list[RestartPath]:
    """Every other pod running the digest, uncut: the checklist counts them all."""
    spec = facts.detection.spec
    own = (facts.detection.metadata.namespace, spec.pod_name)
    paths = []
    for twin in reading.items(facts.same_digest_pods):
        _, namespace, name = reading.ref(twin)
        uid = reading.meta(twin).get("uid")
        if (spec.pod_uid and uid == spec.pod_uid) or (namespace, name) == own:
            continue
        state = link_state({**reading.mapping(twin), "kind": "Pod"})
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
    actions = reading.responses(facts.detection)
    paths = _owner_paths(facts, actions)
    seen = {(p.kind, p.namespace, p.name) for p in paths}
    paths += _cron_paths(facts, seen)
    # Code written at runtime is in no image: the tags do not bring it back.
    runtime = origin(facts.detection, facts.image) is Origin.RUNTIME
    tags, notes = _tag_paths(None if runtime else facts.image)
    paths += tags
    paths += twin_paths(facts) if twins is None else twins  # last: counted elsewhere, uncut
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
