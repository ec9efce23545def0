"""``POST /mutate``: pin each image a pod names by tag to the digest the webhook judged.

``/mutate`` also writes the ``minerguard.io/created-by`` stamp (:mod:`webhook.stamping`) when
``stamp_creator`` is on: one endpoint, one JSONPatch holding both parts, each only when its
setting (and its webhook entry in the chart) is on. Pinning's behaviour is unchanged by it.

A tag is a pointer the registry may move at any time, and a registry may answer the webhook
and the kubelet differently (it sees their User-Agents). Judging ``app:1`` therefore says
nothing about what a node pulls for ``app:1`` a second later. Pinned, the pod names
``app:1@sha256:<digest>``: the runtime pulls by digest and checks the content against it, so
the node runs exactly the manifest (or, for a multi-arch image, the index) that was judged,
whatever the tag points to by then. This is Kyverno's ``mutateDigest``, done with the
webhook's own resolver so that pinning and judging are one lookup.

Order: the API server runs mutating webhooks before validating ones, so ``/validate`` sees the
pinned reference. A reference with a digest is resolved by that digest (the resolver's cache
is keyed by it, and a manifest read by digest is checked against it), so the validating pass
judges exactly what was pinned, from the cache the pinning filled, with no second round trip.

Only Pods are pinned: on CREATE every tagged image, on UPDATE (``kubectl set image`` on a
pod, the ephemeral containers a ``kubectl debug`` adds) only the images the update sets, since
rewriting an unchanged one would restart its container. A workload's template keeps its tags,
so rollouts, GitOps diffs and ``kubectl set image`` on a Deployment work as before, and every
pod it creates is pinned when it is created. Mirror pods are left alone (the kubelet runs its
static manifest, whatever the API object says).

Pinning never refuses anything: an image already pinned is left as written, and one that
could not be resolved (registry down, no access, deadline) is left unpinned with a warning;
the validating webhook then finds it unverified and the policy's ``onRegistryFailure``
decides. Whether the mutating webhook being unreachable blocks pods is its own
``failurePolicy`` in the chart.
"""

from __future__ import annotations

import asyncio
import base64
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import orjson

from minerguard import podspec, timestamps
from minerguard.errors import UnsupportedObjectError
from minerguard.oci import registry
from webhook import admission, references, review, stamping
from webhook.cluster import Cluster
from webhook.resolve import ImageResolver, Keychain, KeychainLoader, PerPlatform, no_credentials
from webhook.settings import WebhookSettings

if TYPE_CHECKING:
    from webhook.app import Services

log = logging.getLogger(__name__)

FIELDS = ("initContainers", "containers", "ephemeralContainers")
"""The pod spec's container lists, each of which the kubelet pulls images for."""
MIRROR_ANNOTATION = "kubernetes.io/config.mirror"


def pointer(*parts: str | int) -> str:
    """A JSON pointer (RFC 6901): ``~`` and ``/`` inside a part are escaped, in that order."""
    return "".join(f"/{_escape(str(part))}" for part in parts)


def _escape(part: str) -> str:
    if "~" in part or "/" in part:
        return part.replace("~", "~0").replace("/", "~1")
    return part


@dataclass(frozen=True, slots=True)
class Slot:
    """One ``image`` field of a pod that names an image by tag: where it is, what it says."""

    path: str
    image: str


def slots(spec: Mapping[str, Any], old: Mapping[str, Any] | None = None) -> list[Slot]:
    """The image fields of ``spec`` that pinning may rewrite, in document order.

    An image that already carries a digest, or is not a valid reference, is not a slot. On an
    UPDATE (``old``: the spec before), only images the update sets are: rewriting one that did
    not change would make the kubelet restart a running container for nothing.
    """
    found: list[Slot] = []
    for field in FIELDS:
        items = spec.get(field)
        if not isinstance(items, list):
            continue
        before = _images(old, field) if old is not None else None
        for index, item in enumerate(items):
            if not isinstance(item, Mapping):
                continue
            image = item.get("image")
            if not isinstance(image, str) or not _pinnable(image):
                continue
            if before is not None and index < len(before) and before[index] == image:
                continue
            found.append(Slot(pointer("spec", field, index, "image"), image))
    return found


def _images(spec: Mapping[str, Any], field: str) -> list[Any]:
    items = spec.get(field)
    if not isinstance(items, list):
        return []
    return [item.get("image") if isinstance(item, Mapping) else None for item in items]


def _pinnable(image: str) -> bool:
    try:
        ref = references.reference(image)
    except registry.BadImage:
        return False
    return ref.digest is None and image == image.strip()


def pinned(image: str, digest: str) -> str:
    """``image`` as written, with ``@digest``: ``repo:tag@sha256:…`` (the tag stays readable)."""
    return f"{image}@{digest}"


def patch(found: Sequence[Slot], digests: Mapping[str, str]) -> list[dict[str, str]]:
    """JSONPatch operations pinning each slot whose image has a digest in ``digests``."""
    return [
        {"op": "replace", "path": slot.path, "value": pinned(slot.image, digests[slot.image])}
        for slot in found
        if slot.image in digests
    ]


@dataclass(frozen=True, slots=True)
class Pins:
    """What ``/mutate`` answers: the patch, and warnings about images left unpinned."""

    operations: tuple[dict[str, Any], ...] = ()
    warnings: tuple[str, ...] = ()


NOTHING = Pins()


class Pinner:
    """Resolves a pod's tagged images through the webhook's resolver and pins them."""

    def __init__(
        self,
        settings: WebhookSettings,
        resolver: ImageResolver,
        *,
        cluster: Cluster | None = None,
    ) -> None:
        self._settings = settings
        self._resolver = resolver
        self._cluster = cluster
        self._default_platform = registry.Platform.parse(settings.default_platform)

    async def pin(self, request: review.AdmissionRequest) -> Pins:
        """The pins for one request; never raises for a registry's sake."""
        obj = request.object
        if request.kind.kind != "Pod" or not isinstance(obj, Mapping) or _mirror(obj):
            return NOTHING
        if request.sub_resource not in {"", "ephemeralcontainers"}:
            return NOTHING
        if request.operation not in {"CREATE", "UPDATE"}:
            return NOTHING
        spec = obj.get("spec")
        if not isinstance(spec, Mapping):
            return NOTHING
        old: Mapping[str, Any] | None = None
        if request.operation == "UPDATE":
            before = request.old_object
            old_spec = before.get("spec") if isinstance(before, Mapping) else None
            old = old_spec if isinstance(old_spec, Mapping) else {}
        found = slots(spec, old)
        if not found:
            return NOTHING
        namespace = request.namespace or _namespace(obj)
        resolution = await self._resolver.resolve_all(
            [slot.image for slot in found],
            admission.platform(spec, self._default_platform),
            deadline=self._settings.resolve_deadline,
            keychain=self._keychain(namespace, obj),
        )
        digests: dict[str, str] = {}
        for image, config in resolution.configs.items():
            if config.digest is not None:
                digests[image] = config.digest
        for image, each in resolution.per_platform.items():
            digest = _top_digest(each)
            if digest is not None:
                digests[image] = digest
        warnings = tuple(
            f"minerguard: image {image} not pinned to a digest: {reason}"
            for image, reason in resolution.errors.items()
        )
        return Pins(tuple(patch(found, digests)), warnings)

    def _keychain(self, namespace: str | None, obj: Mapping[str, Any]) -> KeychainLoader:
        """The pod's credentials, loaded as the validating review loads them (same cache).

        Read only when the registry must be asked: a warm pin never walks the pod for them.
        """
        cluster = self._cluster
        if cluster is None or namespace is None:
            return no_credentials

        async def load() -> Keychain:
            try:
                template = podspec.template({**obj, "kind": "Pod"})
            except UnsupportedObjectError:
                return {}
            return await cluster.keychain(
                namespace, template.image_pull_secrets, template.service_account, 2.0
            )

        return load


def _top_digest(each: PerPlatform) -> str | None:
    """The index digest every variant of an unpinned multi-arch image was read under."""
    digests = {variant.config.digest for variant in each.variants}
    return digests.pop() if len(digests) == 1 else None


def _mirror(obj: Mapping[str, Any]) -> bool:
    metadata = obj.get("metadata")
    annotations = metadata.get("annotations") if isinstance(metadata, Mapping) else None
    return isinstance(annotations, Mapping) and MIRROR_ANNOTATION in annotations


def _namespace(obj: Mapping[str, Any]) -> str | None:
    metadata = obj.get("metadata")
    namespace = metadata.get("namespace") if isinstance(metadata, Mapping) else None
    return namespace if isinstance(namespace, str) and namespace else None


def response(uid: str, pins: Pins) -> bytes:
    """An allowing AdmissionReview response carrying the JSONPatch (when there is one)."""
    answer: dict[str, Any] = {"uid": uid, "allowed": True}
    if pins.operations:
        answer["patchType"] = "JSONPatch"
        answer["patch"] = base64.b64encode(orjson.dumps(list(pins.operations))).decode()
    if pins.warnings:
        limit, chars = review.MAX_WARNINGS, review.MAX_WARNING_CHARS
        answer["warnings"] = [w[:chars] for w in pins.warnings[:limit]]
    return orjson.dumps({"apiVersion": review.API_VERSION, "kind": review.KIND, "response": answer})


async def answer(services: Services, body: bytes | bytearray) -> tuple[int, bytes]:
    """Status and JSON body for one AdmissionReview posted to ``/mutate``; never raises.

    Whatever goes wrong after parsing, the pod is let through unchanged: the validating
    webhook, not this one, decides what may run.
    """
    try:
        request = review.parse(body)
    except review.ReviewError as err:
        services.metrics.bad_requests.labels("not_a_review").inc()
        return 400, review.error_body(str(err))
    settings = services.settings
    pinner = services.pinner if settings.pin_digests else None
    try:
        async with asyncio.timeout(settings.deadline):
            pins = await pinner.pin(request) if pinner is not None else NOTHING
    except TimeoutError:
        pins = Pins(warnings=("minerguard: images not pinned: the lookup ran out of time",))
    except Exception:  # a bug must not block pods: answered unchanged, logged and counted
        services.metrics.internal_errors.inc()
        log.exception("pinning %s failed", request.uid)
        pins = Pins(warnings=("minerguard: images not pinned: internal error (logged)",))
    if settings.stamp_creator:  # pure and bounded: whatever pinning did, the stamp is written
        kinds = settings.workload_kinds()  # the built-in table unless kinds are registered
        stamped = stamping.operations(request, timestamps.now(), kinds)
        pins = Pins((*pins.operations, *stamped), pins.warnings)
    return 200, response(request.uid, pins)
