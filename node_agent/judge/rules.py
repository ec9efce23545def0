"""The behaviour scoring rules, read once from ``data/behaviour_rules.yaml``.

The weights are data, like the admission signatures' bundle: what each behaviour signal adds,
the caps on groups of them (CPU shape alone, masquerade alone) and the combinations that add
weight only together (demand with a pool connection, hidden code computing flat out). The
checks that decide whether a signal fired stay in code (``scoring``); changing how much it
counts is an edit here. The file is validated on load: an unknown signal in a combination, a
weight outside [0, 2] or a duplicate name is refused at import, not at the first detection.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from importlib import resources
from typing import Any

import yaml

from node_agent import errors
from node_agent.records import Reason

MAX_WEIGHT = 2.0


@dataclass(frozen=True, slots=True)
class Signal:
    """One behaviour signal: its weight, its cap group and whether it ramps in."""

    name: str
    weight: float
    group: str | None
    ramped: bool
    why: str


@dataclass(frozen=True, slots=True)
class Combination:
    """Extra weight when, for every group in ``all_of``, one of its signals fired."""

    name: str
    all_of: tuple[frozenset[str], ...]
    weight: float
    why: str

    def fires(self, fired: frozenset[str]) -> bool:
        """Whether every group has a fired signal."""
        return all(group & fired for group in self.all_of)


@dataclass(frozen=True, slots=True)
class Rules:
    """Signals by name, group caps and combinations."""

    signals: dict[str, Signal]
    caps: dict[str, float]
    combinations: tuple[Combination, ...]

    def weight(self, name: str) -> float:
        """The full weight of signal ``name``."""
        return self.signals[name].weight

    def total(self, reasons: list[Reason]) -> list[Reason]:
        """``reasons`` capped per group, followed by the combinations they fire.

        Within a group the strongest reasons keep their weight first.
        """
        used: dict[str, float] = {}
        out: list[Reason] = []
        for reason in sorted(reasons, key=lambda r: -r.weight):
            signal = self.signals.get(reason.signal)
            group = signal.group if signal else None
            if group is None or group not in self.caps:
                out.append(reason)
                continue
            room = round(self.caps[group] - used.get(group, 0.0), 6)
            weight = min(reason.weight, max(room, 0.0))
            used[group] = used.get(group, 0.0) + weight
            out.append(Reason(reason.signal, reason.detail, round(weight, 6)))
        fired = frozenset(r.signal for r in reasons if r.weight > 0)
        for combination in self.combinations:
            if combination.fires(fired):
                out.append(Reason(combination.name, combination.why, combination.weight))
        return out


def _weight(value: Any, where: str) -> float:
    if not isinstance(value, int | float) or isinstance(value, bool):
        raise errors.AgentError(f"{where}: weight must be a number")
    if not 0 <= value <= MAX_WEIGHT:
        raise errors.AgentError(f"{where}: weight {value} outside [0, {MAX_WEIGHT}]")
    return float(value)


def parse(document: Any) -> Rules:
    """Validate a rules document (the YAML's mapping); raises AgentError naming the entry."""
    if not isinstance(document, dict) or document.get("version") != 1:
        raise errors.AgentError("behaviour rules: expected a mapping with version: 1")
    caps = {str(k): _weight(v, f"caps.{k}") for k, v in (document.get("caps") or {}).items()}
    signals: dict[str, Signal] = {}
    for index, raw in enumerate(document.get("signals") or []):
        where = f"signals[{index}]"
        if not isinstance(raw, dict) or not isinstance(raw.get("name"), str):
            raise errors.AgentError(f"{where}: needs a name")
        name = raw["name"]
        if name in signals:
            raise errors.AgentError(f"{where}: duplicate signal {name!r}")
        group = raw.get("group")
        if group is not None and group not in caps:
            raise errors.AgentError(f"{where}: group {group!r} has no cap")
        signals[name] = Signal(
            name=name,
            weight=_weight(raw.get("weight"), where),
            group=group,
            ramped=bool(raw.get("ramped", False)),
            why=str(raw.get("why", "")),
        )
    combinations: list[Combination] = []
    for index, raw in enumerate(document.get("combinations") or []):
        where = f"combinations[{index}]"
        if not isinstance(raw, dict) or not isinstance(raw.get("all_of"), list):
            raise errors.AgentError(f"{where}: needs all_of")
        groups: list[frozenset[str]] = []
        for group in raw["all_of"]:
            names = frozenset(str(n) for n in (group if isinstance(group, list) else [group]))
            unknown = names - signals.keys()
            if unknown or not names:
                raise errors.AgentError(f"{where}: unknown signals {sorted(unknown)}")
            groups.append(names)
        combinations.append(
            Combination(
                name=str(raw.get("name", where)),
                all_of=tuple(groups),
                weight=_weight(raw.get("weight"), where),
                why=str(raw.get("why", "")),
            )
        )
    return Rules(signals=signals, caps=caps, combinations=tuple(combinations))


@functools.cache
def builtin() -> Rules:
    """The rules shipped with the agent (``node_agent/judge/data/behaviour_rules.yaml``)."""
    text = resources.files("node_agent.judge").joinpath("data/behaviour_rules.yaml").read_text()
    return parse(yaml.safe_load(text))
