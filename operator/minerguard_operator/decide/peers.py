"""Whether this operator replica is the active one, by kopf's peering rules.

kopf pauses a replica's handlers while a live peer with a higher priority exists. The
operator's own background loop (expiry, counts) is not a kopf handler, so it applies the same
rule to the peering object's ``status`` (``{identity: {priority, lifetime, lastseen}}``) and
stands by when kopf would.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from minerguard.timestamps import parse_time


def active(status: Mapping[str, Any], me: str, priority: int, now: float) -> bool:
    """True unless another live peer has a higher priority."""
    for identity, peer in status.items():
        if identity == me or not isinstance(peer, Mapping):
            continue
        seen = parse_time(peer.get("lastseen"))
        lifetime = peer.get("lifetime", 60)
        if seen is None or not isinstance(lifetime, int | float) or seen + lifetime <= now:
            continue  # dead (kopf cleans it up)
        other = peer.get("priority", 0)
        if isinstance(other, int) and other > priority:
            return False
    return True
