"""The behaviour score of a container: pure functions over cgroup samples and process facts.

Miners are flat, busy, quiet on disk and talk to a pool; busy benign work (a compile, gzip,
a numeric loop) is busy too, so CPU shape alone is capped below any sane threshold
(``CPU_SHAPE_MAX``) and a detection needs a second kind of evidence: a pool connection, a
masquerading executable, the fork-and-exit launcher pattern, a long-lived outbound
connection, GPU use.

Busy time accumulates in a leaky bucket (it drains at half the rate it fills, never resets),
so a duty-cycled miner (250 s on, 90 s off) keeps its score through the off phase; a
reset-on-idle window would never see it reach the threshold.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass, replace

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

W_SATURATED = 0.35
W_SELF_CAPPED = 0.35
W_FLAT = 0.10
W_THROTTLED = 0.10
W_MEMORY = 0.05
W_LOW_IO = 0.05
CPU_SHAPE_MAX = W_SATURATED + W_FLAT + W_THROTTLED + W_MEMORY + W_LOW_IO
W_POOL_PORT = 0.5
W_POOL_HOST = 0.8
W_LONG_LIVED = 0.15
W_LAUNCHER = 0.3
W_GPU = 0.35
MASQUERADE_MAX = 0.6


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


@dataclass(frozen=True, slots=True)
class ContainerState:
    """Everything the score needs from the past; replaced, never mutated."""

    last: CgroupSample | None = None
    busy_seconds: float = 0.0
    busy: tuple[Interval, ...] = ()
    recent: tuple[Interval, ...] = ()


@dataclass(frozen=True, slots=True)
class ProcessFacts:
    """What process-level inspection found in the container, already judged by the caller."""

    pool_ports: tuple[str, ...] = ()
    pool_hosts: tuple[str, ...] = ()
    long_lived: tuple[str, ...] = ()
    launcher: str | None = None
    masquerade: tuple[Reason, ...] = ()
    gpu_percent: float | None = None


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
    interval = Interval(
        end=sample.taken_at,
        seconds=seconds,
        cores=cores,
        fraction=cores / reference,
        throttled_ratio=throttled,
        memory_bytes=sample.memory_bytes,
        io_rate=io_rate,
    )
    horizon = sample.taken_at - thresholds.window_seconds
    recent = (*(i for i in state.recent if i.end > horizon), interval)
    if interval.fraction >= BUSY_FRACTION:
        busy_seconds = min(state.busy_seconds + seconds, thresholds.window_seconds)
        busy = (*state.busy, interval)[-MAX_BUSY_INTERVALS:]
    else:
        busy_seconds = max(state.busy_seconds - DRAIN_RATE * seconds, 0.0)
        busy = state.busy if busy_seconds > 0 else ()
    return ContainerState(last=sample, busy_seconds=busy_seconds, busy=busy, recent=recent)


def _cv(values: list[float]) -> float | None:
    if len(values) < 3:
        return None
    mean = statistics.fmean(values)
    if mean <= 0:
        return None
    return statistics.pstdev(values) / mean


def cpu_reasons(state: ContainerState, thresholds: Thresholds) -> list[Reason]:
    """CPU, memory and I/O shape; at most ``CPU_SHAPE_MAX`` in total."""
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
    """Network, launcher, masquerade and GPU evidence."""
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
    budget = MASQUERADE_MAX
    for reason in sorted(facts.masquerade, key=lambda r: -r.weight):
        weight = min(reason.weight, budget)
        if weight <= 0:
            break
        reasons.append(replace(reason, weight=weight))
        budget -= weight
    if facts.gpu_percent is not None and facts.gpu_percent >= GPU_BUSY_PERCENT:
        reasons.append(Reason("gpu-busy", f"GPU SM utilisation {facts.gpu_percent:.0f}%", W_GPU))
    return reasons


def score(state: ContainerState, facts: ProcessFacts, thresholds: Thresholds) -> BehaviourScore:
    """The container's behaviour score with every reason that contributed."""
    reasons = cpu_reasons(state, thresholds) + fact_reasons(facts)
    reasons.sort(key=lambda r: -r.weight)
    mean = statistics.fmean(i.fraction for i in state.recent) if state.recent else None
    total = round(sum(r.weight for r in reasons), 3)
    return BehaviourScore(score=total, reasons=tuple(reasons), mean_fraction=mean)


def busy(state: ContainerState) -> bool:
    """Whether the container is worth inspecting at process level."""
    return state.busy_seconds > 0
