"""What the chart's queries select exists on the chart's side: jobs, ports, documented names.

The ``job`` a query selects is the one a ServiceMonitor gives (its ``jobLabel`` read from the
Service it scrapes), on a port that Service has; the chart README's metric table names exactly
the metrics the queries read. The PromQL reader the monitoring tests rely on is checked here too.
"""

from __future__ import annotations

import re

import pytest

from tests.integration.chart import chart
from tests.integration.monitoring import queries
from tests.integration.monitoring.queries import Selector

README = chart.CHART / "README.md"


def test_the_reader_finds_selectors_matchers_and_grouping_labels() -> None:
    selectors, grouping = queries.parse(
        'histogram_quantile(0.99, sum by (le) (rate(a_bucket{namespace="x", kind=~"Pod|Job"}'
        "[5m]))) > 5 or max without (pod) (b offset 10m) * on (instance) group_left (node) "
        'c{__name__="c", job="agent"} unless absent(up{job="agent"})'
    )
    assert selectors == (
        Selector("a_bucket", (("namespace", "=", "x"), ("kind", "=~", "Pod|Job"))),
        Selector("b"),
        Selector("c", (("__name__", "=", "c"), ("job", "=", "agent"))),
        Selector("up", (("job", "=", "agent"),)),
    )
    assert grouping == {"le", "pod", "instance", "node"}


def test_the_reader_fills_in_grafana_variables() -> None:
    query = queries.Query("panel", 'rate(m{namespace="$namespace"}[$__rate_interval])')
    assert query.promql == 'rate(m{namespace="minerguard"}[5m])'
    assert query.selectors == (Selector("m", (("namespace", "=", "minerguard"),)),)


def test_the_reader_refuses_what_it_cannot_read() -> None:
    with pytest.raises(ValueError, match="cannot read PromQL"):
        queries.parse("rate(m[5m]) # a comment")


def _service_monitor_jobs(rendered: chart.Render) -> dict[str, set[str]]:
    """The `job` each ServiceMonitor gives its targets, and the ports it scrapes."""
    jobs: dict[str, set[str]] = {}
    services = rendered.of_kind("Service")
    for monitor in rendered.of_kind("ServiceMonitor"):
        spec = monitor.obj["spec"]
        wanted = spec["selector"]["matchLabels"]
        scraped = [
            s.obj
            for s in services
            if wanted.items() <= (s.obj["metadata"].get("labels") or {}).items()
            and s.obj["metadata"]["namespace"] in spec["namespaceSelector"]["matchNames"]
        ]
        assert len(scraped) == 1, f"ServiceMonitor {monitor.name} selects {len(scraped)} Services"
        service = scraped[0]
        job = service["metadata"]["labels"][spec["jobLabel"]]
        ports = {port["name"] for port in service["spec"]["ports"]}
        endpoints = {endpoint["port"] for endpoint in spec["endpoints"]}
        assert endpoints <= ports, f"{monitor.name} scrapes {endpoints}, the Service has {ports}"
        jobs.setdefault(job, set()).update(endpoints)
    return jobs


def test_every_job_a_query_selects_is_a_job_a_service_monitor_gives() -> None:
    rendered = queries.monitoring_render()
    selected = {
        job
        for query in queries.chart_queries()
        for selector in query.selectors
        if (job := selector.equals("job")) is not None
    }
    assert selected == {"webhook", "agent", "operator"}
    assert set(_service_monitor_jobs(rendered)) == selected


@pytest.mark.parametrize("profile", chart.PROFILES)
def test_the_service_monitors_scrape_a_port_of_the_service_they_select(profile: str) -> None:
    values = chart.profile_values(profile)
    values.setdefault("metrics", {}).setdefault("serviceMonitor", {})["enabled"] = True
    namespace = "security" if profile == "custom-namespace" else chart.NAMESPACE
    jobs = _service_monitor_jobs(chart.render(values, namespace=namespace))
    enabled = {"webhook"} | {
        c for c in ("agent", "operator") if values.get(c, {}).get("enabled", 1)
    }
    assert set(jobs) == enabled


def test_the_chart_readme_lists_the_metrics_the_chart_reads() -> None:
    section = README.read_text().split("## Monitoring", 1)[1].split("\n## ", 1)[0]
    listed = set(re.findall(r"^\| `([a-z_:]+)`", section, flags=re.MULTILINE))
    read = {
        queries.family(selector.metric)
        for query in queries.chart_queries()
        for selector in query.selectors
        if selector.metric not in queries.SYNTHETIC
    }
    assert listed == read
