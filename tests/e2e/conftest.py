"""End-to-end fixtures: skip, saying why, where no cluster with minerguard is reachable."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from kubernetes import client, config

from tests.e2e import cluster


@pytest.fixture(scope="session")
def api() -> Iterator[client.ApiClient]:
    """A client for the kube context's cluster; skips the suite when there is none."""
    load: Any = config.load_kube_config  # untyped in the client
    try:
        load()
    except (config.ConfigException, OSError) as err:
        pytest.skip(f"no Kubernetes cluster: no usable kube context ({err}); run hack/e2e.sh")
    api_client = client.ApiClient()
    try:
        client.VersionApi(api_client).get_code(_request_timeout=5)
    except Exception as err:  # any failure to connect means "no cluster here"
        host = api_client.configuration.host
        pytest.skip(f"no Kubernetes cluster: {host} is unreachable ({type(err).__name__})")
    yield api_client
    closing: Any = api_client
    closing.close()


@pytest.fixture(scope="session")
def installed(api: client.ApiClient) -> client.ApiClient:
    """The cluster, once minerguard's webhook configuration is known to be installed."""
    selector = f"app.kubernetes.io/instance={cluster.release()}"
    admission = cluster.typed_api(client.AdmissionregistrationV1Api, api)
    found = admission.list_validating_webhook_configuration(label_selector=selector)
    if not found.items:
        pytest.skip(f"minerguard is not installed (no webhook configuration with {selector})")
    return api


@pytest.fixture
def case(request: pytest.FixtureRequest, installed: client.ApiClient) -> Iterator[cluster.Case]:
    """The data folder named by the test's `case` marker, applied into a fresh namespace."""
    marker = request.node.get_closest_marker("case")
    assert marker is not None, "an e2e test using `case` needs @pytest.mark.case('<folder>')"
    applied = cluster.Case(str(marker.args[0]), installed)
    applied.set_up()
    yield applied
    applied.tear_down()


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "case(name): the tests/data/e2e/<name>/ folder a test runs")
