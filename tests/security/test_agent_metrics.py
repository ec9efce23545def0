"""The agent's /metrics is unauthenticated and on the node's network: who can reach it."""

from __future__ import annotations

import socket
import urllib.request
from typing import Any

import pytest

from node_agent.output.metrics import AgentMetrics
from node_agent.settings import AgentSettings
from tests.integration.chart import chart


def _answers(address: str, port: int) -> bool:
    try:
        with socket.create_connection((address, port), timeout=2):
            return True
    except OSError:
        return False


def test_the_agent_metrics_are_not_served_on_every_address_of_the_node() -> None:
    """With default settings, an address of the node other than the bound one gets nothing.

    127.0.0.2 stands for "another address of this host" (all of 127/8 is the host's own): a
    socket bound to 0.0.0.0 answers there, as it would on the node's public address.
    """
    metrics = AgentMetrics()
    port = metrics.serve(0, AgentSettings().metrics_address)
    try:
        assert _answers("127.0.0.1", port)
        assert not _answers("127.0.0.2", port)
    finally:
        metrics.close()


def _agent(values: dict[str, Any]) -> dict[str, Any]:
    rendered = chart.render(values)
    (daemonset,) = rendered.of_kind("DaemonSet")
    container: dict[str, Any] = daemonset.obj["spec"]["template"]["spec"]["containers"][0]
    return container


def test_the_chart_binds_agent_metrics_to_the_pod_ip_where_probe_and_scrape_reach_them() -> None:
    container = _agent({})
    env = {e["name"]: e for e in container["env"]}
    assert env["MINERGUARD_AGENT_METRICS_ADDRESS"]["valueFrom"]["fieldRef"] == {
        "fieldPath": "status.podIP"
    }
    # the kubelet probes the pod IP when no host is given: the address /metrics binds to
    assert "host" not in container["livenessProbe"]["httpGet"]
    assert container["livenessProbe"]["httpGet"]["port"] == "metrics"


def test_agent_metrics_kept_on_loopback_move_the_liveness_probe_with_them() -> None:
    container = _agent({"agent": {"metricsAddress": "127.0.0.1"}})
    env = {e["name"]: e for e in container["env"]}
    assert env["MINERGUARD_AGENT_METRICS_ADDRESS"]["value"] == "127.0.0.1"
    assert container["livenessProbe"]["httpGet"]["host"] == "127.0.0.1"


@pytest.mark.parametrize("address", ["0.0.0.0", "::"])
def test_the_chart_refuses_to_publish_agent_metrics_on_every_address(address: str) -> None:
    with pytest.raises(Exception, match="metricsAddress"):
        chart.render({"agent": {"metricsAddress": address}})


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.mark.parametrize("metrics_address", ["", "127.0.0.1"])
def test_the_rendered_liveness_probe_reaches_the_agent_metrics_where_they_bind(
    metrics_address: str,
) -> None:
    """The kubelet's httpGet goes to ``host`` or else the pod IP, on the named port: with the
    agent bound as the chart tells it, that request gets /metrics (127.0.0.1 stands in for the
    pod IP, which under hostNetwork is the node's address)."""
    pod_ip = "127.0.0.1"
    port = _free_port()
    container = _agent({"agent": {"metricsAddress": metrics_address, "metricsPort": port}})
    env = {e["name"]: e for e in container["env"]}
    variable = env["MINERGUARD_AGENT_METRICS_ADDRESS"]
    bound = (
        variable.get("value")
        or {"status.podIP": pod_ip}[variable["valueFrom"]["fieldRef"]["fieldPath"]]
    )
    settings = AgentSettings(
        metrics_address=bound, metrics_port=int(env["MINERGUARD_AGENT_METRICS_PORT"]["value"])
    )
    metrics = AgentMetrics()
    metrics.serve(settings.metrics_port or 0, settings.metrics_address)
    try:
        probe = container["livenessProbe"]["httpGet"]
        ports = {p["name"]: p["containerPort"] for p in container["ports"]}
        target = f"http://{probe.get('host', pod_ip)}:{ports[probe['port']]}{probe['path']}"
        with urllib.request.urlopen(target, timeout=5) as answer:
            assert answer.status == 200
            assert b"minerguard_agent" in answer.read()
    finally:
        metrics.close()
