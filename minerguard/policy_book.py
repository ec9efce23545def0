"""MinerPolicies as last seen, compiled once per generation; shared by every component.

A policy whose new generation does not compile keeps its last good version in force (a typo
never switches protection off) and its error is kept for the operator to report. The webhook
and agents feed it from a watch (:mod:`minerguard.kube.policy_watch`), the operator from kopf.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from minerguard.compiled_policy import CompiledPolicy, compile_policy, parse_policy
from minerguard.errors import PolicyError


@dataclass(frozen=True, slots=True)
class PolicyState:
    """A policy's usable version and what is wrong with its latest generation, if anything."""

    name: str
    generation: int | None
    compiled: CompiledPolicy | None
    error: str | None


def _quarantined(body: Mapping[str, Any]) -> frozenset[str]:
    status = body.get("status")
    items = status.get("quarantinedImages") if isinstance(status, Mapping) else None
    return frozenset(
        str(item.get("digest"))
        for item in (items if isinstance(items, list) else ())
        if isinstance(item, Mapping)
    )


def _enforcement(body: Mapping[str, Any]) -> object:
    """``status.network.enforcement``: the agents read it, so a new report recompiles."""
    status = body.get("status")
    network = status.get("network") if isinstance(status, Mapping) else None
    return network.get("enforcement") if isinstance(network, Mapping) else None


class PolicyBook:
    """Thread-safe name → :class:`PolicyState`, fed with raw MinerPolicy bodies."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._states: dict[str, PolicyState] = {}
        self._keys: dict[str, tuple[object, ...]] = {}

    def update(self, body: Mapping[str, Any]) -> PolicyState:
        """Compile a policy body unless this generation was already compiled."""
        raw_metadata = body.get("metadata")
        metadata = raw_metadata if isinstance(raw_metadata, Mapping) else {}
        name = str(metadata.get("name") or "")
        generation = metadata.get("generation")
        key = (metadata.get("uid"), generation, _quarantined(body), _enforcement(body))
        with self._lock:
            if self._keys.get(name) == key and name in self._states:
                return self._states[name]
        previous = self.get(name)
        try:
            compiled = compile_policy(parse_policy(dict(body), f"MinerPolicy/{name}"))
        except PolicyError as err:
            keep = previous.compiled if previous else None
            state = PolicyState(name, generation, keep, str(err))
        else:
            state = PolicyState(name, generation, compiled, None)
        with self._lock:
            self._states[name] = state
            self._keys[name] = key
        return state

    def remove(self, name: str) -> None:
        """Forget a deleted policy."""
        with self._lock:
            self._states.pop(name, None)
            self._keys.pop(name, None)

    def get(self, name: str) -> PolicyState | None:
        """The state of one policy."""
        with self._lock:
            return self._states.get(name)

    def compiled(self) -> tuple[CompiledPolicy, ...]:
        """The usable version of every policy, by name."""
        with self._lock:
            states = sorted(self._states.values(), key=lambda state: state.name)
        return tuple(state.compiled for state in states if state.compiled is not None)

    def errors(self) -> dict[str, str]:
        """Policy name -> why its latest generation does not compile."""
        with self._lock:
            return {name: s.error for name, s in self._states.items() if s.error}

    def names(self) -> list[str]:
        """Known policy names, sorted."""
        with self._lock:
            return sorted(self._states)

    def invalid(self) -> int:
        """How many policies' latest generation failed to compile."""
        with self._lock:
            return sum(1 for s in self._states.values() if s.error)
