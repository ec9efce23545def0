"""In-cluster mode: not implemented yet (needs pod lookup and MinerDetection writes).

Waiting on ``minerguard.kube`` for a node-scoped pod list/watch and create calls; until then
the agent refuses to start without ``--standalone`` instead of running half-configured.
"""

from __future__ import annotations

import logging

from node_agent.settings import AgentSettings

log = logging.getLogger(__name__)
EXIT_UNSUPPORTED = 3


def run(settings: AgentSettings) -> int:
    """Report that in-cluster mode is unavailable and return a non-zero exit code."""
    log.error(
        "in-cluster mode is not implemented yet (node %s); run with --standalone",
        settings.node_name or "unknown",
    )
    return EXIT_UNSUPPORTED
