"""Counters of races, drops and actions: the agent counts what it cannot help, never raises."""

from __future__ import annotations

from collections import Counter


class Counters:
    """Named monotonic counters, shown in the status line and exported as metrics."""

    __slots__ = ("_values",)

    def __init__(self) -> None:
        self._values: Counter[str] = Counter()

    def add(self, name: str, amount: int = 1) -> None:
        """Increment ``name`` by ``amount``."""
        self._values[name] += amount

    def get(self, name: str) -> int:
        """The current value of ``name`` (0 when never counted)."""
        return self._values[name]

    def snapshot(self) -> dict[str, int]:
        """A copy of every counter."""
        return dict(self._values)
