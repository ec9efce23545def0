"""A per-policy circuit breaker on destructive actions.

A false-positive storm (a bad signature, a noisy node) must not delete half the cluster: once a
policy has acted ``maxActions`` times within ``windowSeconds``, the circuit opens for one full
window and detections are only alerted on. The history is keyed by detection, so retrying the
same detection never counts twice, and it is rebuilt after a restart from the detections
themselves (``status.actedAt``) and from the policy's ``status.circuitOpenUntil``.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from minerguard.api.policy import RateLimit


@dataclass(frozen=True, slots=True)
class Admission:
    """Whether one destructive action may go ahead."""

    allowed: bool
    tripped: bool = False
    """This call opened the circuit (say so once: an Event and the policy status)."""
    open_until: float | None = None


@dataclass
class _Circuit:
    acted: dict[str, float] = field(default_factory=dict)
    open_until: float | None = None
    limit: RateLimit | None = None


class CircuitBreaker:
    """Counts destructive actions per policy within a sliding window; thread-safe."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._circuits: dict[str, _Circuit] = {}

    def _circuit(self, policy: str, limit: RateLimit | None) -> _Circuit:
        circuit = self._circuits.setdefault(policy, _Circuit())
        if limit is not None and circuit.limit != limit:
            if circuit.limit is not None:
                circuit.open_until = None  # a person changed the limits: judge afresh
            circuit.limit = limit
        return circuit

    def observe(self, policy: str, key: str, at: float) -> None:
        """Remember a destructive action taken earlier (idempotent per key)."""
        with self._lock:
            self._circuit(policy, None).acted.setdefault(key, at)

    def restore(self, policy: str, open_until: float | None) -> None:
        """Take over an open circuit recorded in the policy's status."""
        if open_until is None:
            return
        with self._lock:
            circuit = self._circuit(policy, None)
            if circuit.open_until is None or open_until > circuit.open_until:
                circuit.open_until = open_until

    def open_until(self, policy: str, limit: RateLimit | None = None) -> float | None:
        """When the circuit closes again; None when it is closed."""
        with self._lock:
            circuit = self._circuit(policy, limit)
            return self._open(circuit, self._clock())

    @staticmethod
    def _open(circuit: _Circuit, now: float) -> float | None:
        if circuit.open_until is not None and now >= circuit.open_until:
            circuit.open_until = None
        return circuit.open_until

    def admit(self, policy: str, key: str, limit: RateLimit) -> Admission:
        """Count one destructive action for ``key`` if the window allows it."""
        now = self._clock()
        with self._lock:
            circuit = self._circuit(policy, limit)
            horizon = now - limit.window_seconds
            for old in [k for k, at in circuit.acted.items() if at < horizon]:
                del circuit.acted[old]
            if key in circuit.acted:
                return Admission(allowed=True)
            open_until = self._open(circuit, now)
            if open_until is not None:
                return Admission(allowed=False, open_until=open_until)
            if len(circuit.acted) < limit.max_actions:
                circuit.acted[key] = now
                return Admission(allowed=True)
            circuit.open_until = now + limit.window_seconds
            return Admission(allowed=False, tripped=True, open_until=circuit.open_until)
