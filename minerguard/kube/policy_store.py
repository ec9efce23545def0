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

from minerguard.errors import PolicyError
from minerguard.kube import errors, resources
from minerguard.policy import CompiledPolicy, compile_policy, parse_policy

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
        self._compiled: dict[str, CompiledPolicy] = {}
        self._raw_versions: dict[str, str | None] = {}
        self.policies: tuple[CompiledPolicy, ...] = self._fallback
        self.errors: dict[str, str] = {}
        self.synced = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="minerguard-policies", daemon=True)

    def start(self) -> PolicyStore:
        """Start watching; returns self."""
        self._thread.start()
        return self

    def stop(self, timeout: float = 5.0) -> None:
        """Stop after the current watch call returns (bounded by the watch timeout)."""
        self._stop.set()
        self._thread.join(timeout)

    def _publish(self) -> None:
        compiled = tuple(sorted(self._compiled.values(), key=lambda p: p.name))
        self.policies = compiled or self._fallback
        if self._on_change is not None:
            self._on_change(self.policies)

    def apply(self, event_type: str, raw: dict[str, Any]) -> None:
        """Fold one watch event (or listed object) into the compiled set."""
        name = str((raw.get("metadata") or {}).get("name") or "")
        if not name:
            return
        if event_type == "DELETED":
            self._compiled.pop(name, None)
            self.errors.pop(name, None)
            self._raw_versions.pop(name, None)
            self._publish()
            return
        generation = (raw.get("metadata") or {}).get("generation")
        key = f"{generation}/{_quarantine_key(raw)}"
        if self._raw_versions.get(name) == key and name in self._compiled:
            return  # a status-only change that does not affect matching
        try:
            self._compiled[name] = compile_policy(parse_policy(raw, f"MinerPolicy/{name}"))
        except PolicyError as err:
            self.errors[name] = str(err)
            log.warning("MinerPolicy %s is invalid, keeping its last good version: %s", name, err)
            return
        self.errors.pop(name, None)
        self._raw_versions[name] = key
        self._publish()

    def _sync(self, api: client.ApiClient) -> str | None:
        items, version = resources.list_policies(api)
        seen = set()
        for raw in items:
            seen.add(str((raw.get("metadata") or {}).get("name")))
            self.apply("ADDED", raw)
        for name in list(self._compiled):
            if name not in seen:
                self.apply("DELETED", {"metadata": {"name": name}})
        self._publish()
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


def _quarantine_key(raw: dict[str, Any]) -> int:
    status = raw.get("status") or {}
    quarantined = status.get("quarantinedImages") or [] if isinstance(status, dict) else []
    return hash(tuple(sorted(str(q.get("digest")) for q in quarantined if isinstance(q, dict))))
