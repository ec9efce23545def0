"""The Kubernetes Events the operator posts: who posts them, and about what.

Handlers never post directly: they are given an :class:`Emit` (kopf's poster in the operator,
a list in tests), so every worker can run outside a kopf event loop.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

from minerguard.api.meta import API_VERSION


class Emit(Protocol):
    """Posts a Kubernetes Event about an object (kopf's poster in the operator)."""

    def __call__(self, obj: Mapping[str, Any], type_: str, reason: str, message: str) -> None:
        """Queue the Event; never blocks the caller."""


def policy_ref(name: str, uid: str | None = None) -> dict[str, Any]:
    """A MinerPolicy as the object of an Event (the uid, when known, pins the generation)."""
    metadata = {"name": name, "uid": uid} if uid else {"name": name}
    return {"apiVersion": API_VERSION, "kind": "MinerPolicy", "metadata": metadata}
