"""Keep each MinerPolicy's cluster-wide pool block applied, current and reported.

For every policy with ``spec.network.blockPoolTraffic``, the objects
:mod:`minerguard_operator.decide.network` renders are created, replaced when the bundle or the
policy changes, and deleted when blocking is turned off or the policy is gone (they are also
owned by the policy, so the garbage collector removes them with it). Which engine renders them
is asked of the cluster each time (API discovery): a CNI installed later is picked up by the
next housekeeping round.

What it never does: touch an object it did not make. Objects are updated or deleted only when
they carry both minerguard's ``managed-by`` label and this policy's ``pool-block`` label, read
back from the API (not just selected by them); an object of the same name made by someone else
is reported in the policy's status and left alone.

Mode and safety: Audit and ``dryRun`` render nothing that blocks (status says what would be
blocked). While the policy's circuit breaker is open, its blocks are frozen as they are:
nothing new is blocked and nothing is lifted; taking blocks down when destructive actions pile
up would hand whoever can provoke those actions an open door to the pools.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from minerguard.api.policy import Mode, NetworkEnforcement
from minerguard.kube import client, discovery, errors, resources
from minerguard.signatures import bundle
from minerguard.timestamps import format_time
from minerguard_operator.decide import marks, pool_scope, pool_targets
from minerguard_operator.decide import network as net
from minerguard_operator.state import State

log = logging.getLogger(__name__)

ENGINE_RESOURCES: dict[NetworkEnforcement, tuple[net.Resource, ...]] = {
    NetworkEnforcement.ADMIN_NETWORK_POLICY: (net.ANP,),
    NetworkEnforcement.CILIUM: (net.CCNP,),
    NetworkEnforcement.CALICO: (net.GNP, net.GNP_CRD),
}
"""Each engine and the resources that serve it (Calico: its API server's group first)."""


def _name(obj: Mapping[str, Any]) -> str:
    return str((obj.get("metadata") or {}).get("name") or "")


class PoolBlocker:
    """Renders, applies and reports each policy's cluster-wide pool block."""

    def __init__(self, api_factory: Callable[[], client.ApiClient], state: State) -> None:
        self._api_factory = api_factory
        self._api: client.ApiClient | None = None
        self.state = state
        self._lock = threading.Lock()
        self._written: dict[str, dict[str, Any] | None] = {}
        self._generations: dict[str, int | None] = {}
        """The policy generation each policy's block was last reconciled for."""
        self._synced: dict[tuple[str, str, str], tuple[str, object]] = {}
        """Per object: the rendering last written and the resourceVersion it got, so an object
        the server only added defaults to is not patched again every round."""

    @property
    def api(self) -> client.ApiClient:
        """The API client, made on first use."""
        if self._api is None:
            self._api = self._api_factory()
        return self._api

    # -- discovery ------------------------------------------------------------------------

    def served(self) -> dict[NetworkEnforcement, net.Resource]:
        """The engines this cluster serves, each with the resource to write."""
        found: dict[NetworkEnforcement, net.Resource] = {}
        for engine, candidates in ENGINE_RESOURCES.items():
            for resource in candidates:
                if resource.plural in discovery.served(self.api, resource.api_version):
                    found[engine] = resource
                    break
        return found

    # -- one policy -----------------------------------------------------------------------

    def reconcile(
        self,
        body: Mapping[str, Any],
        served: Mapping[NetworkEnforcement, net.Resource] | None = None,
    ) -> dict[str, Any] | None:
        """Bring one policy's objects and ``status.network`` in line with its spec.

        ``served`` is what discovery found (asked now when not given). Returns the status
        written (None: the policy does not block, nothing to report).
        """
        metadata = body.get("metadata") or {}
        name = str(metadata.get("name") or "")
        uid = metadata.get("uid")
        state = self.state.policies.get(name)
        if state is None or state.compiled is None:
            return None  # never compiled: the keeper reports why; the last objects stay
        spec = state.compiled.spec
        with self._lock:
            self._generations[name] = state.generation
            served = dict(served) if served is not None else self.served()
            if not spec.network.block_pool_traffic:
                self._prune(name, keep=set(), resources_=set(served.values()))
                self._write(name, None)
                return None
            mechanism = pool_targets.choose(spec.network.enforcement, served)
            goal = pool_targets.targets(spec, bundle.builtin())
            why_not = self._why_not_blocking(name, spec.mode, spec.dry_run, state.compiled)
            frozen = why_not is not None and why_not.startswith("circuit open")
            problems: list[str] = []
            rendering: net.Rendering | None = None
            applied: list[str] = []
            if mechanism is not None:
                try:
                    rendering = net.render(
                        mechanism,
                        name,
                        uid if isinstance(uid, str) else None,
                        spec,
                        goal,
                        blocking=why_not is None,
                        calico_crd=served.get(NetworkEnforcement.CALICO) == net.GNP_CRD,
                    )
                except pool_scope.RenderError as err:
                    problems.append(f"not rendered: {err}")
            if frozen:
                applied = self._existing(name, set(served.values()))
            elif rendering is not None:
                applied = self._apply(name, rendering, problems)
                keep = {(rendering.resource, _name(o)) for o in rendering.objects}
                self._prune(name, keep=keep, resources_=set(served.values()))
            elif not problems:  # the engine asked for is not served: nothing of ours stays
                self._prune(name, keep=set(), resources_=set(served.values()))
            status = net.status(
                mechanism,
                rendering,
                goal,
                applied=applied,
                why_not_blocking=why_not,
                problems=problems,
            )
            if frozen:
                status["enforced"] = bool(applied)
            self._write(name, status)
            return status

    def _why_not_blocking(self, name: str, mode: Mode, dry_run: bool, compiled: Any) -> str | None:
        if mode is Mode.AUDIT:
            return "mode Audit"
        if dry_run:
            return "spec.dryRun"
        until = self.state.breaker.open_until(name, compiled.spec.rate_limit)
        if until is not None:
            return f"circuit open until {format_time(until)}: blocks frozen as they were"
        return None

    def _apply(self, policy: str, rendering: net.Rendering, problems: list[str]) -> list[str]:
        """Create or update each rendered object; ``Kind/name`` of those in place.

        What the API server answers is checked to hold all of the rendered spec: a server that
        dropped a field (an older CRD without it prunes it silently; Cilium before 1.15 would
        drop ``enableDefaultDeny`` and put every covered pod into default-deny) gets the object
        deleted again and the status says why. Objects refused outright are reported too.
        """
        for shared, obj in rendering.support:
            url = resources.path(shared.api_version, shared.plural)
            with contextlib.suppress(errors.Conflict):  # there already (ours or the admin's)
                resources.request(self.api, "POST", url, body=obj)
        applied: list[str] = []
        resource = rendering.resource
        if resource is None:
            return applied  # Node: the agents block
        for obj in rendering.objects:
            ref = f"{resource.kind}/{_name(obj)}"
            try:
                stored = self._put(policy, resource, obj, problems)
            except (errors.Forbidden, errors.Invalid) as err:
                problems.append(f"{ref} refused by the API server: {err}")
                continue
            if stored is None:
                continue
            if not net.contains(stored.get("spec"), obj["spec"]):
                self._delete(resource, stored)
                problems.append(
                    f"{ref}: the API server dropped parts of it (an older {resource.kind}"
                    " schema?), so it was removed again and nothing is enforced with it"
                )
                continue
            applied.append(ref)
        return applied

    def _put(
        self,
        policy: str,
        resource: net.Resource,
        obj: dict[str, Any],
        problems: list[str],
    ) -> dict[str, Any] | None:
        """Create or patch one object; what the server stored (None: not ours, left alone)."""
        name = _name(obj)
        url = resources.path(resource.api_version, resource.plural, name=name)
        key = (resource.api_version, resource.plural, name)
        try:
            current = resources.read_json(resources.request(self.api, "GET", url))
        except errors.NotFound:
            collection = resources.path(resource.api_version, resource.plural)
            stored = resources.read_json(resources.request(self.api, "POST", collection, body=obj))
        else:
            if not net.owned(current, policy):
                problems.append(
                    f"{resource.kind}/{name} exists and is not minerguard's: left alone"
                )
                return None
            version = (current.get("metadata") or {}).get("resourceVersion")
            if self._synced.get(key) == (net.fingerprint(obj), version):
                return current  # as we last wrote it (server defaults included)
            if not net.differs(obj, current):
                return current
            body = net.update_patch(obj, current)
            stored = resources.read_json(
                resources.request(
                    self.api, "PATCH", url, body=body, content_type=resources.MERGE_PATCH
                )
            )
        version = (stored.get("metadata") or {}).get("resourceVersion")
        self._synced[key] = (net.fingerprint(obj), version)
        return stored

    def _delete(self, resource: net.Resource, obj: Mapping[str, Any]) -> bool:
        """Delete one of our objects, guarded by its uid; False when it was gone already."""
        url = resources.path(resource.api_version, resource.plural, name=_name(obj))
        uid = (obj.get("metadata") or {}).get("uid")
        body = {"preconditions": {"uid": uid}} if uid else None
        try:
            resources.request(self.api, "DELETE", url, body=body)
        except (errors.NotFound, errors.Conflict):
            return False
        return True

    def _listed(self, policy: str, resource: net.Resource) -> list[dict[str, Any]]:
        selector = f"{net.MANAGED_BY}={net.MANAGER},{net.POOL_BLOCK}={marks.short_hash(policy)}"
        url = resources.path(resource.api_version, resource.plural)
        try:
            items = resources.read_json(
                resources.request(self.api, "GET", url, query={"labelSelector": selector})
            ).get("items")
        except errors.NotFound:
            return []
        # Read back, not trusted to the selector: only objects that carry both marks count.
        return [o for o in items or () if isinstance(o, dict) and net.owned(o, policy)]

    def _existing(self, policy: str, resources_: Iterable[net.Resource]) -> list[str]:
        return sorted(
            f"{resource.kind}/{_name(obj)}"
            for resource in resources_
            for obj in self._listed(policy, resource)
        )

    def _prune(
        self,
        policy: str,
        keep: set[tuple[net.Resource | None, str]],
        resources_: Iterable[net.Resource],
    ) -> int:
        """Delete this policy's objects that are no longer rendered; returns how many."""
        deleted = 0
        for resource in resources_:
            for obj in self._listed(policy, resource):
                if (resource, _name(obj)) in keep:
                    continue
                if self._delete(resource, obj):
                    deleted += 1
        return deleted

    def _write(self, name: str, status: dict[str, Any] | None) -> None:
        if name in self._written and self._written[name] == status:
            return
        with contextlib.suppress(errors.NotFound):
            resources.patch_policy_status(self.api, name, {"network": status})
        self._written[name] = status

    def follow(self, body: Mapping[str, Any]) -> dict[str, Any] | None:
        """Reconcile when the policy's generation is not the one last reconciled.

        kopf runs a policy's change handlers one after the other and records the newest spec
        as handled at the end: a spec changed while the earlier handlers ran is never handed
        to them. Every watch event reaches this, so a block follows each generation anyway.
        """
        name = str((body.get("metadata") or {}).get("name") or "")
        state = self.state.policies.get(name)
        if state is None or self._generations.get(name, -1) == state.generation:
            return None
        return self.reconcile(body)

    # -- the whole cluster ----------------------------------------------------------------

    def forget(self, name: str) -> int:
        """A policy was deleted: delete its objects (the garbage collector would, later)."""
        with self._lock:
            self._written.pop(name, None)
            self._generations.pop(name, None)
            return self._prune(name, keep=set(), resources_=self._all_resources())

    def _all_resources(self) -> set[net.Resource]:
        return set(self.served().values())

    def refresh(self, names: Iterable[str]) -> None:
        """Reconcile every known policy (housekeeping): engines installed, circuits, drift."""
        served = self.served()
        for name in names:
            try:
                body = resources.get_policy(self.api, name)
            except errors.NotFound:
                continue
            try:
                self.reconcile(body, served)
            except errors.ApiError as err:
                log.warning("pool block of policy %r not refreshed: %s", name, err)
