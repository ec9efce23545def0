from pathlib import Path

import pytest

from node_agent import errors
from node_agent.kernel import cgroups
from tests.unit.node_agent.conftest import CID1, CID2, POD1, POD2


def test_a_hybrid_host_is_read_as_v1_and_a_unified_root_as_v2(
    cgroup_v1: Path, cgroup_v2: Path
) -> None:
    assert cgroups.detect_layout(cgroup_v1).version == 1
    assert cgroups.detect_layout(cgroup_v2).version == 2


def test_v1_discovery_joins_controllers_even_when_memory_has_another_prefix(
    cgroup_v1: Path,
) -> None:
    reader = cgroups.CgroupReader(cgroup_v1)
    found = reader.discover()
    assert len(found) == 2
    container = found[f"{POD1}/{CID1}"]
    memory = container.dir("memory")
    assert memory is not None
    assert "process_api" in str(memory)
    assert {name for name, _ in container.dirs} == {"cpu", "cpuacct", "memory", "blkio", "pids"}


def test_v1_sample_reads_usage_throttling_memory_and_io(cgroup_v1: Path) -> None:
    reader = cgroups.CgroupReader(cgroup_v1)
    container = reader.discover()[f"{POD1}/{CID1}"]
    sample = reader.sample(container, now=10.0)
    assert sample.cpu_usage_ns == 2_100_000_000
    assert (sample.nr_periods, sample.nr_throttled) == (20, 19)
    assert sample.throttled_ns == 1_490_000_000
    assert sample.memory_bytes == 70254592
    assert sample.io_bytes == 12288
    assert reader.limits(container).quota_cores == 0.2
    assert reader.pids(container) == [100, 101]
    assert reader.memory_stat(container)["total_rss"] == 70254592


def test_an_unlimited_container_has_no_quota(cgroup_v1: Path) -> None:
    reader = cgroups.CgroupReader(cgroup_v1)
    besteffort = next(c for k, c in reader.discover().items() if "c3c3" in k)
    assert reader.limits(besteffort).quota_cores is None


def test_v2_discovery_finds_containerd_and_crio_scopes_and_skips_conmon(cgroup_v2: Path) -> None:
    reader = cgroups.CgroupReader(cgroup_v2)
    found = reader.discover()
    assert f"{POD2}/{CID2}" in found
    assert {c.attribution.runtime for c in found.values()} == {"containerd", "crio"}
    assert len(found) == 2


def test_v2_sample_converts_microseconds_and_sums_io_over_devices(cgroup_v2: Path) -> None:
    reader = cgroups.CgroupReader(cgroup_v2)
    found = reader.discover()
    sample = reader.sample(found[f"{POD2}/{CID2}"], now=1.0)
    assert sample.cpu_usage_ns == 5_000_000_000
    assert sample.memory_bytes == 1048576
    assert sample.io_bytes == 3030
    crio = next(c for c in found.values() if c.attribution.runtime == "crio")
    assert reader.sample(crio, now=1.0).throttled_ns == 2_500_000
    assert reader.limits(crio).quota_cores == 0.5
    assert reader.limits(found[f"{POD2}/{CID2}"]).quota_cores is None


def test_a_removed_cgroup_raises_cgroup_gone(cgroup_v2: Path, tmp_path: Path) -> None:
    reader = cgroups.CgroupReader(cgroup_v2)
    container = next(iter(reader.discover().values()))
    gone = cgroups.ContainerCgroup(container.attribution, (("", tmp_path / "nope"),))
    with pytest.raises(errors.CgroupGone):
        reader.sample(gone, now=1.0)


def test_quota_parsers_treat_max_and_minus_one_as_unlimited() -> None:
    assert cgroups.parse_cpu_max("max 100000") is None
    assert cgroups.parse_cpu_max("150000 100000") == 1.5
    assert cgroups.parse_v1_quota("-1", "100000") is None
    assert cgroups.parse_v1_quota("50000", "100000") == 0.5
    assert cgroups.parse_blkio(None) is None
