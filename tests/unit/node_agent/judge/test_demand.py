"""CPU demand and the pure-compute profile, scored as the rules say."""

from __future__ import annotations

from node_agent.judge import scoring
from node_agent.kernel import cgroups, procfs
from node_agent.kernel.cgroups import CgroupSample

DEFAULT = scoring.Thresholds()
POOL = scoring.ProcessFacts(pool_ports=("10.0.0.1:3333",))
NOTHING = scoring.ProcessFacts()
HIDDEN = scoring.ProcessFacts(hidden_code="pid 7 (python3) reads its program from stdin (pipe:[1])")


def demand_state(
    intervals: int,
    *,
    cores: float = 1.0,
    run: float = 0.1,
    syscalls: float = 0.0,
    voluntary: float = 0.0,
    first_since_start: bool = True,
) -> scoring.ContainerState:
    """A container whose busiest process was runnable ``cores`` and ran ``run`` per second."""
    state = scoring.ContainerState()
    for index in range(intervals):
        since = first_since_start and index == 0
        state = scoring.advance_demand(
            state,
            scoring.Demand(
                end=5.0 * (index + 1),
                seconds=5.0,
                cores=cores,
                run_cores=run,
                syscalls_per_s=syscalls,
                voluntary_per_s=voluntary,
                io_per_s=0.0,
                since_start=since,
            ),
            1.0,
            DEFAULT,
        )
    return state


def signals(result: scoring.BehaviourScore) -> set[str]:
    return {r.signal for r in result.reasons}


def test_a_miner_getting_a_tenth_of_a_core_with_a_pool_is_detected_at_its_first_inspection() -> (
    None
):
    result = scoring.score(demand_state(1), POOL, DEFAULT, 1.0)
    assert result.over(DEFAULT)
    assert {"cpu-demand", "pool-port-connection", "demand-with-pool"} <= signals(result)


def test_demand_with_the_pure_compute_profile_but_no_pool_stays_below_the_threshold() -> None:
    result = scoring.score(demand_state(10), NOTHING, DEFAULT, 1.0)
    assert {"cpu-demand", "pure-compute"} <= signals(result)
    assert result.score <= scoring.CPU_SHAPE_MAX
    assert not result.over(DEFAULT)


def test_a_process_making_syscalls_or_sleeping_is_not_pure_compute() -> None:
    reading = scoring.score(demand_state(10, syscalls=80.0), NOTHING, DEFAULT, 1.0)
    sleeping = scoring.score(demand_state(10, voluntary=30.0), NOTHING, DEFAULT, 1.0)
    assert "pure-compute" not in signals(reading), "80 syscalls/s at 0.1 core: 800 per CPU-s"
    assert "pure-compute" not in signals(sleeping)


def test_the_since_start_interval_alone_never_makes_the_profile() -> None:
    assert scoring.pure_compute(demand_state(1)) is None
    assert scoring.pure_compute(demand_state(2)) is not None


def test_a_process_wanting_a_fifth_of_a_core_has_no_demand() -> None:
    result = scoring.score(demand_state(10, cores=0.2, run=0.2), POOL, DEFAULT, 1.0)
    assert "cpu-demand" not in signals(result)
    assert not result.over(DEFAULT)


def test_hidden_code_computing_flat_out_is_a_miner_without_a_pool() -> None:
    result = scoring.score(demand_state(3), HIDDEN, DEFAULT, 1.0)
    assert result.over(DEFAULT)
    assert "hidden-code-computing" in signals(result)
    assert not scoring.score(demand_state(3, syscalls=500), HIDDEN, DEFAULT, 1.0).over(DEFAULT)


def test_cgroup_v2_cpu_pressure_counts_as_demand_where_no_process_was_read() -> None:
    state = scoring.ContainerState()
    for t, usage, stall in (
        (0.0, 0, 0),
        (5.0, 2_000_000_000, 3_000_000),
        (10.0, 4_000_000_000, 6_000_000),
    ):
        sample = CgroupSample(t, usage, None, None, None, None, None, cpu_pressure_us=stall)
        state = scoring.advance(state, sample, 1.0, DEFAULT)
    found = [r for r in scoring.demand_reasons(state, 1.0, DEFAULT) if r.signal == "cpu-demand"]
    assert found
    assert "cpu.pressure" in found[0].detail


def test_kernel_counter_files_parse() -> None:
    assert procfs.parse_schedstat("407757514 1497309925 41\n") == (407757514, 1497309925)
    assert procfs.parse_schedstat("garbage") == (0, 0)
    status = "Name:\tx\nvoluntary_ctxt_switches:\t13\nnonvoluntary_ctxt_switches:\t28\n"
    assert procfs.parse_switches(status) == (13, 28)
    io = "rchar: 1\nwchar: 2\nsyscr: 495\nsyscw: 27\nread_bytes: 4096\nwrite_bytes: 0\n"
    assert procfs.parse_io(io) == (522, 4096)
    assert procfs.parse_io("") == (None, None)
    psi = "some avg10=1.00 avg60=0.50 avg300=0.10 total=123456\n"
    psi += "full avg10=0 avg60=0 avg300=0 total=9\n"
    assert cgroups.parse_pressure_total(psi) == 123456
    assert cgroups.parse_pressure_total(None) is None
