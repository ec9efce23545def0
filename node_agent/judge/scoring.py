"""The behaviour score of a container: pure functions over cgroup samples and process facts.

Miners are flat, busy, quiet on disk and talk to a pool; busy benign work (a compile, gzip,
a numeric loop) is busy too, so CPU shape alone is capped below any sane threshold
(``CPU_SHAPE_MAX``) and a detection needs a second kind of evidence: a pool connection, a
masquerading executable, the fork-and-exit launcher pattern, code hidden from the command
line, a long-lived outbound connection, GPU use. The weights, caps and the combinations that
add weight only together live in ``data/behaviour_rules.yaml`` (``rules``).

Busy is measured as *demand*, not use: a process runnable all the time (on a CPU or waiting
in the run queue, throttled included, from its threads' schedstat) wants the CPU whether it
gets it or not, so a miner held to 0.4 of a core by a busy node or a quota still scores as
saturated. Its *profile* tells computing from working: a miner makes almost no read/write
syscalls, no disk I/O and few voluntary context switches, at a steady rate; gzip, a compile
or a hashing benchmark reading files does not look like that.

Busy time accumulates in a leaky bucket (it drains at half the rate it fills, never resets),
so a duty-cycled miner (250 s on, 90 s off) keeps its score through the off phase; a
reset-on-idle window would never see it reach the threshold.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass, replace

from node_agent.judge import rules
from node_agent.kernel.cgroups import CgroupSample
from node_agent.records import Reason

BUSY_FRACTION = 0.5
"""A container using at least half its limit (or half a core) is busy."""
DRAIN_RATE = 0.5
"""Busy seconds lost per idle second."""
FLAT_CV = 0.15
STEADY_MEMORY_CV = 0.05
LOW_IO_BYTES_PER_S = 1 << 20
THROTTLED_RATIO = 0.5
MAX_BUSY_INTERVALS = 64
GPU_BUSY_PERCENT = 50.0

PURE_SYSCALLS_PER_S = 100.0
"""Read/write-family syscalls per CPU-second actually run, at most, for a process that only
computes (per CPU-second: a process held to 0.4 of a core slows its syscalls down too)."""
PURE_VOLUNTARY_PER_S = 25.0
"""Voluntary context switches (sleeps, blocking I/O) per CPU-second run, at most."""
PURE_IO_BYTES_PER_S = 64 * 1024
PURE_CV = 0.2
"""Demand that varies less than this between intervals is a steady rate."""
DEMAND_RAMP_SECONDS = 5.0
"""Runnable seconds after which demand counts in full (at most the busy ramp)."""
MIN_AGE_SECONDS = 2.0
"""A process younger than this has no since-start demand worth reading (start-up noise)."""
MAX_DEMAND_INTERVALS = 32

INFORMATIONAL = frozenset({"launcher", "argv0-renamed", "comm-renamed"})
"""Weightless reasons kept in the evidence: how the process was launched or renamed."""

RULES = rules.builtin()
W_DEMAND = RULES.weight("cpu-demand")
W_SATURATED = RULES.weight("cpu-saturated")
W_SELF_CAPPED = RULES.weight("cpu-self-capped")
W_FLAT = RULES.weight("cpu-flat")
W_THROTTLED = RULES.weight("cpu-throttled")
W_MEMORY = RULES.weight("memory-steady")
W_LOW_IO = RULES.weight("little-disk-io")
W_PURE = RULES.weight("pure-compute")
CPU_SHAPE_MAX = RULES.caps["cpu"]
W_POOL_PORT = RULES.weight("pool-port-connection")
W_POOL_HOST = RULES.weight("pool-connection")
W_LONG_LIVED = RULES.weight("long-lived-outbound")
W_LAUNCHER = RULES.weight("fork-and-exit-launcher")
W_HIDDEN_CODE = RULES.weight("code-not-on-command-line")
W_GPU = RULES.weight("gpu-busy")
W_GPU_COMPUTE_ONLY = RULES.weight("gpu-compute-only")
GPU_SMALL_MEMORY = 2 << 30
"""GPU memory below which a busy GPU process holds only a kernel's working set, not a model."""
GPU_STEADY = 0.1
"""Relative change of GPU memory between samples below which it is static."""
MASQUERADE_MAX = RULES.caps["masquerade"]


@dataclass(frozen=True, slots=True)
class Thresholds:
    """The policy's behaviour thresholds."""

    score_threshold: float = 1.0
    window_seconds: float = 120.0
    cpu_fraction: float = 0.8

    @property
    def ramp_seconds(self) -> float:
        """Busy seconds after which CPU evidence counts in full."""
        return max(self.window_seconds / 8.0, 1.0)


@dataclass(frozen=True, slots=True)
class Interval:
    """What happened between two samples."""

    end: float
    seconds: float
    cores: float
    fraction: float
    throttled_ratio: float | None
    memory_bytes: int | None
    io_rate: float | None
    stall: float | None = None
    """Fraction of the interval some task of the cgroup waited for a CPU (v2 cpu.pressure)."""


@dataclass(frozen=True, slots=True)
class Demand:
    """What the container's busiest process did over one interval (from ``TaskCounters``).

    ``since_start`` marks the first interval of a process, measured from its start: it
    includes start-up (imports, loading), so it counts for demand but not for the profile.
    """

    end: float
    seconds: float
    cores: float
    """Runnable time per second (on a CPU or queued for one), threads summed."""
    run_cores: float
    syscalls_per_s: float | None
    voluntary_per_s: float
    io_per_s: float | None
    since_start: bool = False


@dataclass(frozen=True, slots=True)
class ContainerState:
    """Everything the score needs from the past; replaced, never mutated."""

    last: CgroupSample | None = None
    busy_seconds: float = 0.0
    busy: tuple[Interval, ...] = ()
    recent: tuple[Interval, ...] = ()
    demand_seconds: float = 0.0
    demand: tuple[Demand, ...] = ()


@dataclass(frozen=True, slots=True)
class ProcessFacts:
    """What process-level inspection found in the container, already judged by the caller."""

    pool_ports: tuple[str, ...] = ()
    pool_hosts: tuple[str, ...] = ()
    long_lived: tuple[str, ...] = ()
    launcher: str | None = None
    masquerade: tuple[Reason, ...] = ()
    gpu_percent: float | None = None
    gpu_memory_bytes: int | None = None
    gpu_memory_before: int | None = None
    """The same process's GPU memory at the previous sample (None: first seen)."""
    gpu_framework: str | None = None
    """An ML framework library the busy GPU process maps (libtorch_cuda.so...), if any."""
    hidden_code: str | None = None
    """Why the busiest process runs code that is not on its command line (None: it does not)."""


@dataclass(frozen=True, slots=True)
class BehaviourScore:
    """The score, its reasons (strongest first), and the CPU summary for evidence."""

    score: float
    reasons: tuple[Reason, ...]
    mean_fraction: float | None

    def over(self, thresholds: Thresholds) -> bool:
        """Whether this is a detection under ``thresholds``."""
        return self.score >= thresholds.score_threshold


def advance(
    state: ContainerState, sample: CgroupSample, quota_cores: float | None, thresholds: Thresholds
) -> ContainerState:
    """Fold one cgroup sample into the state."""
    last = state.last
    if last is None or last.cpu_usage_ns is None or sample.cpu_usage_ns is None:
        return replace(state, last=sample)
    seconds = sample.taken_at - last.taken_at
    if seconds <= 0 or sample.cpu_usage_ns < last.cpu_usage_ns:
        return replace(state, last=sample)  # clock or counter went back: start over from here
    cores = (sample.cpu_usage_ns - last.cpu_usage_ns) / 1e9 / seconds
    reference = quota_cores if quota_cores else 1.0
    throttled: float | None = None
    if (
        sample.nr_periods is not None
        and last.nr_periods is not None
        and sample.nr_throttled is not None
        and last.nr_throttled is not None
        and sample.nr_periods > last.nr_periods
    ):
        throttled = (sample.nr_throttled - last.nr_throttled) / (
            sample.nr_periods - last.nr_periods
        )
    io_rate: float | None = None
    if sample.io_bytes is not None and last.io_bytes is not None:
        io_rate = max(sample.io_bytes - last.io_bytes, 0) / seconds
    stall: float | None = None
    if sample.cpu_pressure_us is not None and last.cpu_pressure_us is not None:
        stall = min(max(sample.cpu_pressure_us - last.cpu_pressure_us, 0) / 1e6 / seconds, 1.0)
    interval = Interval(
        end=sample.taken_at,
        seconds=seconds,
        cores=cores,
        fraction=cores / reference,
        throttled_ratio=throttled,
        memory_bytes=sample.memory_bytes,
        io_rate=io_rate,
        stall=stall,
    )
    horizon = sample.taken_at - thresholds.window_seconds
    recent = (*(i for i in state.recent if i.end > horizon), interval)
    if interval.fraction >= BUSY_FRACTION:
        busy_seconds = min(state.busy_seconds + seconds, thresholds.window_seconds)
        busy = (*state.busy, interval)[-MAX_BUSY_INTERVALS:]
    else:
        busy_seconds = max(state.busy_seconds - DRAIN_RATE * seconds, 0.0)
        busy = state.busy if busy_seconds > 0 else ()
    return replace(state, last=sample, busy_seconds=busy_seconds, busy=busy, recent=recent)


def demand_level(quota_cores: float | None, thresholds: Thresholds) -> float:
    """Runnable cores from which a process counts as wanting the CPU.

    The policy's fraction of a core, or of the container's limit when that is smaller.
    """
    return thresholds.cpu_fraction * min(quota_cores or 1.0, 1.0)


def advance_demand(
    state: ContainerState, demand: Demand, quota_cores: float | None, thresholds: Thresholds
) -> ContainerState:
    """Fold one interval of the busiest process's demand into the state.

    Runnable seconds fill a leaky bucket like busy seconds do; a since-start interval fills
    it with the process's age, so a miner is judged at its first inspection.
    """
    horizon = demand.end - thresholds.window_seconds
    kept = (*(d for d in state.demand if d.end > horizon), demand)[-MAX_DEMAND_INTERVALS:]
    if demand.cores >= demand_level(quota_cores, thresholds):
        seconds = min(state.demand_seconds + demand.seconds, thresholds.window_seconds)
    else:
        seconds = max(state.demand_seconds - DRAIN_RATE * demand.seconds, 0.0)
    return replace(state, demand=kept, demand_seconds=seconds)


def _cv(values: list[float]) -> float | None:
    if len(values) < 3:
        return None
    mean = statistics.fmean(values)
    if mean <= 0:
        return None
    return statistics.pstdev(values) / mean


def demand_reasons(
    state: ContainerState, quota_cores: float | None, thresholds: Thresholds
) -> list[Reason]:
    """Demand (runnable, whether it ran or waited) and the pure-compute profile."""
    reasons: list[Reason] = []
    if state.demand_seconds > 0 and state.demand:
        last = state.demand[-1]
        if last.cores >= demand_level(quota_cores, thresholds):
            ramp = min(thresholds.ramp_seconds, DEMAND_RAMP_SECONDS)
            strength = min(state.demand_seconds / ramp, 1.0)
            got = f"ran {last.run_cores:.2f}" if last.run_cores < last.cores * 0.9 else "ran"
            reasons.append(
                Reason(
                    "cpu-demand",
                    f"runnable {last.cores:.2f} cores ({got}), "
                    f"wanting the CPU {state.demand_seconds:.0f}s",
                    round(W_DEMAND * strength, 3),
                )
            )
    elif state.recent and (stall := state.recent[-1].stall) is not None:
        ran = state.recent[-1].cores
        if ran + stall >= demand_level(quota_cores, thresholds):
            reasons.append(
                Reason(
                    "cpu-demand",
                    f"ran {ran:.2f} cores and waited {stall:.0%} of the time (cpu.pressure)",
                    W_DEMAND,
                )
            )
    pure = pure_compute(state)
    if pure is not None:
        reasons.append(Reason("pure-compute", pure, W_PURE))
    return reasons


def pure_compute(state: ContainerState) -> str | None:
    """Why the busiest process looks like it only computes, or None.

    Needs two intervals with the profile measured after start-up and a steady rate over all.
    """
    measured = [d for d in state.demand if not d.since_start]
    if len(measured) < 1 or len(state.demand) < 2:
        return None
    recent = measured[-4:]
    for d in recent:
        cores = max(d.run_cores, 0.05)
        if d.cores < 0.5 or d.syscalls_per_s is None or d.io_per_s is None:
            return None
        if d.syscalls_per_s > PURE_SYSCALLS_PER_S * cores:
            return None
        if d.voluntary_per_s > PURE_VOLUNTARY_PER_S * cores:
            return None
        if d.io_per_s > PURE_IO_BYTES_PER_S:
            return None
    steady = [d.cores for d in state.demand[-5:]]
    spread = statistics.pstdev(steady) / statistics.fmean(steady)
    if spread > PURE_CV:
        return None
    last = recent[-1]
    return (
        f"{last.syscalls_per_s:.0f} read/write syscalls/s, {last.voluntary_per_s:.0f} "
        f"voluntary switches/s, no disk I/O, demand steady within {spread:.0%}"
    )


def cpu_reasons(state: ContainerState, thresholds: Thresholds) -> list[Reason]:
    """CPU, memory and I/O shape; at most ``CPU_SHAPE_MAX`` in total (with demand)."""
    if not state.busy or state.busy_seconds <= 0:
        return []
    strength = min(state.busy_seconds / thresholds.ramp_seconds, 1.0)
    window = state.busy[-max(int(thresholds.window_seconds / state.busy[-1].seconds), 3) :]
    fractions = [i.fraction for i in window]
    level = statistics.median(fractions)
    cv = _cv([i.cores for i in window])
    flat = cv is not None and cv <= FLAT_CV
    reasons: list[Reason] = []
    busy_for = f"busy {state.busy_seconds:.0f}s"
    if level >= thresholds.cpu_fraction:
        reasons.append(
            Reason(
                "cpu-saturated",
                f"CPU at {level:.0%} of its limit, {busy_for}",
                W_SATURATED * strength,
            )
        )
    elif flat:
        reasons.append(
            Reason(
                "cpu-self-capped",
                f"CPU flat at {level:.0%} of its limit (self-capped), {busy_for}",
                W_SELF_CAPPED * strength,
            )
        )
    if flat and cv is not None:
        reasons.append(Reason("cpu-flat", f"CPU variation {cv:.1%} across samples", W_FLAT))
    ratios = [i.throttled_ratio for i in window if i.throttled_ratio is not None]
    if ratios and statistics.fmean(ratios) >= THROTTLED_RATIO:
        reasons.append(
            Reason(
                "cpu-throttled",
                f"throttled in {statistics.fmean(ratios):.0%} of CFS periods",
                W_THROTTLED * strength,
            )
        )
    memory = [float(i.memory_bytes) for i in state.recent if i.memory_bytes]
    memory_cv = _cv(memory)
    if memory_cv is not None and memory_cv <= STEADY_MEMORY_CV:
        reasons.append(
            Reason("memory-steady", f"memory steady at {memory[-1] / 2**20:.0f} MiB", W_MEMORY)
        )
    io = [i.io_rate for i in window if i.io_rate is not None]
    if len(io) >= 2 and statistics.fmean(io) <= LOW_IO_BYTES_PER_S:
        reasons.append(
            Reason("little-disk-io", f"disk I/O {statistics.fmean(io) / 1024:.0f} KiB/s", W_LOW_IO)
        )
    return reasons


def fact_reasons(facts: ProcessFacts) -> list[Reason]:
    """Network, launcher, hidden code, masquerade and GPU evidence."""
    reasons: list[Reason] = []
    if facts.pool_hosts:
        reasons.append(
            Reason(
                "pool-connection",
                f"connected to pool host {', '.join(facts.pool_hosts)}",
                W_POOL_HOST,
            )
        )
    elif facts.pool_ports:
        reasons.append(
            Reason(
                "pool-port-connection",
                f"connected to pool port {', '.join(facts.pool_ports)}",
                W_POOL_PORT,
            )
        )
    if facts.long_lived:
        reasons.append(
            Reason(
                "long-lived-outbound",
                f"long-lived outbound {', '.join(facts.long_lived)}",
                W_LONG_LIVED,
            )
        )
    if facts.launcher:
        reasons.append(Reason("fork-and-exit-launcher", facts.launcher, W_LAUNCHER))
    if facts.hidden_code:
        reasons.append(Reason("code-not-on-command-line", facts.hidden_code, W_HIDDEN_CODE))
    reasons.extend(facts.masquerade)  # capped with the other masquerade signals in ``score``
    if facts.gpu_percent is not None and facts.gpu_percent >= GPU_BUSY_PERCENT:
        reasons.append(Reason("gpu-busy", f"GPU SM utilisation {facts.gpu_percent:.0f}%", W_GPU))
        only = gpu_compute_only(facts)
        if only is not None:
            reasons.append(Reason("gpu-compute-only", only, W_GPU_COMPUTE_ONLY))
    return reasons


def gpu_compute_only(facts: ProcessFacts) -> str | None:
    """Why the busy GPU process looks like a mining kernel rather than training, or None.

    Small and static GPU memory (seen twice, within ``GPU_STEADY``) and no ML framework mapped.
    """
    memory, before = facts.gpu_memory_bytes, facts.gpu_memory_before
    if facts.gpu_framework is not None or memory is None or before is None:
        return None
    if memory <= 0 or memory >= GPU_SMALL_MEMORY:
        return None
    if abs(memory - before) > GPU_STEADY * max(before, 1):
        return None
    return f"GPU memory {memory / 2**20:.0f} MiB and static, no ML framework mapped"


def score(
    state: ContainerState,
    facts: ProcessFacts,
    thresholds: Thresholds,
    quota_cores: float | None = None,
) -> BehaviourScore:
    """The container's behaviour score with every reason that contributed.

    The reasons' weights are capped per group and the combinations they fire are added, as
    ``data/behaviour_rules.yaml`` says.
    """
    shape = cpu_reasons(state, thresholds)
    demand = demand_reasons(state, quota_cores, thresholds)
    if any(r.signal == "cpu-demand" for r in demand):
        shape = [r for r in shape if r.signal not in ("cpu-saturated", "cpu-self-capped")]
    fired = RULES.total(shape + demand + fact_reasons(facts))
    reasons = [r for r in fired if r.weight > 0 or r.signal in INFORMATIONAL]
    reasons.sort(key=lambda r: -r.weight)
    mean = statistics.fmean(i.fraction for i in state.recent) if state.recent else None
    total = round(sum(r.weight for r in reasons), 3)
    return BehaviourScore(score=total, reasons=tuple(reasons), mean_fraction=mean)


def busy(state: ContainerState) -> bool:
    """Whether the container is worth inspecting at process level."""
    return state.busy_seconds > 0 or state.demand_seconds > 0
