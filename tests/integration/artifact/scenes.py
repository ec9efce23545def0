"""What the artifact tests feed the components and ask them, for the wheel and the image alike."""

from __future__ import annotations

import httpx

from tests.integration.webhook.reviews import container, pod

POOL = "stratum+tcp://127.0.0.1:3333"
MINER_POD = pod(container("alpine", name="miner", command=["xmrig", "-o", POOL]), name="miner")
WEB_POD = pod(container("nginx:1.27", name="web"), name="web")
MINER_ARGS = ["-c", "import time; time.sleep(120)", "-o", POOL, "--donate-level=1"]
"""A Python process that sleeps with a miner's command line: no traffic, nothing computed."""


def ready(webhook: httpx.Client) -> bool:
    """Whether the webhook answers ``/readyz`` (its policies are loaded)."""
    try:
        return webhook.get("/readyz").status_code == 200
    except httpx.TransportError:
        return False
