"""The behaviour rules are data: loaded, validated, and combined as the table says."""

from __future__ import annotations

from typing import Any

import pytest

from node_agent import errors
from node_agent.judge import rules
from node_agent.records import Reason

SIGNALS: list[dict[str, Any]] = [
    {"name": "a", "group": "g", "weight": 0.5},
    {"name": "b", "group": "g", "weight": 0.4},
    {"name": "c", "weight": 0.3},
]


def test_the_shipped_rules_load_and_keep_cpu_shape_and_masquerade_below_the_threshold() -> None:
    shipped = rules.builtin()
    assert shipped.caps["cpu"] < 1.0
    assert shipped.caps["masquerade"] < 1.0
    assert {c.name for c in shipped.combinations} >= {"demand-with-pool", "hidden-code-computing"}


def test_group_caps_keep_the_strongest_first_and_combinations_add_on_top() -> None:
    table = rules.parse(
        {
            "version": 1,
            "caps": {"g": 0.6},
            "signals": SIGNALS,
            "combinations": [{"name": "ab", "all_of": [["a"], ["c"]], "weight": 0.2}],
        }
    )
    out = table.total([Reason("a", "", 0.5), Reason("b", "", 0.4), Reason("c", "", 0.3)])
    weights = {r.signal: r.weight for r in out}
    assert weights == {"a": 0.5, "b": pytest.approx(0.1), "c": 0.3, "ab": 0.2}


@pytest.mark.parametrize(
    ("document", "complaint"),
    [
        ({"version": 2}, "version: 1"),
        ({"version": 1, "signals": [{"name": "a", "weight": 3}]}, "outside"),
        (
            {"version": 1, "signals": [{"name": "a", "weight": 1}, {"name": "a", "weight": 1}]},
            "duplicate",
        ),
        ({"version": 1, "signals": [{"name": "a", "group": "x", "weight": 1}]}, "no cap"),
        (
            {
                "version": 1,
                "signals": SIGNALS[2:],
                "combinations": [{"all_of": [["zz"]], "weight": 1}],
            },
            "unknown signals",
        ),
    ],
)
def test_a_broken_rules_document_is_refused_naming_the_entry(
    document: dict[str, Any], complaint: str
) -> None:
    with pytest.raises(errors.AgentError, match=complaint):
        rules.parse(document)
