"""The circuit breaker counts destructive actions per policy and opens for a full window."""

from __future__ import annotations

from minerguard.api.policy import RateLimit
from minerguard_operator.decide.breaker import CircuitBreaker


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_actions_within_the_limit_are_allowed_and_the_next_trips_once() -> None:
    clock = Clock()
    breaker = CircuitBreaker(clock)
    limit = RateLimit(max_actions=2, window_seconds=60)
    assert breaker.admit("p", "a", limit).allowed
    assert breaker.admit("p", "b", limit).allowed
    tripped = breaker.admit("p", "c", limit)
    assert (tripped.allowed, tripped.tripped, tripped.open_until) == (False, True, 1060.0)
    again = breaker.admit("p", "d", limit)
    assert (again.allowed, again.tripped) == (False, False)
    assert breaker.open_until("p") == 1060.0


def test_the_same_detection_is_counted_once() -> None:
    breaker = CircuitBreaker(Clock())
    limit = RateLimit(max_actions=1, window_seconds=60)
    assert breaker.admit("p", "a", limit).allowed
    assert breaker.admit("p", "a", limit).allowed


def test_the_circuit_closes_after_the_window_and_old_actions_age_out() -> None:
    clock = Clock()
    breaker = CircuitBreaker(clock)
    limit = RateLimit(max_actions=1, window_seconds=60)
    breaker.admit("p", "a", limit)
    assert not breaker.admit("p", "b", limit).allowed
    clock.now += 61
    assert breaker.open_until("p") is None
    assert breaker.admit("p", "c", limit).allowed


def test_policies_have_separate_circuits() -> None:
    breaker = CircuitBreaker(Clock())
    limit = RateLimit(max_actions=1, window_seconds=60)
    breaker.admit("p", "a", limit)
    assert not breaker.admit("p", "b", limit).allowed
    assert breaker.admit("q", "b", limit).allowed


def test_history_and_an_open_circuit_are_restored_after_a_restart() -> None:
    clock = Clock()
    breaker = CircuitBreaker(clock)
    breaker.observe("p", "old", 990.0)
    assert not breaker.admit("p", "new", RateLimit(max_actions=1, window_seconds=60)).allowed
    other = CircuitBreaker(clock)
    other.restore("q", 2000.0)
    assert not other.admit("q", "x", RateLimit(max_actions=5, window_seconds=60)).allowed


def test_changing_the_limit_closes_the_circuit() -> None:
    breaker = CircuitBreaker(Clock())
    breaker.admit("p", "a", RateLimit(max_actions=1, window_seconds=60))
    assert not breaker.admit("p", "b", RateLimit(max_actions=1, window_seconds=60)).allowed
    assert breaker.admit("p", "b", RateLimit(max_actions=5, window_seconds=60)).allowed


def test_zero_actions_means_alert_only() -> None:
    assert not CircuitBreaker(Clock()).admit("p", "a", RateLimit(max_actions=0)).allowed
