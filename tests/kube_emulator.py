"""kmock's Kubernetes emulator, fixed to serve the real ``kubernetes`` client and kopf.

The stock emulator stores POSTed bodies verbatim, answers 200 to creates, ignores
``watch=True`` and trailing slashes, and slows down with every request it remembers.
This subclass fixes those gaps; :class:`EmulatorThread` runs it on its own
event loop so synchronous clients and kopf threads can use it. The chart's generated CRDs are
registered, so the resources are served exactly as the chart declares them.
"""

from __future__ import annotations

import asyncio
import itertools
import re
import secrets
import threading
import uuid
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import Any

import kmock
import yaml
from kmock._internal.rendering import Response

from minerguard import timestamps

CRD_DIR = Path(__file__).resolve().parents[1] / "charts" / "minerguard" / "files" / "crds"
NAMESPACES = "v1/x-namespaces"
"""Where Namespaces live: kmock parses ``/api/v1/namespaces[/NAME]`` as a namespace prefix
(500 or 404), so those two paths are served under this plural instead."""
_NAMESPACE_PATH = re.compile(r"^/api/v1/namespaces(/[^/]+)?/?$")


ACCESS_REVIEWS = "authorization.k8s.io/v1/subjectaccessreviews"
"""SubjectAccessReviews: answered by a test's authorizer where one is set
(:meth:`EmulatorThread.answer_access_reviews`); otherwise stored like any object, never answered."""

_SUFFIX_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"
"""The API server's generateName alphabet (apimachinery's rand.String): 27**5 suffixes."""


def _name_suffix() -> str:
    return "".join(secrets.choice(_SUFFIX_ALPHABET) for _ in range(5))


class Emulator(kmock.KubernetesEmulator):
    """The emulator with metadata (generation too), 201 on create, watch=True and CRDs."""

    _rv = itertools.count(1)
    authorizer: Callable[[dict[str, Any]], bool] | None = None
    """The API server's authorizer for SubjectAccessReviews: spec in, allowed out."""

    def _reviewed(self, request: Any) -> bool:
        return (
            self.authorizer is not None
            and request.resource == ACCESS_REVIEWS
            and request.action == kmock.action.CREATE
            and isinstance(request.data, dict)
        )

    async def __call__(self, raw_request: Any) -> Any:
        if raw_request.query.get("watch") in ("True", "1"):
            url = raw_request.rel_url.update_query(watch="true")
            raw_request = raw_request.clone(rel_url=url)
        if raw_request.path in ("/version/", "/api/", "/apis/"):
            url = raw_request.rel_url.with_path(raw_request.path.rstrip("/"))
            raw_request = raw_request.clone(rel_url=url)
        if _NAMESPACE_PATH.match(raw_request.path):
            path = raw_request.path.rstrip("/").replace("/namespaces", "/x-namespaces", 1)
            url = raw_request.rel_url.with_path(path).with_query(raw_request.rel_url.query)
            raw_request = raw_request.clone(rel_url=url)
        try:
            return await super().__call__(raw_request)
        finally:
            self._requests[:] = [r for r in self._requests if r._raw_request is not raw_request]

    async def _handle(self, request: Any) -> Any:
        if request.resource is not None and isinstance(request.data, dict):
            if request.action == kmock.action.CREATE:
                metadata = request.data.setdefault("metadata", {})
                if request.namespace:
                    metadata.setdefault("namespace", request.namespace)
                if self._reviewed(request):  # reviews have no name: each one is its own
                    metadata.setdefault("name", f"review-{uuid.uuid4()}")
                if "name" not in metadata and "generateName" in metadata:
                    metadata["name"] = metadata["generateName"] + _name_suffix()
                metadata.setdefault("uid", str(uuid.uuid4()))
                metadata.setdefault("generation", 1)
                stamp = timestamps.now()
                metadata.setdefault("creationTimestamp", stamp)
                metadata["resourceVersion"] = str(next(self._rv))
                if request.resource == "apiextensions.k8s.io/v1/customresourcedefinitions":
                    self.register_crd(request.data)
            elif request.action == kmock.action.UPDATE:
                metadata = request.data.setdefault("metadata", {})
                metadata["resourceVersion"] = str(next(self._rv))
                key = (request.resource, request.namespace, request.name)
                if "spec" in request.data and key in self.objects:
                    # The API server counts spec changes in metadata.generation (kopf and the
                    # operator's policy book key on it); a status write leaves it alone.
                    stored = self.objects[key]
                    before = 1 if stored.deleted else stored.get("metadata", {}).get("generation")
                    metadata["generation"] = int(before or 1) + 1
        return await super()._handle(request)

    def register_crd(self, crd: dict[str, Any]) -> None:
        """Serve a CRD's resource, as the API server does once the CRD is created."""
        spec = crd["spec"]
        for version in spec["versions"]:
            self.resources[f"{spec['group']}/{version['name']}/{spec['names']['plural']}"] = (
                kmock.ResourceInfo(
                    kind=spec["names"]["kind"],
                    singular=spec["names"].get("singular"),
                    namespaced=spec.get("scope", "Namespaced") == "Namespaced",
                    subresources=set(version.get("subresources", {})),
                    verbs={"get", "list", "watch", "create", "patch", "update", "delete"},
                )
            )

    async def _serve_list(self, request: Any) -> Any:
        listed: dict[str, Any] = dict(await super()._serve_list(request))  # type: ignore[arg-type]
        wanted = _selector(request.params or {})
        listed["items"] = [item for item in listed["items"] if wanted(item)]
        return listed

    async def _serve_watch(self, request: Any) -> Any:
        wanted = _selector(request.params or {})
        async for event in super()._serve_watch(request):
            if not isinstance(event, dict) or wanted(event.get("object") or {}):
                yield event

    async def _serve_create(self, request: Any) -> Any:
        payload: Any = await super()._serve_create(request)
        if self._reviewed(request) and self.authorizer is not None and isinstance(payload, dict):
            spec = dict(request.data.get("spec") or {})
            payload = {**payload, "status": {"allowed": bool(self.authorizer(spec))}}
        return Response(status=201, payload=payload)


def _selector(params: dict[str, str]) -> Any:
    """A predicate for ``fieldSelector``/``labelSelector`` equality terms (``a=b``, ``a!=b``)."""
    terms: list[tuple[str, str, str, bool]] = []
    for kind in ("fieldSelector", "labelSelector"):
        for term in filter(None, (params.get(kind) or "").split(",")):
            negate = "!=" in term
            key, _, value = term.replace("!=", "=").replace("==", "=").partition("=")
            terms.append((kind, key.strip(), value.strip(), negate))

    def field(obj: dict[str, Any], path: str) -> str:
        value: Any = obj
        for part in path.split("."):
            value = value.get(part) if isinstance(value, dict) else None
        return "" if value is None else str(value)

    def wanted(obj: dict[str, Any]) -> bool:
        for kind, key, value, negate in terms:
            if kind == "fieldSelector":
                actual = field(obj, key)
            else:
                actual = str(((obj.get("metadata") or {}).get("labels") or {}).get(key, ""))
            if (actual == value) == negate:
                return False
        return True

    return wanted


class EmulatorThread:
    """Runs the emulator on 127.0.0.1 (random port) on its own thread and loop."""

    url: str
    emu: Emulator

    def __init__(self) -> None:
        self.ready = threading.Event()
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(
            target=lambda: self.loop.run_until_complete(self._main()), daemon=True
        )

    async def _main(self) -> None:
        self.stop = asyncio.Event()
        async with Emulator() as emu, kmock.Server(emu) as server:
            emu.resources.load_bundled()
            emu.resources[NAMESPACES] = kmock.ResourceInfo(
                kind="Namespace",
                singular="namespace",
                namespaced=False,
                verbs={"get", "list", "watch", "create", "patch", "update", "delete"},
            )
            for path in sorted(CRD_DIR.glob("*.yaml")):
                emu.register_crd(yaml.safe_load(path.read_text()))
            self.emu, self.url = emu, str(server.url).rstrip("/")
            self.ready.set()
            await self.stop.wait()

    def __enter__(self) -> EmulatorThread:
        self.thread.start()
        if not self.ready.wait(10):
            raise RuntimeError("the kmock emulator did not start within 10 s")
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.loop.call_soon_threadsafe(self.stop.set)
        self.thread.join(10)

    def answer_access_reviews(self, authorizer: Callable[[dict[str, Any]], bool] | None) -> None:
        """Answer SubjectAccessReviews with ``authorizer(spec)`` (None: stop answering them).

        The emulator has no authorizer of its own; this stands in for the API server's.
        """
        self.emu.authorizer = authorizer

    def objects(self, resource: str, namespace: str | None = None) -> list[dict[str, Any]]:
        """Stored objects of a resource (``'v1/pods'``, ``'minerguard.io/v1alpha1/...'``)."""
        if resource == "v1/namespaces":
            resource = NAMESPACES
        found: list[dict[str, Any]] = []
        for key, value in list(self.emu.objects.items()):
            if key[0] == resource and (namespace is None or key[1] == namespace):
                found.append(dict(value))
        return found
