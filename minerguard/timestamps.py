"""RFC 3339 timestamps as the API writes them, and epoch seconds as the logic counts them."""

from __future__ import annotations

import datetime
import time


def format_time(epoch: float) -> str:
    """``2026-11-23T07:43:29Z`` for an epoch time (second precision, as Kubernetes writes)."""
    return datetime.datetime.fromtimestamp(epoch, datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_time(text: object) -> float | None:
    """Epoch seconds of an RFC 3339 string; None for anything else (fields may be missing)."""
    if not isinstance(text, str) or not text:
        return None
    try:
        stamp = datetime.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    if stamp.tzinfo is None:
        stamp = stamp.replace(tzinfo=datetime.UTC)
    return stamp.timestamp()


def now() -> str:
    """The current time as the API writes it."""
    return format_time(time.time())
