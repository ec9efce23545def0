"""Per-process GPU use through NVML, degrading to "no data" wherever NVML is absent.

``pynvml`` (nvidia-ml-py) is imported lazily: nodes without a GPU have neither the module
nor libnvidia-ml, and the agent must run there unchanged. "Not Found" from the utilisation
query means the process has no samples yet and is "no data", not an error.
"""

from __future__ import annotations

import importlib
import time
from dataclasses import dataclass
from types import ModuleType
from typing import Any


@dataclass(frozen=True, slots=True)
class GpuUse:
    """One process's GPU use: SM utilisation (percent) and memory in bytes."""

    pid: int
    sm_percent: float
    memory_bytes: int


class GpuMonitor:
    """Reads per-process GPU use; ``available`` is False when NVML cannot be used."""

    def __init__(self, module_name: str = "pynvml") -> None:
        self._nvml: Any = None
        self._handles: list[Any] = []
        self._last_us = int(time.time() * 1e6)
        self.reason = ""
        try:
            nvml: ModuleType = importlib.import_module(module_name)
            nvml.nvmlInit()
            count = int(nvml.nvmlDeviceGetCount())
            self._handles = [nvml.nvmlDeviceGetHandleByIndex(i) for i in range(count)]
            self._nvml = nvml
        except ImportError:
            self.reason = f"{module_name} not installed"
        except Exception as err:  # any NVML failure means "no GPU data"
            self.reason = f"NVML unavailable: {err}"

    @property
    def available(self) -> bool:
        """Whether NVML answered and at least one GPU exists."""
        return self._nvml is not None and bool(self._handles)

    def sample(self) -> dict[int, GpuUse]:
        """GPU use per host PID since the previous call; empty when there is no data."""
        if not self.available:
            return {}
        nvml = self._nvml
        since = self._last_us
        self._last_us = int(time.time() * 1e6)
        memory: dict[int, int] = {}
        util: dict[int, float] = {}
        for handle in self._handles:
            try:
                for proc in nvml.nvmlDeviceGetComputeRunningProcesses(handle):
                    memory[int(proc.pid)] = int(proc.usedGpuMemory or 0)
            except Exception:  # noqa: S112 - per-device failures are "no data"
                continue
            try:
                for entry in nvml.nvmlDeviceGetProcessUtilization(handle, since):
                    pid = int(entry.pid)
                    util[pid] = max(util.get(pid, 0.0), float(entry.smUtil))
            except Exception:  # noqa: S112 - "Not Found": no samples yet
                continue
        return {
            pid: GpuUse(pid=pid, sm_percent=util.get(pid, 0.0), memory_bytes=memory.get(pid, 0))
            for pid in memory.keys() | util.keys()
        }

    def close(self) -> None:
        """Shut NVML down."""
        if self._nvml is not None:
            try:
                self._nvml.nvmlShutdown()
            except Exception:  # shutting down; nothing to do about it
                self.reason = "NVML shutdown failed"
            self._nvml = None
