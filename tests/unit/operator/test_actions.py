"""The table of runtime actions: every action has one handler, one place in the order, one count."""

from __future__ import annotations

from minerguard.api.policy import RuntimeAction
from minerguard_operator import actions
from minerguard_operator.decide import planning, records


def test_every_action_the_agent_does_not_carry_out_has_a_handler() -> None:
    assert set(actions.HANDLERS) == {a for a in RuntimeAction if not a.by_agent}
    assert set(actions.HANDLERS) == set(planning.ORDER)


def test_steps_run_in_the_order_the_api_declares_them() -> None:
    assert planning.ORDER == (
        RuntimeAction.ALERT,
        RuntimeAction.ISOLATE,
        RuntimeAction.QUARANTINE_IMAGE,
        RuntimeAction.STOP_OWNER,
        RuntimeAction.DELETE_POD,
    )


def test_the_breaker_counts_every_operator_step_but_alert_even_after_a_restart() -> None:
    assert set(actions.HANDLERS) - {RuntimeAction.ALERT} == planning.DESTRUCTIVE
    for action in actions.HANDLERS:
        body = {
            "metadata": {"name": "d", "namespace": "apps"},
            "status": {"phase": "Acted", "actionsTaken": ["Alert", f"{action.value}: failed"]},
        }
        assert records.record(body).destructive is action.destructive


def test_the_agents_own_kills_do_not_count_against_the_operators_rate_limit() -> None:
    body = {
        "metadata": {"name": "d", "namespace": "apps"},
        "status": {"phase": "Acted", "actionsTaken": ["KillProcess: killed pid 42"]},
    }
    assert not records.record(body).destructive
