"""Reading the objects an investigation is built from: every string cut, every shape survived.

Every string in a pod, owner, Event or registry answer is written by whoever controls the
workload, so each one is cut to a bound and stripped of control characters (``kubectl describe``
prints them to a terminal); a field of the wrong type (a managedFields that is a string, an owner
without a kind) reads as nothing. The other modules read objects only through these functions.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from minerguard.api.detection import ActionTaken, Layer, MinerDetection
from minerguard.api.investigation import Actor, ExecSession
from minerguard.timestamps import parse_time

MAX_TEXT: Final = 256
"""Bound of a name, user or manager taken from an object (Kubernetes names are at most 253)."""
MAX_LONG: Final = 1024
"""Bound of a command line, history step or sentence."""
MAX_SUMMARY: Final = 2048
"""Bound of the summary paragraph."""
MAX_SCAN: Final = 1000
"""Most entries of any list in an object that are looked at (managedFields, sessions...)."""
MAX_ARGS: Final = 64
"""Most words of an exec session's command that are kept."""


def clean(value: object, limit: int = MAX_TEXT) -> str | None:
    """A string from an object, cut to ``limit``, control characters replaced; else None."""
    if not isinstance(value, str) or not value:
        return None
    return "".join(c if c.isprintable() else "?" for c in value[:limit])


def mapping(value: object) -> Mapping[str, Any]:
    """The value if it is a mapping, else an empty one: a field of the wrong type is nothing."""
    return value if isinstance(value, Mapping) else {}


def items(value: object) -> list[Any]:
    """The first :data:`MAX_SCAN` entries of a list, or none if it is not one."""
    return list(value[:MAX_SCAN]) if isinstance(value, list | tuple) else []


def meta(obj: object) -> Mapping[str, Any]:
    """An object's metadata, empty where it has none."""
    return mapping(mapping(obj).get("metadata"))


def ref(obj: object) -> tuple[str, str | None, str]:
    """``(kind, namespace, name)`` of an object, each cleaned ("?" where missing)."""
    found = meta(obj)
    kind = clean(mapping(obj).get("kind")) or "?"
    return kind, clean(found.get("namespace")), clean(found.get("name")) or "?"


def where(namespace: str | None, name: str) -> str:
    """``namespace/name``, or the name alone for a cluster-scoped object."""
    return f"{namespace}/{name}" if namespace else name


def time(value: object) -> float | None:
    """Seconds since the epoch of an RFC 3339 time, or None where it cannot be read."""
    return parse_time(value[:64]) if isinstance(value, str) else None


def annotation(obj: object, key: str) -> str | None:
    """An annotation's value cut to :data:`MAX_LONG`, or None where absent or not a string."""
    value = mapping(meta(obj).get("annotations")).get(key)
    return value[:MAX_LONG] if isinstance(value, str) else None


def bounded_actor(actor: Actor) -> Actor:
    """An actor with every string cut and cleaned: stamps are written by the object's creator."""
    return actor.model_copy(
        update={
            "username": clean(actor.username),
            "groups": [clean(g) or "?" for g in actor.groups[:32]],
            "manager": clean(actor.manager),
            "operation": clean(actor.operation, 32),
            "time": clean(actor.time, 64),
        }
    )


def bounded_session(session: ExecSession) -> ExecSession:
    """A session with every string cut and cleaned: its Event's fields came from the request."""
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


def plural(count: int, one: str, many: str) -> str:
    """``1 tag points`` / ``2 tags point``: the summary is read by people."""
    return f"{count} {one if count == 1 else many}"


def denied(detection: MinerDetection) -> bool:
    """An admission detection whose request was refused: what it judged never ran."""
    spec = detection.spec
    return (
        spec.layer is Layer.ADMISSION
        and spec.mode == "Enforce"
        and "Deny" in spec.actions_requested
    )


def responses(detection: MinerDetection) -> list[ActionTaken]:
    """The actions the response took, parsed from the detection's status (bounded)."""
    raw = detection.status.actions_taken if detection.status else []
    return ActionTaken.parse_all(raw[:MAX_SCAN])
