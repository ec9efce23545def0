"""List, then watch from the list's resourceVersion, forever, on a background thread.

The one informer loop behind every cache minerguard keeps of cluster objects (pods on a node,
namespace labels, MinerPolicies). A failure keeps the caller's state as it is and relists after
a backoff; a watch ``ERROR`` (usually 410 Gone) relists at once; a watch that ends at once is
not allowed to spin; :meth:`ListWatch.interrupt` breaks a blocked read so ``stop`` is prompt.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from kubernetes import client, watch

from minerguard.kube import errors, resources

log = logging.getLogger(__name__)

MAX_BACKOFF = 30.0


class ListWatch:
    """List, then watch, forever; ``apply`` folds events in, ``replace`` takes a full list."""

    def __init__(
        self,
        name: str,
        *,
        factory: Callable[[], client.ApiClient],
        url_path: str,
        query: Mapping[str, str],
        replace: Callable[[list[dict[str, Any]]], None],
        apply: Callable[[str, dict[str, Any]], None],
        watch_timeout: int,
        stop: threading.Event,
    ) -> None:
        self._name = name
        self._factory = factory
        self._path = url_path
        self._query = dict(query)
        self._replace = replace
        self._apply = apply
        self._timeout = watch_timeout
        self._stop = stop
        self.synced = threading.Event()
        self._watcher: watch.Watch | None = None
        self.failures = 0
        self.relists = 0
        self.thread = threading.Thread(target=self._run, name=f"minerguard-{name}", daemon=True)

    def interrupt(self) -> None:
        """Break a blocked watch read (on stop), so the thread ends now, not at the timeout."""
        watcher = self._watcher
        if watcher is None:
            return
        watcher.stop()
        response = getattr(watcher, "_resp", None)  # the client offers no public handle
        if response is not None:
            with contextlib.suppress(Exception):  # closing a socket mid-read may raise anything
                response.shutdown() if hasattr(response, "shutdown") else response.close()

    def _list(self, api: client.ApiClient) -> str | None:
        body = resources.read_json(resources.request(api, "GET", self._path, query=self._query))
        items = [i for i in body.get("items") or [] if isinstance(i, dict)]
        self._replace(items)
        self.relists += 1
        self.synced.set()
        version = (body.get("metadata") or {}).get("resourceVersion")
        return str(version) if version else None

    def _watch(self, api: client.ApiClient, version: str | None) -> Iterator[tuple[str, Any]]:
        def open_watch(**kwargs: Any) -> Any:
            """What ``Watch.stream`` calls (it adds ``watch=True, _preload_content=False``)."""
            query = {
                **self._query,
                "watch": "true",
                "resourceVersion": kwargs.get("resource_version"),
                "timeoutSeconds": kwargs.get("timeout_seconds"),
            }
            timeout = kwargs.get("_request_timeout")
            return resources.request(
                api, "GET", self._path, query=query, stream=True, timeout=timeout
            )

        watcher = watch.Watch()
        self._watcher = watcher
        stream = watcher.stream(
            open_watch,
            resource_version=version,
            timeout_seconds=self._timeout,
            _request_timeout=self._timeout + 5,
            deserialize=False,
        )
        try:
            for event in stream:
                yield str(event["type"]), event.get("raw_object", event["object"])
        except Exception as err:
            raise errors.translate(err) from err

    def _run(self) -> None:
        backoff = 0.5
        api: client.ApiClient | None = None
        while not self._stop.is_set():
            started: float | None = None
            try:
                api = api or self._factory()
                version = self._list(api)
                started = time.monotonic()
                for event_type, obj in self._watch(api, version):
                    if self._stop.is_set():
                        return
                    if event_type == "ERROR":
                        break  # usually 410 Gone: relist
                    if isinstance(obj, dict):
                        self._apply(event_type, obj)
            except errors.ApiError as err:
                api = None
                if started is None:  # the list itself failed: the API is unavailable
                    self.failures += 1
                    log.warning("%s list failed, retrying in %.1fs: %s", self._name, backoff, err)
                else:  # a watch broke (or an emulator ignored timeoutSeconds): relist
                    log.info("%s watch ended: %s", self._name, err)
            if started is not None and time.monotonic() - started >= 1.0:
                backoff = 0.5
                continue
            self._stop.wait(backoff)  # failed, or a watch that ended at once: do not spin
            backoff = min(backoff * 2, MAX_BACKOFF)
