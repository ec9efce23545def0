from collections.abc import Callable

import pytest

from node_agent.judge import scoring
from node_agent.kernel.cgroups import CgroupSample
from node_agent.records import Reason

DEFAULT = scoring.Thresholds()
POOL = scoring.ProcessFacts(pool_ports=("10.0.0.1:3333",))
NOTHING = scoring.ProcessFacts()


def run(
    cores_at: Callable[[float], float],
    seconds: float,
    step: float = 5.0,
    quota: float | None = None,
    thresholds: scoring.Thresholds = DEFAULT,
    io_per_s: float = 0.0,
    throttled: Callable[[float], bool] = lambda _t: False,
) -> list[tuple[float, scoring.ContainerState]]:
    """Feed samples of a container whose CPU use is ``cores_at(t)``; return the states."""
    state = scoring.ContainerState()
    usage = 0.0
    io = 0.0
    periods = throttles = 0
    out = []
    t = 0.0
    while t <= seconds:
        sample = CgroupSample(
            taken_at=t,
            cpu_usage_ns=int(usage),
            nr_periods=periods,
            nr_throttled=throttles,
            throttled_ns=0,
            memory_bytes=64 << 20,
            io_bytes=int(io),
        )
        state = scoring.advance(state, sample, quota, thresholds)
        out.append((t, state))
        usage += cores_at(t) * step * 1e9
        io += io_per_s * step
        periods += int(step * 10)
        throttles += int(step * 10) if throttled(t) else 0
        t += step
    return out


def first_detection(
    states: list[tuple[float, scoring.ContainerState]], facts: scoring.ProcessFacts
) -> float | None:
    for t, state in states:
        if scoring.score(state, facts, DEFAULT).over(DEFAULT):
            return t
    return None


def test_an_unthrottled_miner_talking_to_a_pool_port_is_detected_within_30_seconds() -> None:
    states = run(lambda _t: 1.0, 60)
    detected = first_detection(states, POOL)
    assert detected is not None
    assert detected <= 30


def test_flat_busy_cpu_without_any_other_evidence_never_reaches_the_threshold() -> None:
    states = run(lambda _t: 1.0, 600)
    result = scoring.score(states[-1][1], NOTHING, DEFAULT)
    assert result.score <= scoring.CPU_SHAPE_MAX
    assert not result.over(DEFAULT)
    assert {r.signal for r in result.reasons} >= {"cpu-saturated", "cpu-flat", "little-disk-io"}


def test_a_throttled_numeric_loop_stays_below_the_threshold() -> None:
    states = run(lambda _t: 0.2, 600, quota=0.2, throttled=lambda _t: True)
    result = scoring.score(states[-1][1], NOTHING, DEFAULT)
    assert "cpu-throttled" in {r.signal for r in result.reasons}
    assert not result.over(DEFAULT)


def test_a_duty_cycled_miner_keeps_its_score_through_the_off_phase() -> None:
    def duty(t: float) -> float:
        return 1.0 if t % 340 < 250 else 0.0

    states = run(duty, 1400)
    scores = [scoring.score(s, POOL, DEFAULT).score for t, s in states if t > 250]
    assert min(scores) >= DEFAULT.score_threshold
    after_off = [s.busy_seconds for t, s in states if 335 <= t < 340]
    assert after_off
    assert after_off[0] > 0


def test_a_self_capped_miner_at_60_percent_of_its_quota_counts_as_busy_and_flat() -> None:
    states = run(lambda _t: 0.6, 120, quota=1.0)
    result = scoring.score(states[-1][1], POOL, DEFAULT)
    assert "cpu-self-capped" in {r.signal for r in result.reasons}
    assert result.over(DEFAULT)


def test_bursty_half_load_is_neither_saturated_nor_self_capped() -> None:
    states = run(lambda t: 0.55 if int(t / 5) % 2 else 0.95, 120, quota=1.0)
    signals = {r.signal for r in scoring.score(states[-1][1], NOTHING, DEFAULT).reasons}
    assert "cpu-self-capped" not in signals
    assert "cpu-flat" not in signals


def test_heavy_disk_io_removes_the_quiet_disk_signal() -> None:
    states = run(lambda _t: 1.0, 120, io_per_s=50 << 20)
    signals = {r.signal for r in scoring.score(states[-1][1], NOTHING, DEFAULT).reasons}
    assert "little-disk-io" not in signals


def test_an_idle_container_scores_zero_even_with_a_long_lived_connection() -> None:
    states = run(lambda _t: 0.01, 300)
    facts = scoring.ProcessFacts(long_lived=("10.0.0.5:5432",))
    result = scoring.score(states[-1][1], facts, DEFAULT)
    assert result.score == scoring.W_LONG_LIVED


def test_masquerade_evidence_is_capped_so_it_cannot_detect_alone() -> None:
    facts = scoring.ProcessFacts(
        masquerade=(
            Reason("kernel-thread-name", "x", 0.5),
            Reason("memfd-executable", "y", 0.5),
            Reason("hidden-directory", "z", 0.25),
        )
    )
    result = scoring.score(scoring.ContainerState(), facts, DEFAULT)
    assert result.score == scoring.MASQUERADE_MAX
    assert not result.over(DEFAULT)


def test_a_busy_launcher_masquerading_as_a_kernel_thread_is_detected_without_network() -> None:
    states = run(lambda _t: 1.0, 60)
    facts = scoring.ProcessFacts(
        launcher="pid 5 runs on after its parent 4 exited",
        masquerade=(Reason("kernel-thread-name", "calls itself kworker", 0.5),),
    )
    result = scoring.score(states[-1][1], facts, DEFAULT)
    assert result.over(DEFAULT)
    assert next(r.signal for r in result.reasons) == "kernel-thread-name"


def test_every_reason_names_a_signal_and_says_what_was_seen() -> None:
    states = run(lambda _t: 1.0, 60)
    result = scoring.score(states[-1][1], POOL, DEFAULT)
    assert all(r.signal and r.detail and r.weight > 0 for r in result.reasons)
    assert result.mean_fraction == pytest.approx(1.0), "one full core with no quota"


def test_a_counter_reset_restarts_from_the_new_sample_instead_of_going_negative() -> None:
    state = scoring.ContainerState()
    for t, usage in ((0.0, 10_000_000_000), (5.0, 15_000_000_000), (10.0, 1_000)):
        sample = CgroupSample(t, usage, None, None, None, None, None)
        state = scoring.advance(state, sample, None, DEFAULT)
    assert state.last is not None
    assert state.last.cpu_usage_ns == 1_000
    # Only the interval before the reset: none spans it, so none is negative.
    assert [(i.end, i.cores) for i in state.recent] == [(5.0, 1.0)]
