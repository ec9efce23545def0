"""minerguard's operator: kopf handlers for MinerPolicy and MinerDetection.

Run with ``minerguard operator [FLAGS]`` (:func:`minerguard_operator.cli.main`) or, for
development, ``kopf run -m minerguard_operator.handlers``: peering then still follows the
``MINERGUARD_OPERATOR_*`` settings (name, priority), which the startup handler gives kopf, so
the housekeeping loop and kopf agree on which replica is active; kopf's own
``--peering``/``--priority`` flags are not enough there. The handlers are thin: the decisions
live in :mod:`minerguard_operator.decide`, the API calls in :mod:`minerguard.kube`, and the
workers that join them in :mod:`minerguard_operator.enforcer` and
:mod:`minerguard_operator.keeper`. Everything handlers share (settings, policies, circuit
breakers, dedup index, metrics) is one :class:`~minerguard_operator.runtime.Runtime` in kopf's
memo, so several operators can run in one process (tests, benchmarks).

kopf's indices hold the policies and a record of every detection; kopf populates them before
any handler runs, which is what makes dedup, the rate limit and counts correct after a restart.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from typing import Any, cast

import kopf
from prometheus_client import start_http_server

from minerguard.api.meta import GROUP, VERSION
from minerguard.kube import errors
from minerguard_operator import investigator
from minerguard_operator.decide import backoff, records
from minerguard_operator.runtime import Runtime
from minerguard_operator.settings import OperatorSettings

log = logging.getLogger("minerguard.operator")
registry = kopf.OperatorRegistry()
"""The handlers below; ``kopf run`` finds them as the default registry."""
kopf.set_default_registry(registry)

POLICIES = "minerpolicies"
DETECTIONS = "minerdetections"


def emit_event(obj: Mapping[str, Any], type_: str, reason: str, message: str) -> None:
    """Queue a Kubernetes Event through kopf's poster (non-blocking, retried by kopf)."""
    try:
        kopf.event(cast(kopf.Body, obj), type=type_, reason=reason, message=message)
    except LookupError:  # outside a running operator (no poster): log only
        log.info("event %s on %s: %s", reason, (obj.get("metadata") or {}).get("name"), message)


def build_runtime(settings: OperatorSettings) -> Runtime:
    """The operator's state and workers for these settings."""
    return Runtime(settings=settings, emit=emit_event)


def runtime(memo: Any) -> Runtime:
    """The Runtime in kopf's memo, built from the environment under a plain ``kopf run``."""
    found = getattr(memo, "runtime", None)
    if not isinstance(found, Runtime):
        found = build_runtime(OperatorSettings())
        memo.runtime = found
    return found


def plain(body: Mapping[str, Any]) -> dict[str, Any]:
    """A kopf body as plain nested dicts (pydantic and our pure code expect those)."""

    def thaw(value: Any) -> Any:
        if isinstance(value, Mapping):
            return {str(k): thaw(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [thaw(v) for v in value]
        return value

    return cast(dict[str, Any], thaw(body))


def retry_or_give_up(
    err: errors.ApiError, retry: int = 0
) -> kopf.TemporaryError | kopf.PermanentError:
    """The kopf error for an API failure: retry what may pass, give up on what will not.

    ``retry`` is kopf's count of earlier retries: the wait grows with it, with jitter, and is
    never shorter than the server's ``Retry-After`` (:func:`.decide.backoff.delay`).
    """
    if err.retryable:
        return kopf.TemporaryError(str(err), delay=backoff.delay(retry, err.retry_after))
    return kopf.PermanentError(str(err))


# -- lifecycle ----------------------------------------------------------------------------


@kopf.on.startup(registry=registry)
async def start(settings: kopf.OperatorSettings, memo: kopf.Memo, **kwargs: Any) -> None:
    """Tune kopf, start the metrics server and the housekeeping loop."""
    rt = runtime(memo)
    own = rt.settings
    settings.peering.priority = own.priority  # the same as housekeeping's (see above)
    settings.posting.level = logging.WARNING  # kopf's own per-handler events are noise here
    settings.execution.max_workers = own.workers
    settings.watching.server_timeout = own.watch_timeout
    settings.watching.client_timeout = own.watch_timeout + 5
    settings.persistence.consistency_timeout = 2.0
    if own.metrics_port:
        server, _thread = start_http_server(
            own.metrics_port, own.metrics_address, registry=rt.state.metrics.registry
        )
        memo.metrics_server = server
    memo.housekeeping = asyncio.create_task(housekeeping(rt, kwargs["detection_records"]))


@kopf.on.cleanup(registry=registry)
async def stop(memo: kopf.Memo, **_: Any) -> None:
    """Stop what :func:`start` started."""
    task = getattr(memo, "housekeeping", None)
    if isinstance(task, asyncio.Task):
        task.cancel()
    server = getattr(memo, "metrics_server", None)
    if server is not None:
        await asyncio.to_thread(server.shutdown)
    rt = getattr(memo, "runtime", None)
    if isinstance(rt, Runtime):
        await asyncio.to_thread(rt.close)


@kopf.on.login(registry=registry)
def login(memo: kopf.Memo, **kwargs: Any) -> kopf.ConnectionInfo | None:
    """``--kube-server`` when given (plain http, tests), else in-cluster, else kubeconfig."""
    server = runtime(memo).settings.kube_server
    if server:
        return kopf.ConnectionInfo(server=server.rstrip("/"), insecure=True)
    return kopf.login_with_service_account(**kwargs) or kopf.login_with_kubeconfig(**kwargs)


async def housekeeping(rt: Runtime, index: kopf.Index[str, Any]) -> None:
    """Expire detections, refresh policy counts and circuits, every ``housekeepingSeconds``."""
    while True:
        await asyncio.sleep(rt.settings.housekeeping_seconds)
        by_policy = {key: list(index.get(key, [])) for key in list(index)}
        try:
            await asyncio.to_thread(rt.housekeep, by_policy)
        except errors.ApiError as err:
            log.warning(
                "housekeeping failed, next round in %ss: %s", rt.settings.housekeeping_seconds, err
            )
        except Exception:  # a background loop's top level: log, count, keep going
            log.exception("housekeeping failed unexpectedly")


# -- indices: filled before any handler runs, kept current by kopf's watches ------------


@kopf.index(GROUP, VERSION, POLICIES, registry=registry)
def policy_generations(body: kopf.Body, name: str, memo: kopf.Memo, **_: Any) -> dict[str, Any]:
    """Compile each policy as soon as it is seen, so detections never wait for it."""
    state = runtime(memo).state.policies.update(plain(body))
    return {name: state.generation}


@kopf.index(GROUP, VERSION, DETECTIONS, registry=registry)
def detection_records(body: kopf.Body, memo: kopf.Memo, **_: Any) -> dict[str, Any]:
    """A record of every detection by policy; seeds dedup and the rate limit after restarts."""
    record = records.record(plain(body))
    runtime(memo).state.learn(record)
    return {record.policy or "": record}


# -- MinerPolicy --------------------------------------------------------------------------


@kopf.on.resume(GROUP, VERSION, POLICIES, registry=registry)
@kopf.on.create(GROUP, VERSION, POLICIES, registry=registry)
@kopf.on.update(GROUP, VERSION, POLICIES, registry=registry)
def validate_policy(
    body: kopf.Body, memo: kopf.Memo, logger: kopf.Logger, retry: int = 0, **_: Any
) -> None:
    """Compile the policy and report conditions, observedGeneration and the circuit."""
    try:
        state = runtime(memo).keeper.validate(plain(body))
    except errors.ApiError as err:
        raise retry_or_give_up(err, retry) from err
    if state.error:
        logger.warning("invalid: %s", state.error)


@kopf.on.resume(GROUP, VERSION, POLICIES, registry=registry)
@kopf.on.create(GROUP, VERSION, POLICIES, registry=registry)
@kopf.on.update(GROUP, VERSION, POLICIES, field="spec", registry=registry)
def block_pool_traffic(
    body: kopf.Body, memo: kopf.Memo, logger: kopf.Logger, retry: int = 0, **_: Any
) -> None:
    """Apply, update or take down the policy's cluster-wide pool block; report it in status.

    Registered before the background scan: kopf runs an object's handlers in order, and a
    block should not wait for a scan of every workload in the cluster.
    """
    try:
        status = runtime(memo).blocker.reconcile(plain(body))
    except errors.ApiError as err:
        raise retry_or_give_up(err, retry) from err
    if status is not None:
        logger.info("pool block: %s", status.get("message"))


@kopf.on.create(GROUP, VERSION, POLICIES, registry=registry)
@kopf.on.update(GROUP, VERSION, POLICIES, field="spec", registry=registry)
def scan_workloads(
    body: kopf.Body, name: str, memo: kopf.Memo, logger: kopf.Logger, retry: int = 0, **_: Any
) -> None:
    """Record existing workloads that match the policy as Audit detections."""
    rt = runtime(memo)
    if not rt.settings.background_scan:
        return
    try:
        found = rt.keeper.scan(name)
    except errors.ApiError as err:
        raise retry_or_give_up(err, retry) from err
    logger.info("background scan recorded %d new detections", found)
    if found:
        message = f"background scan recorded {found} existing workloads as Audit detections"
        emit_event(plain(body), "Warning", "MinerScanFindings", message)


@kopf.on.event(GROUP, VERSION, POLICIES, registry=registry)
def policy_event(
    type: str | None,  # noqa: A002 - kopf's kwarg
    name: str,
    body: kopf.Body,
    memo: kopf.Memo,
    **_: Any,
) -> None:
    """Forget a deleted policy (no finalizer: deleting a policy never waits for us).

    Every other event lets the pool block catch up with a generation it has not seen.

    Its pool-block objects are deleted here, and by the garbage collector (they are owned by
    the policy) should the operator be down when it goes.
    """
    rt = runtime(memo)
    if type == "DELETED":
        rt.keeper.forget(name)
        try:
            rt.blocker.forget(name)
        except errors.ApiError as err:  # housekeeping has no policy left to retry it with
            log.warning("pool-block objects of deleted policy %r not deleted: %s", name, err)
        return
    try:  # a spec changed while the change handlers ran (see PoolBlocker.follow)
        rt.blocker.follow(plain(body))
    except errors.ApiError as err:  # housekeeping tries again
        log.warning("pool block of policy %r not reconciled: %s", name, err)


# -- MinerDetection -----------------------------------------------------------------------


@kopf.on.create(GROUP, VERSION, DETECTIONS, registry=registry)
def enforce(
    body: kopf.Body, memo: kopf.Memo, logger: kopf.Logger, retry: int = 0, **_: Any
) -> None:
    """Respond to a new detection per its policy's runtime actions, exactly once."""
    try:
        outcome = runtime(memo).enforcer.handle(plain(body))
    except errors.ApiError as err:
        raise retry_or_give_up(err, retry) from err
    if outcome.folded_into:
        logger.info("folded: %s", outcome.message)
    else:
        logger.info("%s: %s", outcome.phase, outcome.message)


@kopf.on.resume(GROUP, VERSION, DETECTIONS, registry=registry)
@kopf.on.create(GROUP, VERSION, DETECTIONS, registry=registry)
async def investigate(
    body: kopf.Body, memo: kopf.Memo, logger: kopf.Logger, retry: int = 0, **_: Any
) -> None:
    """Write the detection's ``status.investigation``, after the response and never before.

    Registered after :func:`enforce`: kopf runs an object's handlers in order, so the response
    is complete (or being retried) first. Async, and the gathering runs on the investigator's
    own threads: a slow registry holds no thread that a response needs. On resume (a restart),
    a detection with a final phase and no investigation is investigated; one that has an
    investigation is never redone.
    """
    rt = runtime(memo)
    if not rt.settings.investigate or (body.get("status") or {}).get("investigation"):
        return
    try:
        outcome = await asyncio.wrap_future(rt.investigator.submit(plain(body), retry))
    except investigator.NotReady as err:
        raise kopf.TemporaryError(str(err), delay=err.delay) from err
    except errors.ApiError as err:
        raise retry_or_give_up(err, retry) from err
    if outcome.state is None:
        logger.info("not investigated: %s", outcome.message)
    else:
        logger.info("investigation %s: %s", outcome.state.value, outcome.message)
