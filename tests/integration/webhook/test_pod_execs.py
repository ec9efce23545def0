"""Probes and lifecycle hooks through the real server: judged, named, and never memo-shared."""

from __future__ import annotations

import pytest

from tests.integration.webhook.conftest import POOL, ServerFactory
from tests.integration.webhook.reviews import container, pod, review

pytestmark = pytest.mark.slow


def web(probe: list[str]) -> dict[str, object]:
    return pod(
        container(
            "nginx:1.27",
            command=["nginx", "-g", "daemon off;"],
            livenessProbe={"exec": {"command": probe}},
            lifecycle={"preStop": {"exec": {"command": ["nginx", "-s", "quit"]}}},
        )
    )


def test_a_miner_in_a_liveness_probe_is_denied_and_a_benign_probe_is_not(
    serve: ServerFactory,
) -> None:
    server = serve()
    healthy = web(["cat", "/tmp/healthy"])
    assert server.review(review(healthy))["allowed"] is True
    mining = web(["sh", "-c", f"xmrig -o {POOL} --donate-level 1"])
    denied = server.review(review(mining))
    assert denied["allowed"] is False
    assert (
        'container "app" livenessProbe exec would run a cryptominer'
        in (denied["status"]["message"])
    )
    assert server.review(review(healthy))["allowed"] is True  # the same pod but its probe
