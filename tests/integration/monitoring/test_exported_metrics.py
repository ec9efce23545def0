"""Every series the chart's alerts and dashboard read is exported, after real traffic.

The webhook, the operator and the agent run as ``minerguard <component>`` runs them, each made to
do what brings its labelled series into being (a labelled series exists only once observed):
the webhook answers AdmissionReviews over TLS, the operator deletes a pod and trips a policy's
rate limit, the agent judges a renamed miner in a pod on its node. Their ``/metrics`` are then
held against every query in the rendered PrometheusRule and dashboard: each metric it names is
served (by the component its ``job`` matcher names, where it names one), and each label it
matches or groups by is on those series.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping

import pytest

from tests.integration.monitoring import components, queries
from tests.integration.monitoring.components import Scrape
from tests.integration.node_agent.conftest import require_root
from tests.kube_emulator import EmulatorThread

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]

QUERIES = queries.chart_queries()


def _component_label(label: str) -> str:
    """The label as the component exports it (the scrape renames a clash `exported_*`)."""
    return label.removeprefix("exported_")


def unexported(query: queries.Query, scrapes: Mapping[str, Scrape]) -> list[str]:
    """What `query` reads that the scraped components do not export; [] when all is there."""
    found: list[str] = []
    carried: set[str] = set()
    read_any = False
    for selector in query.selectors:
        if selector.metric in queries.SYNTHETIC:
            continue
        read_any = True
        job = selector.equals("job")
        if job is not None and job not in scrapes:
            found.append(f"{selector.metric}: no component is scraped as job={job!r}")
            continue
        sources = {job: scrapes[job]} if job is not None else scrapes
        series = [
            labels for scrape in sources.values() for labels, _ in scrape.get(selector.metric, [])
        ]
        from_where = f"the {job}" if job is not None else "any component"
        if not series:
            found.append(f"{selector.metric} is not exported by {from_where}")
            continue
        names = {name for labels in series for name in labels}
        carried |= names
        for label, operator, value in selector.matchers:
            if label in queries.TARGET_LABELS or label == "__name__":
                continue
            exported = _component_label(label)
            if exported not in names:
                found.append(f"{selector.metric} has no label {exported!r}")
            elif operator == "=" and not any(s.get(exported) == value for s in series):
                found.append(f"{selector.metric} has no series with {exported}={value!r}")
    if read_any and not found:  # grouping is judged on the series that exist
        for label in sorted(query.grouping - queries.TARGET_LABELS):
            if _component_label(label) not in carried:
                found.append(f"groups by {label!r}, which no series it reads carries")
    return found


@pytest.fixture(scope="module")
def emulator() -> Iterator[EmulatorThread]:
    with EmulatorThread() as running:
        yield running


@pytest.fixture(scope="module")
def webhook(tmp_path_factory: pytest.TempPathFactory) -> Scrape:
    return components.webhook_after_reviews(tmp_path_factory.mktemp("webhook"))


@pytest.fixture(scope="module")
def operator(emulator: EmulatorThread, tmp_path_factory: pytest.TempPathFactory) -> Scrape:
    return components.operator_after_enforcing(emulator.url, tmp_path_factory.mktemp("operator"))


@pytest.fixture(scope="module")
def agent(emulator: EmulatorThread, tmp_path_factory: pytest.TempPathFactory) -> Scrape:
    require_root("the agent's proc connector and kubelet-shaped cgroups")
    return components.agent_after_a_detection(emulator.url, tmp_path_factory.mktemp("agent"))


@pytest.fixture(scope="module")
def exported(webhook: Scrape, operator: Scrape, agent: Scrape) -> dict[str, Scrape]:
    """Each component's /metrics after its traffic, by the job name its ServiceMonitor gives."""
    return {"webhook": webhook, "operator": operator, "agent": agent}


@pytest.mark.root
@pytest.mark.parametrize("query", QUERIES, ids=[q.where for q in QUERIES])
def test_every_series_a_chart_query_reads_is_exported(
    query: queries.Query, exported: dict[str, Scrape]
) -> None:
    assert unexported(query, exported) == [], query.expr


@pytest.mark.root
@pytest.mark.parametrize(
    ("expr", "reported"),
    [
        (
            "rate(minerguard_webhook_requests_total[5m])",
            "minerguard_webhook_requests_total is not exported by any component",
        ),
        (
            "histogram_quantile(0.99, sum by (le) "
            "(rate(minerguard_webhook_request_duration_seconds_bucket[5m])))",
            "minerguard_webhook_request_duration_seconds_bucket is not exported by any component",
        ),
        (
            "increase(minerguard_rate_limit_trips_total[10m])",
            "minerguard_rate_limit_trips_total is not exported by any component",
        ),
        (
            'rate(process_cpu_seconds_total{job="agent"}[5m])',
            "process_cpu_seconds_total is not exported by the agent",
        ),
        (
            "sum by (action, result) (increase(minerguard_operator_actions_total[5m]))",
            "groups by 'result', which no series it reads carries",
        ),
        (
            'minerguard_webhook_reviews_total{verdict="rejected"}',
            "minerguard_webhook_reviews_total has no series with verdict='rejected'",
        ),
    ],
)
def test_what_the_chart_used_to_read_is_reported_missing(
    expr: str, reported: str, exported: dict[str, Scrape]
) -> None:
    assert unexported(queries.Query("the chart before issue 10", expr), exported) == [reported]
