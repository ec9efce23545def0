"""The cluster's MinerPolicies, compiled, kept current by a watch, swapped atomically.

A :class:`PolicyWatch` lists and watches MinerPolicy objects and folds each into its
:class:`~minerguard.policy_book.PolicyBook`; it is how the webhook and the agents follow the
cluster (the operator is fed by kopf instead). Readers take ``watch.policies`` (an immutable
tuple) and never lock. A policy that fails to
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

from minerguard.api.meta import API_VERSION
from minerguard.api.policy import MinerPolicy
from minerguard.compiled_policy import CompiledPolicy
from minerguard.kube import listwatch, resources
from minerguard.policy_book import PolicyBook

log = logging.getLogger(__name__)


class PolicyWatch:
    """Lists and watches MinerPolicies on a background thread."""

    def __init__(
        self,
        client_factory: Callable[[], client.ApiClient],
        fallback: Sequence[CompiledPolicy] = (),
        *,
        watch_timeout: int = 60,
        on_change: Callable[[tuple[CompiledPolicy, ...]], None] | None = None,
    ) -> None:
        self._fallback = tuple(fallback)
        self._on_change = on_change
        self._stop = threading.Event()
        self.book = PolicyBook()
        self.policies: tuple[CompiledPolicy, ...] = self._fallback
        self._watch = listwatch.ListWatch(
            "policies",
            factory=client_factory,
            url_path=resources.path(API_VERSION, MinerPolicy.plural),
            query={},
            replace=self._replace,
            apply=self.apply,
            watch_timeout=watch_timeout,
            stop=self._stop,
        )

    @property
    def synced(self) -> threading.Event:
        """Set once the first list succeeded."""
        return self._watch.synced

    @property
    def errors(self) -> dict[str, str]:
        """Policy name -> why its latest generation does not compile."""
        return self.book.errors()

    def start(self) -> PolicyWatch:
        """Start watching; returns self."""
        self._watch.thread.start()
        return self

    def stop(self, timeout: float = 5.0) -> None:
        """Stop now: the blocked watch read is interrupted."""
        self._stop.set()
        self._watch.interrupt()
        self._watch.thread.join(timeout)

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

    def _replace(self, items: list[dict[str, Any]]) -> None:
        """A full list: fold every object in and forget policies that are gone."""
        seen = {str((raw.get("metadata") or {}).get("name")) for raw in items}
        for raw in items:
            self.apply("ADDED", raw)
        for name in self.book.names():
            if name not in seen:
                self.apply("DELETED", {"metadata": {"name": name}})
