"""The cluster's MinerPolicies, compiled, kept current by a watch, swapped atomically.

Readers take ``store.policies`` (an immutable tuple) and never lock. A policy that fails to
compile keeps its last good generation in force (a typo never switches protection off) and
its error is kept for the operator to report. Until the first list succeeds, and whenever the
cluster has no MinerPolicy at all, the ``fallback`` policies apply.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from typing import Any

from kubernetes import client

from minerguard.kube import errors, resources
from minerguard.policy import CompiledPolicy
from minerguard.policy_book import PolicyBook

log = logging.getLogger(__name__)


class PolicyStore:
    """Lists and watches MinerPolicies on a background thread."""

    def __init__(
        self,
        client_factory: Callable[[], client.ApiClient],
        fallback: Sequence[CompiledPolicy] = (),
        *,
        watch_timeout: int = 60,
        on_change: Callable[[tuple[CompiledPolicy, ...]], None] | None = None,
    ) -> None:
        self._factory = client_factory
        self._fallback = tuple(fallback)
        self._watch_timeout = watch_timeout
        self._on_change = on_change
        self.book = PolicyBook()
        self.policies: tuple[CompiledPolicy, ...] = self._fallback
        self.synced = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="minerguard-policies", daemon=True)

    @property
    def errors(self) -> dict[str, str]:
        """Policy name -> why its latest generation does not compile."""
        return self.book.errors()

    def start(self) -> PolicyStore:
        """Start watching; returns self."""
        self._thread.start()
        return self

    def stop(self, timeout: float = 5.0) -> None:
        """Stop after the current watch call returns (bounded by the watch timeout)."""
        self._stop.set()
        self._thread.join(timeout)

    def _publish(self) -> None:
        policies = self.book.compiled() or self._fallback
        if policies != self.policies:
            self.policies = policies
            if self._on_change is not None:
                self._on_change(policies)

    def apply(self, event_type: str, raw: dict[str, Any]) -> None:
        """Fold one watch event (or listed object) into the compiled set."""
        name = str((raw.get("metadata") or {}).get("name") or "")
        if not name:
            return
        if event_type == "DELETED":
            self.book.remove(name)
        else:
            state = self.book.update(raw)
            if state.error:
                log.warning(
                    "MinerPolicy %s is invalid, keeping its last good version: %s",
                    name,
                    state.error,
                )
        self._publish()

    def _sync(self, api: client.ApiClient) -> str | None:
        items, version = resources.list_policies(api)
        seen = {str((raw.get("metadata") or {}).get("name")) for raw in items}
        for raw in items:
            self.apply("ADDED", raw)
        for name in self.book.names():
            if name not in seen:
                self.apply("DELETED", {"metadata": {"name": name}})
        self.synced.set()
        return version

    def _run(self) -> None:
        backoff = 0.5
        api: client.ApiClient | None = None
        while not self._stop.is_set():
            try:
                api = api or self._factory()
                version = self._sync(api)
                for event_type, raw in resources.watch_policies(api, version, self._watch_timeout):
                    if self._stop.is_set():
                        return
                    self.apply(event_type, raw)
                backoff = 0.5
            except errors.ApiError as err:
                log.warning("MinerPolicy watch failed, retrying in %.1fs: %s", backoff, err)
                self._stop.wait(backoff)
                backoff = min(backoff * 2, 30.0)
