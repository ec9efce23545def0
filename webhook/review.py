"""The ``AdmissionReview`` v1 wire format: parse a request, build a response.

Only the envelope is validated (uid, kind, operation, user); the embedded ``object`` is kept
as parsed JSON and read by :mod:`minerguard.podspec`, which tolerates any shape. Validating a
3 MB pod with a full model would cost more than deciding about it. Responses are plain dicts
serialised with orjson: there is nothing to validate in what we build ourselves.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import orjson
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from pydantic.alias_generators import to_camel

from minerguard.errors import MinerguardError

API_VERSION = "admission.k8s.io/v1"
KIND = "AdmissionReview"
MAX_WARNINGS = 20
MAX_WARNING_CHARS = 512
MAX_MESSAGE_CHARS = 4096
MAX_ANNOTATION_CHARS = 2048


class ReviewError(MinerguardError):
    """The body is not an AdmissionReview v1 request; answered with HTTP 400."""


class _Wire(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="ignore")


class GroupVersionKind(_Wire):
    """``request.kind``: what the object is."""

    group: str = ""
    version: str = ""
    kind: str


class GroupVersionResource(_Wire):
    """``request.resource``: which API resource the request was made to."""

    group: str = ""
    version: str = ""
    resource: str = ""


class UserInfo(_Wire):
    """Who made the request: the first question in an incident."""

    username: str = ""
    uid: str = ""
    groups: list[str] = Field(default_factory=list)


class AdmissionRequest(_Wire):
    """``request``; ``object`` and ``old_object`` stay unvalidated JSON."""

    uid: str = Field(min_length=1, max_length=256)
    kind: GroupVersionKind
    resource: GroupVersionResource = Field(default_factory=GroupVersionResource)
    sub_resource: str = ""
    name: str = ""
    namespace: str = ""
    operation: str
    user_info: UserInfo = Field(default_factory=UserInfo)
    object: Any = None
    old_object: Any = None
    dry_run: bool = False


class AdmissionReview(_Wire):
    """The envelope the API server posts."""

    api_version: str
    kind: str
    request: AdmissionRequest


def shorten_lists(value: Any, max_items: int) -> None:
    """Cut every JSON list in ``value`` to ``max_items`` entries, in place.

    Reading a pod costs ~0.5 us per argument, variable or container in Python, before any
    judging: six MiB of one-letter arguments kept a worker busy for 0.6 s. No more than the
    engine's per-review word budget (or the container limit) of a list is ever examined, so
    with ``max_items`` above both, the cut changes no verdict: the engine still sees more
    words than its budget and says so, the reviewer still sees too many containers.
    """
    stack = [value]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            stack.extend(v for v in node.values() if isinstance(v, dict | list))
        elif isinstance(node, list):
            del node[max_items:]
            stack.extend(v for v in node if isinstance(v, dict | list))


def parse(body: bytes | bytearray, max_items: int | None = None) -> AdmissionRequest:
    """The request inside an AdmissionReview body; raises :class:`ReviewError` with a reason.

    With ``max_items``, the lists of ``object`` and ``oldObject`` are cut to that length
    (:func:`shorten_lists`).
    """
    try:
        raw = orjson.loads(body)
    except orjson.JSONDecodeError as err:
        raise ReviewError(f"body is not JSON: {err}") from err
    if not isinstance(raw, dict):
        raise ReviewError("body is not a JSON object")
    api_version = raw.get("apiVersion")
    if raw.get("kind") != KIND:
        raise ReviewError(f"kind must be {KIND}, got {raw.get('kind')!r:.80}")
    if api_version != API_VERSION:
        raise ReviewError(
            f"apiVersion {api_version!r:.80} is not served; this webhook serves {API_VERSION} "
            "(admissionReviewVersions: [v1])"
        )
    request = raw.get("request")
    if max_items is not None and isinstance(request, dict):
        shorten_lists(request.get("object"), max_items)
        shorten_lists(request.get("oldObject"), max_items)
    try:
        return AdmissionReview.model_validate(raw).request
    except ValidationError as err:
        first = err.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise ReviewError(f"invalid AdmissionReview at {where}: {first['msg']}") from err


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def response(
    uid: str,
    allowed: bool,
    *,
    message: str = "",
    warnings: Sequence[str] = (),
    annotations: Mapping[str, str] | None = None,
) -> bytes:
    """A serialised AdmissionReview response; a refusal carries a 403 Status."""
    answer: dict[str, Any] = {"uid": uid, "allowed": allowed}
    if not allowed:
        answer["status"] = {
            "code": 403,
            "reason": "Forbidden",
            "message": _clip(message or "minerguard: refused", MAX_MESSAGE_CHARS),
        }
    if warnings:
        clipped = [_clip(w, MAX_WARNING_CHARS) for w in warnings[:MAX_WARNINGS]]
        if len(warnings) > MAX_WARNINGS:
            clipped.append(f"minerguard: {len(warnings) - MAX_WARNINGS} more warnings not shown")
        answer["warnings"] = clipped
    if annotations:
        answer["auditAnnotations"] = {
            k: _clip(v, MAX_ANNOTATION_CHARS) for k, v in annotations.items()
        }
    return orjson.dumps({"apiVersion": API_VERSION, "kind": KIND, "response": answer})


def error_body(message: str) -> bytes:
    """The 400 body for a request that is not an AdmissionReview."""
    return orjson.dumps({"error": _clip(message, MAX_MESSAGE_CHARS)})
