"""Keep each MinerPolicy's status true, sweep expired detections and run background scans.

The status is one picture built from in-memory state (compile result, circuit breaker) and the
operator's index of detections, and written only when it changes. Counts are derived from the
detections that exist rather than incremented, so they survive restarts and never drift.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from kubernetes import client

from minerguard.api.policy import Retention
from minerguard.compiled_policy import CompiledPolicy
from minerguard.kube import errors, resources, workloads
from minerguard.policy_book import PolicyState
from minerguard.timestamps import format_time, parse_time
from minerguard_operator import changes, exposure
from minerguard_operator.decide import exposure as exposure_decisions
from minerguard_operator.decide import retention, scanning, statuses
from minerguard_operator.decide.records import DetectionRecord
from minerguard_operator.events import Emit, policy_ref
from minerguard_operator.state import State

log = logging.getLogger(__name__)
DEFAULT_TTL = Retention().ttl_seconds
ANONYMOUS_REFRESH_SECONDS = 300.0
"""How often the cluster's RBAC bindings are read again for anonymous access (every policy's
status shows the same cluster-wide answer: read once per interval, not once per policy)."""


class PolicyKeeper:
    """Validates policies, writes their status, expires detections, scans workloads."""

    def __init__(
        self,
        api_factory: Callable[[], client.ApiClient],
        state: State,
        emit: Emit,
        namespaces: Sequence[str] = (),
        anonymous_refresh_seconds: float = ANONYMOUS_REFRESH_SECONDS,
    ) -> None:
        self._api_factory = api_factory
        self._api: client.ApiClient | None = None
        self.state = state
        self.emit = emit
        self.namespaces = tuple(namespaces)
        self._lock = threading.Lock()
        self._written: dict[str, dict[str, Any]] = {}
        self.anonymous_refresh_seconds = anonymous_refresh_seconds
        self._anonymous_lock = threading.Lock()
        self._anonymous: tuple[float, list[dict[str, Any]] | None, list[str]] | None = None

    @property
    def api(self) -> client.ApiClient:
        """The API client, made on first use."""
        if self._api is None:
            self._api = self._api_factory()
        return self._api

    def validate(self, body: Mapping[str, Any]) -> PolicyState:
        """Compile a policy generation and report the result in its status (and an Event)."""
        state = self.state.policies.update(body)
        self.state.metrics.policies_invalid.set(self.state.policies.invalid())
        status = body.get("status") or {}
        self.state.breaker.restore(state.name, parse_time(status.get("circuitOpenUntil")))
        if state.error:
            message = f"{state.error} (the previous valid generation stays in force)"
            uid = (body.get("metadata") or {}).get("uid")
            event_on = policy_ref(state.name, uid if isinstance(uid, str) else None)
            self.emit(event_on, "Warning", "MinerPolicyInvalid", message)
        self.write_status(state.name, body, force=True)
        return state

    def write_status(
        self,
        name: str,
        body: Mapping[str, Any],
        records: Sequence[DetectionRecord] | None = None,
        *,
        force: bool = False,
    ) -> bool:
        """Write the policy's status if it changed; True when written."""
        state = self.state.policies.get(name)
        if state is None:
            return False
        status = body.get("status") or {}
        compiled = state.compiled
        limit = compiled.spec.rate_limit if compiled else None
        open_until = self.state.breaker.open_until(name, limit)
        until = format_time(open_until) if open_until is not None else None
        self.state.metrics.circuit_open.labels(name).set(1 if until else 0)
        generation = (body.get("metadata") or {}).get("generation")
        desired: dict[str, Any] = {
            "observedGeneration": generation,
            "circuitOpenUntil": until,
            "signatureCount": len(compiled.engine.entries) if compiled else None,
            "bundleVersion": compiled.bundle_version if compiled else None,
            "exemptions": compiled.exemption_coverage() if compiled else None,
        }
        if records is not None:
            desired["counts"] = statuses.counts(records)
        _, anonymous, unread = self._anonymous_reading()
        if anonymous is not None:
            desired["anonymousAccess"] = anonymous
        with self._lock:
            key = {**desired, "error": state.error, "unread": unread}
            if not force and self._written.get(name) == key:
                return False
            desired["conditions"] = statuses.policy_conditions(
                status.get("conditions") or [],
                error=state.error,
                open_until=until,
                now=format_time(self.state.clock()),
                generation=generation,
            )
            desired["conditions"].append(
                exposure_decisions.access_reviewed(
                    status.get("conditions") or [],
                    unknowns=unread,
                    flagged=None if anonymous is None else len(anonymous),
                    now=format_time(self.state.clock()),
                    generation=generation,
                )
            )
            try:
                resources.patch_policy_status(self.api, name, desired)
            except errors.NotFound:
                return False
            self._written[name] = key
        return True

    def anonymous_access(self) -> list[dict[str, Any]] | None:
        """Bindings giving anything to anonymous users or rights to everyone, as status entries.

        Cached for a while. None while nothing could be read (forbidden, unreachable): the status
        then keeps what it said last rather than claim there are none, and its
        ``AccessReviewed`` condition says what could not be read (:meth:`anonymous_unknowns`).
        """
        return self._anonymous_reading()[1]

    def anonymous_unknowns(self) -> list[str]:
        """What the last cluster-wide reading of :meth:`anonymous_access` could not read."""
        return self._anonymous_reading()[2]

    def _anonymous_reading(self) -> tuple[float, list[dict[str, Any]] | None, list[str]]:
        with self._anonymous_lock:
            now = self.state.clock()
            if (
                self._anonymous is not None
                and now - self._anonymous[0] < self.anonymous_refresh_seconds
            ):
                return self._anonymous
            found, unknowns = exposure.anonymous_access(self.api)
            for unknown in unknowns:
                log.warning("anonymous access: %s", unknown)
            entries = [entry.to_k8s() for entry in found] if found or not unknowns else None
            self._anonymous = (now, entries, unknowns)
            return self._anonymous

    def forget(self, name: str) -> None:
        """A policy was deleted."""
        self.state.policies.remove(name)
        with self._lock:
            self._written.pop(name, None)

    def expire(self, records: Iterable[DetectionRecord], ttl_seconds: float) -> int:
        """Delete the detections older than the TTL; returns how many were deleted."""
        deleted = 0
        for ref in retention.sweep(records, ttl_seconds, self.state.clock()):
            namespace, _, name = ref.partition("/")
            if resources.delete_detection(self.api, namespace, name):
                deleted += 1
                self.state.metrics.expired.inc()
        return deleted

    def housekeep(self, by_policy: Mapping[str, Sequence[DetectionRecord]]) -> None:
        """One round: expire detections per their policy's TTL, refresh status and circuits.

        Detections whose policy no longer exists expire after the default TTL; isolating
        AdminNetworkPolicies whose pod is gone are deleted.
        """
        known = set(self.state.policies.names())
        for name, found in by_policy.items():
            state = self.state.policies.get(name) if name in known else None
            compiled = state.compiled if state else None
            ttl = compiled.spec.retention.ttl_seconds if compiled else DEFAULT_TTL
            expired = self.expire(found, ttl)
            if expired:
                log.info("expired %d detections of policy %r", expired, name or "-")
        for name in known:
            try:
                body = resources.get_policy(self.api, name)
            except errors.NotFound:
                continue
            alive = [r for r in by_policy.get(name, ()) if not self._gone(r)]
            self.write_status(name, body, alive)
        try:
            swept = changes.sweep_admin_network_policies(self.api)
        except errors.Forbidden as err:
            log.warning("isolating AdminNetworkPolicies cannot be swept: %s", err)
        else:
            if swept:
                log.info("deleted %d AdminNetworkPolicies of isolated pods now gone", swept)

    def _gone(self, record: DetectionRecord) -> bool:
        compiled = self._compiled(record.policy)
        ttl = compiled.spec.retention.ttl_seconds if compiled else DEFAULT_TTL
        return retention.expired(record, ttl, self.state.clock())

    def _compiled(self, name: str | None) -> CompiledPolicy | None:
        state = self.state.policies.get(name) if name else None
        return state.compiled if state else None

    def scan(self, name: str) -> int:
        """Record Audit detections for existing workloads matching the policy; returns new ones."""
        policy = self._compiled(name)
        if policy is None:
            return 0
        labels: dict[str, dict[str, str]] = {}
        if policy.spec.namespace_selector is not None:  # only then do labels matter
            labels = workloads.list_namespace_labels(self.api)
        namespaces: Sequence[str | None] = self.namespaces or (None,)
        recorded = 0
        now = self.state.clock()
        for namespace in namespaces:
            for kind in scanning.SCANNED_KINDS:
                try:
                    objects = workloads.list_objects(self.api, kind, namespace)
                except errors.NotFound:
                    continue  # a kind this cluster does not serve
                for obj in objects:
                    if not scanning.is_top_level(obj):
                        continue
                    ns = str((obj.get("metadata") or {}).get("namespace") or "default")
                    found = scanning.scan_object(obj, policy, labels.get(ns, {}), now)
                    for detection in found:
                        if resources.create_detection_once(self.api, detection):
                            recorded += 1
        self.state.metrics.scan_findings.labels(name).inc(recorded)
        return recorded
