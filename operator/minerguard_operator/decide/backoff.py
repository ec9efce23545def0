"""How long to wait before retrying a handler whose API call may pass later (429, 5xx).

A retry every second, forever, is what an overloaded API server least needs, and every replica
retrying in step makes it worse. The wait grows exponentially with the attempt, up to a cap,
with jitter (a uniform factor in [0.5, 1]) so retries of many detections spread out; and a
server that said when to come back (``Retry-After``, or the Status's ``retryAfterSeconds``) is
never asked again earlier than that.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable

BASE_SECONDS = 1.0
CAP_SECONDS = 60.0

_random = secrets.SystemRandom()


def delay(
    attempt: int,
    retry_after: float | None = None,
    *,
    base: float = BASE_SECONDS,
    cap: float = CAP_SECONDS,
    jitter: Callable[[], float] = _random.random,
) -> float:
    """Seconds before retry number ``attempt + 1`` (``attempt`` counts from 0, as kopf's)."""
    ceiling = min(cap, base * 2.0 ** min(max(attempt, 0), 32))
    wait = ceiling * (0.5 + 0.5 * min(max(jitter(), 0.0), 1.0))
    if retry_after is not None:
        wait = max(wait, retry_after)
    return wait
