"""The few API reads a review may need, off the event loop, deadline-bound and cached.

Namespace labels (for policies with a namespaceSelector), pull secrets and service accounts
(for private registries, only on a registry cache miss) and the pod behind a ``kubectl exec``.
The client is synchronous, so each read runs in a worker thread under the review's deadline;
results are cached briefly so a burst of pods in one namespace costs one read, not hundreds.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping
from typing import Any

from minerguard.cache import BoundedCache, Clock
from minerguard.kube import client, errors, workloads
from minerguard.oci import auth
from webhook.resolve import Keychain

log = logging.getLogger(__name__)

ApiFactory = Callable[[], Any]


class Cluster:
    """Reads through the API server for one webhook process."""

    def __init__(
        self,
        factory: ApiFactory,
        *,
        ttl: float = 30.0,
        clock: Clock = time.monotonic,
    ) -> None:
        self._factory = factory
        self._api: Any = None
        self._labels: BoundedCache[str, dict[str, str]] = BoundedCache(4096, ttl=ttl, clock=clock)
        self._objects: BoundedCache[tuple[str, str, str], Mapping[str, Any]] = BoundedCache(
            4096, ttl=ttl, clock=clock
        )
        self.failures = 0

    def _client(self) -> Any:
        if self._api is None:
            self._api = self._factory()
        return self._api

    async def _call(self, timeout: float, fn: Callable[..., Any], *args: Any) -> Any:
        async with asyncio.timeout(timeout):
            return await asyncio.to_thread(fn, *args)

    async def namespace_labels(self, namespace: str, timeout: float) -> dict[str, str]:
        """A namespace's labels; empty (and counted) when the API cannot say in time."""
        cached = self._labels.get(namespace)
        if cached is not None:
            return cached
        try:
            labels: dict[str, str] = await self._call(
                timeout, lambda: workloads.namespace_labels(self._client(), namespace)
            )
        except (errors.ApiError, TimeoutError) as err:
            self.failures += 1
            log.warning("labels of namespace %s unavailable: %s", namespace, err)
            return {}
        self._labels.put(namespace, labels)
        return labels

    async def pod(self, namespace: str, name: str, timeout: float) -> Mapping[str, Any] | None:
        """The pod a ``kubectl exec`` targets, or None when it cannot be read in time."""
        try:
            found: Mapping[str, Any] | None = await self._call(
                timeout, lambda: workloads.find(self._client(), "Pod", namespace, name)
            )
        except (errors.ApiError, TimeoutError) as err:
            self.failures += 1
            log.warning("pod %s/%s unavailable: %s", namespace, name, err)
            return None
        return found

    async def _core(
        self, resource: str, namespace: str, name: str, timeout: float
    ) -> Mapping[str, Any] | None:
        key = (resource, namespace, name)
        cached = self._objects.get(key)
        if cached is not None:
            return cached
        try:
            found = await self._call(
                timeout, lambda: workloads.find(self._client(), resource, namespace, name)
            )
        except (errors.ApiError, TimeoutError) as err:
            self.failures += 1
            log.warning("%s %s/%s unavailable: %s", resource, namespace, name, err)
            return None
        if not isinstance(found, dict):
            return None
        self._objects.put(key, found)
        return found

    async def keychain(
        self,
        namespace: str,
        pull_secrets: tuple[str, ...],
        service_account: str | None,
        timeout: float,
    ) -> Keychain:
        """Credentials from the pod's pull secrets, then its service account's."""
        names = list(pull_secrets)
        account = service_account or "default"
        found = await self._core("ServiceAccount", namespace, account, timeout)
        listed = (found or {}).get("imagePullSecrets")
        for item in listed if isinstance(listed, list) else ():
            if isinstance(item, Mapping) and isinstance(item.get("name"), str):
                names.append(item["name"])
        chains = []
        for name in dict.fromkeys(names):
            secret = await self._core("Secret", namespace, name, timeout)
            if secret is not None:
                chains.append(auth.keychain_from_secret(secret))
        return auth.merge_keychains(chains)


def api_factory(server: str | None) -> ApiFactory:
    """A factory for the API client: explicit URL, else in-cluster, else kubeconfig."""
    return lambda: client.api_client(server)
