"""The app factory: settings in, a FastAPI app out; background parts live in its lifespan.

Policies from files (or the embedded default) are compiled here, so a broken policy file
fails the start instead of the first review. With a cluster, a :class:`PolicyWatch` watches
MinerPolicies (the file policies are its fallback) and a :class:`Reporter` writes the audit
trail; both, the registry client and the API reads start with the server and stop with it.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import ssl
import time
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

from fastapi import FastAPI
from prometheus_client.core import CounterMetricFamily
from prometheus_client.registry import Collector

from minerguard.compiled_policy import CompiledPolicy, load_policy_files
from minerguard.kube.policy_watch import PolicyWatch
from minerguard.kube.reporter import Reporter
from minerguard.oci import egress, registry
from webhook import (
    audit,
    bodies,
    memo,
    metrics,
    pinning,
    referenced,
    resolve,
    routes,
    sessions,
    tls,
)
from webhook.admission import Reviewer
from webhook.cluster import ApiFactory, Cluster, api_factory
from webhook.settings import WebhookSettings

log = logging.getLogger(__name__)


@dataclass
class Services:
    """What the routes use; built at startup, one per worker process."""

    settings: WebhookSettings
    metrics: metrics.Metrics
    reviewer: Reviewer
    resolver: resolve.ImageResolver
    policy_watch: PolicyWatch | None = None
    reporter: Reporter | None = None
    started: float = field(default_factory=time.monotonic)
    pinner: pinning.Pinner | None = None
    system_reviewer: Reviewer | None = None
    """Answers ``/validate/system``, the system namespaces' entry (conclusive evidence only)."""
    configmaps: referenced.ConfigMapWatch | None = None
    session_reporter: Reporter | None = None
    """Writes the exec-session Events: a queue of its own, so execs never crowd detections out."""
    bodies: bodies.Budgets = field(init=False)

    def __post_init__(self) -> None:
        """The memory budget for request bodies in flight: one per worker process."""
        self.bodies = bodies.Budgets.of(self.settings.inflight_bytes)

    def ready(self) -> bool:
        """Policies are in force: synced from the cluster, or files, or the grace is over."""
        if self.policy_watch is None or self.policy_watch.synced.is_set():
            return True
        return time.monotonic() - self.started > self.settings.policy_sync_grace


def _counts(reporter: Reporter | None) -> metrics.ReporterCounts | None:
    if reporter is None:
        return None
    return metrics.ReporterCounts(
        written=lambda: reporter.written,
        dropped=lambda: reporter.dropped,
        retried=lambda: reporter.retried,
    )


def create_app(
    settings: WebhookSettings,
    *,
    policies: Sequence[CompiledPolicy] | None = None,
    kube: ApiFactory | None = None,
    registry_verify: ssl.SSLContext | bool = True,
) -> FastAPI:
    """Build the webhook app.

    Args:
        settings: the process's settings.
        policies: policies to use instead of ``settings.policy_files`` (tests, benchmarks).
        kube: API client factory; default from ``settings`` (``kube_server``, ``in_cluster``),
            none when neither is set.
        registry_verify: TLS verification for registries (a context trusting a private CA).

    Raises:
        minerguard.errors.PolicyError: a policy file is invalid.
    """
    fallback = (
        tuple(policies) if policies is not None else tuple(load_policy_files(settings.policy_files))
    )
    if kube is None and (settings.kube_server or settings.in_cluster):
        kube = api_factory(settings.kube_server)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        services = _start(settings, fallback, kube, registry_verify)
        app.state.services = services
        log.info(
            "minerguard webhook ready: %d policies, cluster %s",
            len(fallback),
            "watched" if services.policy_watch else "none",
        )
        try:
            yield
        finally:
            await _stop(services)

    app = FastAPI(
        title="minerguard webhook",
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
    )
    app.router.routes.extend(routes.ROUTES)
    app.add_middleware(routes.FastValidate, state=app.state)
    return app


def _start(
    settings: WebhookSettings,
    fallback: Sequence[CompiledPolicy],
    kube: ApiFactory | None,
    verify: ssl.SSLContext | bool,
) -> Services:
    reporter = Reporter(kube, capacity=settings.reporter_capacity) if kube else None
    series = metrics.Metrics(lambda: _counts(reporter))
    series.policies.set(len(fallback))
    series.registry.register(_TLSReloads())
    client = registry.RegistryClient(
        insecure=settings.insecure_registries,
        verify=verify,
        policy=egress.AddressPolicy.of(settings.registry_allowed_networks),
    )
    resolver = resolve.ImageResolver(
        client,
        tag_ttl=settings.registry_cache_ttl,
        error_ttl=settings.registry_error_ttl,
        size=settings.registry_cache_size,
        observe=series.resolution,
    )
    policy_watch: PolicyWatch | None = None
    current: Callable[[], Sequence[CompiledPolicy]] = lambda: fallback  # noqa: E731
    if kube is not None:
        policy_watch = PolicyWatch(
            kube, fallback, on_change=lambda found: series.policies.set(len(found))
        ).start()
        watched = policy_watch
        current = lambda: watched.policies  # noqa: E731
    current = memo.MemoPolicies(current)
    sink: audit.Sink = reporter if reporter is not None else audit.LogSink()
    cluster = Cluster(kube) if kube else None
    configmaps: referenced.ConfigMapWatch | None = None
    objects: referenced.ObjectReader | None = None
    if kube is not None and settings.read_references:
        if settings.configmap_cache_bytes > 0:
            configmaps = referenced.ConfigMapWatch(
                kube, max_bytes=settings.configmap_cache_bytes
            ).start()
        objects = referenced.ObjectReader(
            kube, watch=configmaps, secret_ttl=settings.secret_cache_ttl
        )
        series.registry.register(referenced.ReadCounts(objects))
    session_reporter, recorder = _sessions(settings, kube, series)
    reviewer = Reviewer(
        settings,
        current,
        resolver,
        cluster=cluster,
        sink=sink,
        objects=objects,
        sessions=recorder,
    )
    system_reviewer = Reviewer(
        settings.for_system_entry(),
        memo.SystemViews(current),
        resolver,
        cluster=cluster,
        sink=sink,
        system=True,
        objects=objects,
        sessions=recorder,
    )
    pinner = pinning.Pinner(settings, resolver, cluster=cluster)
    return Services(
        settings,
        series,
        reviewer,
        resolver,
        policy_watch,
        reporter,
        pinner=pinner,
        system_reviewer=system_reviewer,
        configmaps=configmaps,
        session_reporter=session_reporter,
    )


def _sessions(
    settings: WebhookSettings, kube: ApiFactory | None, series: metrics.Metrics
) -> tuple[Reporter | None, sessions.Recorder | None]:
    """The exec-session recorder and its writer; none without a cluster or when disabled."""
    if kube is None or not settings.exec_sessions:
        return None, None
    writer = Reporter(
        kube,
        capacity=settings.exec_session_capacity,
        source="webhook",
        event_timeout=settings.exec_session_timeout,
    )
    series.watch_sessions(writer)
    recorder = sessions.Recorder(
        writer,
        instance=settings.pod_name or socket.gethostname(),
        rate=settings.exec_session_rate,
        burst=settings.exec_session_burst,
        authenticated=settings.caller_authenticated,
        observe=series.exec_session,
    )
    return writer, recorder


async def _stop(services: Services) -> None:
    if services.policy_watch is not None:
        services.policy_watch.stop(timeout=1.0)
    if services.configmaps is not None:
        services.configmaps.stop(timeout=1.0)
    if services.reporter is not None:
        await asyncio.to_thread(services.reporter.close, 5.0)
    if services.session_reporter is not None:
        await asyncio.to_thread(services.session_reporter.close, 1.0)
    await services.resolver.client.aclose()


class _TLSReloads(Collector):
    """Exports :data:`webhook.tls.reloads` (process-wide) as a counter."""

    def collect(self) -> Iterator[CounterMetricFamily]:
        family = CounterMetricFamily(
            "minerguard_webhook_tls_reloads", "Serving certificate reloads from disk"
        )
        family.add_metric([], tls.reloads)
        yield family
