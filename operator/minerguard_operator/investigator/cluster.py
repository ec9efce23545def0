"""The investigator's reads of the cluster: each bounded, counted, and said when it fails.

Every method takes the detection's :class:`Gathering`, counts the API calls it makes there and
turns what it could not read into a sentence in its ``unknowns`` (a retryable failure is also
remembered, so the investigation is redone once before it settles for less). Owners are
followed as :mod:`minerguard_operator.owners` follows them (controller references, each read
verified by uid); a link that is gone or of a kind minerguard does not read is said. The
cluster-wide pod listing (who else runs this digest) is paginated, capped and shared by the
detections of a few seconds; the cluster-wide anonymous-RBAC check is used from the policy's
status when the operator has written it there, else made here and reused for a minute.
"""

from __future__ import annotations

import functools
import re
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

from kubernetes import client
from pydantic import ValidationError

from minerguard import images
from minerguard.api.detection import MinerDetection
from minerguard.api.investigation import EXEC_SESSION_REASON, EntryPoint, ExecSession
from minerguard.cache import BoundedCache
from minerguard.kube import errors, resources, workloads
from minerguard.oci import auth
from minerguard_operator import exposure, owners
from minerguard_operator.decide import containers
from minerguard_operator.settings import OperatorSettings

T = TypeVar("T")

PAGE = 500
"""Pods asked for per page of the cluster-wide listing."""
POD_LISTING_SECONDS = 5.0
"""How long one cluster-wide pod listing answers "who else runs this digest" for."""
ANONYMOUS_SECONDS = 60.0
"""How long a cluster-wide anonymous-RBAC check is reused when the policy status has none."""
MAX_EVENTS = 200
"""Exec-session Events read per pod."""
MAX_MATCHES = 200
"""Same-digest pods and CronJobs handed to the decision (it shows fewer, and says so)."""
NODE_SECONDS = 600.0
"""How long a node's platform is reused: a node does not change architecture while it lives."""
NODES = 1024
"""Nodes whose platform is remembered at once."""
_PLATFORM_WORD = re.compile(r"[a-z0-9_]{1,32}")
"""An os or architecture as the kubelet reports it (GOOS/GOARCH); anything else is not used."""


@dataclass
class Gathering:
    """One detection's facts in progress: what was read, what could not be, what it cost."""

    api: client.ApiClient
    unknowns: list[str] = field(default_factory=list)
    api_calls: int = 0
    transient: bool = False

    def call(self, fn: Callable[[], T]) -> T:
        """One API call, counted."""
        self.api_calls += 1
        return fn()

    def count(self) -> None:
        """Count one API call made elsewhere (:mod:`minerguard_operator.exposure`)."""
        self.api_calls += 1

    def failed(self, what: str, err: errors.ApiError) -> None:
        """Say a part that could not be read; remember whether retrying may help."""
        self.unknowns.append(f"{what} could not be read: {err}")
        self.transient = self.transient or err.retryable


@dataclass
class PodListing:
    """Every pod of the cluster (slimmed to what same-digest matching needs), as of a moment."""

    pods: list[dict[str, Any]]
    complete: bool
    at: float


def _slim(pod: Mapping[str, Any]) -> dict[str, Any]:
    """Name, namespace, uid, owners, node, images and the digests the kubelet reports."""
    metadata = pod.get("metadata") or {}
    spec = pod.get("spec") or {}
    status = pod.get("status") or {}
    keep = ("name", "namespace", "uid", "ownerReferences", "labels")
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {k: metadata[k] for k in keep if k in metadata},
        "spec": {
            "nodeName": spec.get("nodeName"),
            "containers": [
                {"name": c.get("name"), "image": c.get("image")}
                for c in spec.get("containers") or ()
                if isinstance(c, Mapping)
            ],
        },
        "status": {
            "phase": status.get("phase"),
            "containerStatuses": [
                {"name": c.get("name"), "imageID": c.get("imageID")}
                for c in status.get("containerStatuses") or ()
                if isinstance(c, Mapping)
            ],
        },
    }


def _digests(pod: Mapping[str, Any]) -> set[str]:
    """The digests a pod runs: reported by the kubelet, or pinned in its spec."""
    found: set[str] = set()
    for item in (pod.get("status") or {}).get("containerStatuses") or ():
        digest = images.digest_of(str(item.get("imageID") or ""))
        if digest:
            found.add(digest)
    for item in (pod.get("spec") or {}).get("containers") or ():
        digest = images.parse(str(item.get("image") or "")).digest
        if digest:
            found.add(digest)
    return found


def _template(obj: Mapping[str, Any]) -> Mapping[str, Any] | None:
    """The pod template of a workload (a CronJob's through its job template)."""
    spec = obj.get("spec") or {}
    if obj.get("kind") == "CronJob":
        spec = (spec.get("jobTemplate") or {}).get("spec") or {}
    template = spec.get("template")
    return template if isinstance(template, Mapping) else None


def _template_images(obj: Mapping[str, Any]) -> list[str]:
    spec = (_template(obj) or {}).get("spec") or {}
    return [
        str(c.get("image") or "")
        for key in containers.CONTAINER_LISTS
        for c in spec.get(key) or ()
        if isinstance(c, Mapping)
    ]


def pod_from_template(
    owner: Mapping[str, Any], name: str | None, namespace: str
) -> dict[str, Any] | None:
    """A stand-in for a pod that is gone: what its owner's template says it was."""
    template = _template(owner)
    if template is None:
        return None
    metadata = owner.get("metadata") or {}
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": name or f"{metadata.get('name')}-(template)",
            "namespace": namespace,
            "labels": dict((template.get("metadata") or {}).get("labels") or {}),
        },
        "spec": dict(template.get("spec") or {}),
    }


def describe(obj: Mapping[str, Any]) -> str:
    """``Kind/name`` for a sentence."""
    metadata = obj.get("metadata") or {}
    return f"{obj.get('kind') or '?'}/{metadata.get('name') or '?'}"


def quarantined(policy: Mapping[str, Any], digest: str | None) -> bool | None:
    """Whether the policy's status lists the digest as quarantined; None when unknown."""
    if not digest or not policy:
        return None
    listed = (policy.get("status") or {}).get("quarantinedImages") or ()
    return any(isinstance(q, Mapping) and q.get("digest") == digest for q in listed)


class ClusterReader:
    """Reads what an investigation needs from the API server (one per investigator)."""

    def __init__(
        self, api_factory: Callable[[], client.ApiClient], settings: OperatorSettings
    ) -> None:
        self._api_factory = api_factory
        self._api: client.ApiClient | None = None
        self.settings = settings
        self._anonymous: BoundedCache[str, tuple[list[EntryPoint], list[str]]] = BoundedCache(
            1, ttl=ANONYMOUS_SECONDS, locked=True
        )
        self._pods_lock = threading.Lock()
        self._pods: PodListing | None = None
        self._platforms: BoundedCache[str, str] = BoundedCache(NODES, ttl=NODE_SECONDS, locked=True)

    @property
    def api(self) -> client.ApiClient:
        """The API client, made on first use (its own pool: never the response's)."""
        if self._api is None:
            self._api = self._api_factory()
        return self._api

    def pod(
        self,
        detection: MinerDetection,
        snapshot: dict[str, Any] | None,
        gathering: Gathering,
    ) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
        """The pod (None when gone) and the detected object (the pod, or a scanned workload)."""
        spec = detection.spec
        namespace = detection.metadata.namespace or "default"
        if not spec.pod_name or spec.object_kind not in workloads.KINDS:
            gathering.unknowns.append("the detection names no object minerguard can read")
            return None, None
        found = snapshot
        if found is None:
            try:
                found = gathering.call(
                    lambda: workloads.find(
                        self.api, spec.object_kind, namespace, spec.pod_name or ""
                    )
                )
            except errors.ApiError as err:
                gathering.failed(f"{spec.object_kind} {namespace}/{spec.pod_name}", err)
                return None, None
            uid = ((found or {}).get("metadata") or {}).get("uid")
            if found is not None and spec.pod_uid and uid != spec.pod_uid:
                gathering.unknowns.append(
                    f"{spec.object_kind} {namespace}/{spec.pod_name} is now another object "
                    f"(uid {uid}, not {spec.pod_uid}): the detected one is gone"
                )
                found = None
            elif found is None:
                gathering.unknowns.append(
                    f"{spec.object_kind} {namespace}/{spec.pod_name} no longer exists (deleted, "
                    "or never created): its own facts could not be read"
                )
        if spec.object_kind == "Pod":
            return found, found
        return None, found

    def owners(
        self, detection: MinerDetection, target: Mapping[str, Any] | None, gathering: Gathering
    ) -> list[dict[str, Any]]:
        """The owner chain, nearest first; each link verified by uid, a missing one said."""
        spec = detection.spec
        namespace = detection.metadata.namespace or "default"
        chain: list[dict[str, Any]] = []
        current: Mapping[str, Any] | None = target
        if target is not None and spec.object_kind != "Pod":
            chain.append(dict(target))  # a scanned workload is its own first restart path
        elif target is None and spec.owner is not None:
            owner = spec.owner
            try:
                current = gathering.call(
                    lambda: owners.verified(self.api, owner.kind, namespace, owner.name, owner.uid)
                )
            except errors.ApiError as err:
                gathering.failed(f"owner {owner.kind}/{owner.name}", err)
                return chain
            if current is None:
                why = "no uid given" if not owner.uid else f"no {owner.kind} with uid {owner.uid}"
                gathering.unknowns.append(f"owner {owner.kind}/{owner.name} not found: {why}")
                return chain
            chain.append(dict(current))
        while current is not None and len(chain) < owners.MAX_OWNER_DEPTH:
            refs = [
                r
                for r in (current.get("metadata") or {}).get("ownerReferences") or ()
                if isinstance(r, Mapping) and r.get("controller")
            ]
            if not refs:
                break
            ref = owners.controller_ref(current)
            crd = owners.crd_controller(current) if ref is None else None
            if ref is not None:
                read = functools.partial(
                    owners.verified,
                    self.api,
                    str(ref["kind"]),
                    namespace,
                    str(ref["name"]),
                    str(ref["uid"]),
                )
            elif crd is not None:
                ref = crd[0]
                read = functools.partial(owners.verified_crd, self.api, ref, crd[1], namespace)
            else:
                other = refs[0]
                gathering.unknowns.append(
                    f"{describe(current)} is controlled by {other.get('kind')}/"
                    f"{other.get('name')}, which minerguard does not read"
                )
                break
            kind, name, uid = str(ref["kind"]), str(ref["name"]), str(ref["uid"])
            try:
                found = gathering.call(read)
            except errors.ApiError as err:
                gathering.failed(f"owner {kind}/{name}", err)
                break
            if found is None:
                gathering.unknowns.append(
                    f"owner {kind}/{name} (uid {uid}) of {describe(current)} no longer exists"
                )
                break
            chain.append(found)
            current = found
        return chain

    def cron_jobs(
        self, namespace: str, image: str | None, digest: str | None, gathering: Gathering
    ) -> list[dict[str, Any]]:
        """CronJobs of the namespace whose job template runs the same image or digest."""
        if not image and not digest:
            return []
        try:
            listed = gathering.call(lambda: workloads.list_objects(self.api, "CronJob", namespace))
        except errors.ApiError as err:
            gathering.failed(f"CronJobs of {namespace}", err)
            return []
        wanted = images.parse(image).name if image else None
        found = []
        for job in listed:
            for ref in _template_images(job):
                parsed = images.parse(ref)
                if (digest and parsed.digest == digest) or (
                    wanted and parsed.name == wanted and ref == image
                ):
                    found.append(job)
                    break
        return found[:MAX_MATCHES]

    def pod_listing(self, gathering: Gathering) -> PodListing:
        """Every pod (bounded), listed at most once per :data:`POD_LISTING_SECONDS`."""
        with self._pods_lock:
            now = time.monotonic()
            if self._pods is not None and now - self._pods.at < POD_LISTING_SECONDS:
                return self._pods
            limit = self.settings.max_pods_listed
            pods: list[dict[str, Any]] = []
            complete = True
            scopes: Sequence[str | None] = self.settings.namespaces or [None]
            for scope in scopes:
                token: str | None = None
                while complete:
                    query: dict[str, object] = {"limit": PAGE, "continue": token}
                    url = resources.path("v1", "pods", scope)
                    answer = gathering.call(
                        functools.partial(resources.request, self.api, "GET", url, query=query)
                    )
                    page = resources.read_json(answer)
                    for item in page.get("items") or ():
                        if len(pods) >= limit:
                            complete = False
                            break
                        if isinstance(item, Mapping):
                            pods.append(_slim(item))
                    token = (page.get("metadata") or {}).get("continue") or None
                    if not token:
                        break
            self._pods = PodListing(pods, complete, time.monotonic())
            return self._pods

    def same_digest(
        self, digest: str | None, pod: Mapping[str, Any] | None, gathering: Gathering
    ) -> list[dict[str, Any]]:
        """Other pods, in any namespace, running the digest."""
        if not digest:
            gathering.unknowns.append("no image digest known: other pods running it not looked up")
            return []
        own = ((pod or {}).get("metadata") or {}).get("uid")
        try:
            listing = self.pod_listing(gathering)
        except errors.ApiError as err:
            gathering.failed("the cluster's pods", err)
            return []
        if not listing.complete:
            gathering.unknowns.append(
                f"only the first {len(listing.pods)} pods of the cluster were compared with the "
                "digest (max_pods_listed)"
            )
        found = [
            p
            for p in listing.pods
            if digest in _digests(p) and (p.get("metadata") or {}).get("uid") != own
        ]
        return found[:MAX_MATCHES]

    def exec_sessions(
        self,
        namespace: str,
        pod_name: str | None,
        pod: Mapping[str, Any] | None,
        detection: MinerDetection,
        gathering: Gathering,
    ) -> list[ExecSession]:
        """The exec/attach sessions the webhook recorded as Events on the pod."""
        if detection.spec.object_kind != "Pod" or not pod_name:
            return []
        uid = ((pod or {}).get("metadata") or {}).get("uid") or detection.spec.pod_uid
        query = {
            "fieldSelector": f"involvedObject.name={pod_name},reason={EXEC_SESSION_REASON}",
            "limit": MAX_EVENTS,
        }
        url = resources.path("v1", "events", namespace)
        try:
            listed = gathering.call(
                lambda: resources.read_json(resources.request(self.api, "GET", url, query=query))
            )
        except errors.ApiError as err:
            gathering.failed(f"exec-session Events of pod {namespace}/{pod_name}", err)
            return []
        sessions = []
        for event in (listed.get("items") or ())[:MAX_EVENTS]:
            if not isinstance(event, dict) or event.get("reason") != EXEC_SESSION_REASON:
                continue
            involved = event.get("involvedObject") or {}
            if involved.get("name") != pod_name or (
                uid and involved.get("uid") and involved.get("uid") != uid
            ):
                continue  # another pod of that name (an earlier one)
            session = ExecSession.parse_event(event)
            if session is not None:
                sessions.append(session)
        sessions.sort(key=lambda s: s.time or "")
        return sessions

    def entry_points(self, pod: Mapping[str, Any] | None, gathering: Gathering) -> list[EntryPoint]:
        """Exposure, the service account's permissions and host access of the pod (or template)."""
        if pod is None:
            gathering.unknowns.append("no pod or pod template: entry points not looked up")
            return []
        found, unknowns = exposure.entry_points(self.api, pod, calls=gathering.count)
        gathering.unknowns.extend(unknowns)
        return found

    def anonymous_access(
        self, policy_status: Mapping[str, Any], gathering: Gathering
    ) -> list[EntryPoint]:
        """From the policy's status when the operator has checked; else checked here, cached."""
        raw = policy_status.get("anonymousAccess")
        if isinstance(raw, list):
            parsed = []
            for item in raw:
                try:
                    parsed.append(EntryPoint.model_validate(item))
                except ValidationError:
                    continue
            return parsed
        cached = self._anonymous.get("cluster")
        if cached is None:
            cached = exposure.anonymous_access(self.api, calls=gathering.count)
            self._anonymous.put("cluster", cached)
        gathering.unknowns.extend(cached[1])
        return cached[0]

    def policy(self, name: str | None, gathering: Gathering) -> dict[str, Any]:
        """The detection's policy: trusted registries, quarantine, anonymous access."""
        if not name:
            gathering.unknowns.append("the detection names no policy: no trusted registries")
            return {}
        try:
            found: dict[str, Any] = gathering.call(lambda: resources.get_policy(self.api, name))
        except errors.ApiError as err:
            gathering.failed(f"MinerPolicy {name}", err)
            return {}
        return found

    def platform(self, node: str | None, gathering: Gathering) -> str | None:
        """``os/architecture`` of the node that ran the pod (``linux/arm64``); None if unknown.

        An image index's digest names every platform's image at once; the history that matters
        is the one the node pulled. Read from the Node's ``status.nodeInfo`` (one GET per node
        per :data:`NODE_SECONDS`, counted); without it the registry read guesses linux/amd64
        and says so (Likely).
        """
        if not node:
            return None
        cached = self._platforms.get(node)
        if cached is not None:
            return cached
        url = resources.path("v1", "nodes", name=node)
        try:
            body = gathering.call(
                lambda: resources.read_json(resources.request(self.api, "GET", url))
            )
        except errors.NotFound:
            gathering.unknowns.append(
                f"node {node} no longer exists: the platform its image ran as is guessed"
            )
            return None
        except errors.ApiError as err:
            gathering.failed(f"the platform of node {node}", err)
            return None
        info = (body.get("status") or {}).get("nodeInfo") or {}
        system, architecture = info.get("operatingSystem"), info.get("architecture")
        if not all(
            isinstance(word, str) and _PLATFORM_WORD.fullmatch(word)
            for word in (system, architecture)
        ):
            gathering.unknowns.append(
                f"node {node} reports no usable platform: the one its image ran as is guessed"
            )
            return None
        found = f"{system}/{architecture}"
        self._platforms.put(node, found)
        return found

    def credentials(
        self,
        image: str,
        pod: Mapping[str, Any] | None,
        detection: MinerDetection,
        gathering: Gathering,
    ) -> auth.Credentials | None:
        """The pod's pull credentials for the image's registry, when allowed to read them."""
        if not self.settings.read_pull_secrets or pod is None:
            return None
        namespace = detection.metadata.namespace or "default"
        spec = pod.get("spec") or {}
        names = [
            str(s.get("name"))
            for s in spec.get("imagePullSecrets") or ()
            if isinstance(s, Mapping) and s.get("name")
        ]
        account = str(spec.get("serviceAccountName") or "default")
        try:
            found = gathering.call(
                lambda: workloads.find(self.api, "ServiceAccount", namespace, account)
            )
            for item in (found or {}).get("imagePullSecrets") or ():
                if isinstance(item, Mapping) and item.get("name"):
                    names.append(str(item["name"]))
            chains = []
            for secret_name in list(dict.fromkeys(names))[:8]:
                secret = gathering.call(
                    functools.partial(workloads.find, self.api, "Secret", namespace, secret_name)
                )
                if secret is not None:
                    chains.append(auth.keychain_from_secret(secret))
        except errors.ApiError as err:
            gathering.failed("the pod's image pull secrets", err)
            return None
        keychain = auth.merge_keychains(chains)
        return keychain.get(auth.registry_key(images.parse(image).registry))
