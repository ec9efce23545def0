"""cgroup v2 cpu.pressure is read with the other counters where it exists (not on v1)."""

from __future__ import annotations

from pathlib import Path

from node_agent.kernel import cgroups
from tests.unit.node_agent.conftest import CID2, POD2


def test_v2_cpu_pressure_is_sampled_in_microseconds_of_stall(cgroup_v2: Path) -> None:
    reader = cgroups.CgroupReader(cgroup_v2)
    found = reader.discover()
    assert reader.sample(found[f"{POD2}/{CID2}"], now=1.0).cpu_pressure_us == 7_500_000
    crio = next(c for c in found.values() if c.attribution.runtime == "crio")
    assert reader.sample(crio, now=1.0).cpu_pressure_us is None, "no cpu.pressure file"


def test_v1_has_no_cpu_pressure(cgroup_v1: Path) -> None:
    reader = cgroups.CgroupReader(cgroup_v1)
    for container in reader.discover().values():
        assert reader.sample(container, now=1.0).cpu_pressure_us is None
