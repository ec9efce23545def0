"""A GPU miner against a training job, on facts: NVML's numbers and the libraries mapped.

These run everywhere (no GPU, no NVML): the NVML reader itself is only exercised where a GPU
is lent, and with NVML absent the agent reports no GPU data rather than a stand-in.
"""

from __future__ import annotations

from node_agent.judge import gpu_profile, scoring
from node_agent.kernel.gpu import GpuMonitor

DEFAULT = scoring.Thresholds()
TORCH_MAPS = (
    "7f00-7f01 r-xp 00000000 fd:01 5 /usr/lib/python3/site-packages/torch/lib/libtorch_cuda.so\n"
    "7f02-7f03 r-xp 00000000 fd:01 6 /usr/lib/x86_64-linux-gnu/libcuda.so.1\n"
)
MINER_MAPS = "7f02-7f03 r-xp 00000000 fd:01 6 /usr/lib/x86_64-linux-gnu/libcuda.so.1\n"


def facts(
    memory: int, before: int | None, framework: str | None, **more: object
) -> scoring.ProcessFacts:
    return scoring.ProcessFacts(
        gpu_percent=99.0,
        gpu_memory_bytes=memory,
        gpu_memory_before=before,
        gpu_framework=framework,
        **more,  # type: ignore[arg-type]
    )


def signals(result: scoring.BehaviourScore) -> set[str]:
    return {r.signal for r in result.reasons}


def test_the_framework_a_gpu_process_maps_is_named() -> None:
    assert gpu_profile.framework(TORCH_MAPS) == "libtorch_cuda.so"
    assert gpu_profile.framework(MINER_MAPS) is None


def test_a_busy_gpu_with_small_static_memory_and_no_framework_is_compute_only() -> None:
    result = scoring.score(scoring.ContainerState(), facts(300 << 20, 300 << 20, None), DEFAULT)
    assert {"gpu-busy", "gpu-compute-only"} <= signals(result)


def test_a_training_job_is_busy_but_never_compute_only_and_stays_below_the_threshold() -> None:
    for training in (
        facts(300 << 20, 300 << 20, "libtorch_cuda.so"),
        facts(30 << 30, 30 << 30, None),
        facts(900 << 20, 500 << 20, None),
    ):
        result = scoring.score(scoring.ContainerState(), training, DEFAULT)
        assert "gpu-compute-only" not in signals(result)
        assert result.score + scoring.CPU_SHAPE_MAX < DEFAULT.score_threshold


def test_a_gpu_miner_with_a_pool_connection_is_detected() -> None:
    miner = facts(300 << 20, 300 << 20, None, pool_ports=("10.0.0.1:3333",))
    result = scoring.score(scoring.ContainerState(), miner, DEFAULT)
    assert result.over(DEFAULT)
    assert "gpu-with-pool" in signals(result)


def test_without_nvml_there_is_no_gpu_data_and_no_stand_in() -> None:
    monitor = GpuMonitor(module_name="minerguard_no_such_nvml_module")
    assert not monitor.available
    assert monitor.sample() == {}
    assert "not installed" in monitor.reason
