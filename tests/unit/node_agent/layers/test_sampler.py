from pathlib import Path

from node_agent.counters import Counters
from node_agent.judge.agent_policy import AgentPolicies
from node_agent.judge.lineage import Lineage
from node_agent.judge.pods import NoPods
from node_agent.judge.poolhosts import PoolAddresses
from node_agent.kernel import cgroups
from node_agent.kernel.procfs import ProcFS
from node_agent.layers.sampler import Sampler
from tests.unit.node_agent.conftest import CID1, POD1


class FakeV2Container:
    """A cgroup v2 container directory whose counters the test advances."""

    def __init__(self, root: Path) -> None:
        (root / "cgroup.controllers").write_text("cpu memory io\n")
        self.dir = root / "kubepods" / "burstable" / f"pod{POD1}" / CID1
        self.dir.mkdir(parents=True)
        (self.dir / "cgroup.procs").write_text("100\n")
        (self.dir / "cpu.max").write_text("max 100000\n")
        self.usage_usec = 0
        self.write()

    def write(self) -> None:
        (self.dir / "cpu.stat").write_text(
            f"usage_usec {self.usage_usec}\nnr_periods 0\nnr_throttled 0\nthrottled_usec 0\n"
        )
        (self.dir / "memory.current").write_text(f"{64 << 20}\n")
        (self.dir / "io.stat").write_text("8:0 rbytes=0 wbytes=0\n")

    def burn(self, seconds: float, cores: float) -> None:
        self.usage_usec += int(seconds * cores * 1e6)
        self.write()


def make_sampler(
    root: Path,
    proc: ProcFS,
    policies: AgentPolicies,
    counters: Counters,
    pools: PoolAddresses | None = None,
) -> Sampler:
    return Sampler(
        cgroups.CgroupReader(root),
        proc,
        policies,
        pods=NoPods(),
        lineage=Lineage(),
        counters=counters,
        pool_addresses=pools or PoolAddresses(),
        wall=lambda: 1_700_000_000.0,
    )


def test_a_busy_container_talking_to_a_pool_port_becomes_one_behaviour_finding(
    tmp_path: Path, proc: ProcFS, golden_policies: AgentPolicies
) -> None:
    container = FakeV2Container(tmp_path)
    counters = Counters()
    sampler = make_sampler(tmp_path, proc, golden_policies, counters)
    findings = []
    for tick in range(12):
        findings += sampler.tick(now=tick * 5.0)
        container.burn(5.0, 1.0)
    assert len(findings) == 1, "hysteresis: one finding, not one per tick"
    found = findings[0]
    assert found.layer == "Behaviour"
    assert (found.pod_uid, found.container_id, found.pid) == (POD1, CID1, 100)
    assert found.executable == "/usr/local/bin/xmrig"
    signals = {r.signal for r in found.reasons}
    assert {"cpu-saturated", "pool-port-connection"} <= signals
    assert [c.remote for c in found.connections] == ["10.77.0.1:3333"]
    assert found.cpu_fraction is not None
    assert found.cpu_fraction > 0.9
    assert counters.get("behaviour_detections") == 1


def test_a_resolved_pool_address_is_named_by_its_host(
    tmp_path: Path, proc: ProcFS, golden_policies: AgentPolicies
) -> None:
    container = FakeV2Container(tmp_path)
    pools = PoolAddresses({"10.77.0.1": "pool.test.invalid"})
    sampler = make_sampler(tmp_path, proc, golden_policies, Counters(), pools)
    findings = []
    for tick in range(8):
        findings += sampler.tick(now=tick * 5.0)
        container.burn(5.0, 1.0)
    (found,) = findings
    pool = next(r for r in found.reasons if r.signal == "pool-connection")
    assert "pool.test.invalid (10.77.0.1:3333)" in pool.detail


def test_an_idle_container_is_never_reported_whatever_it_talks_to(
    tmp_path: Path, proc: ProcFS, golden_policies: AgentPolicies
) -> None:
    container = FakeV2Container(tmp_path)
    sampler = make_sampler(tmp_path, proc, golden_policies, Counters())
    findings = []
    for tick in range(30):
        findings += sampler.tick(now=tick * 5.0)
        container.burn(5.0, 0.01)
    assert findings == []


def test_a_vanished_container_is_dropped_and_counted(
    tmp_path: Path, proc: ProcFS, golden_policies: AgentPolicies
) -> None:
    container = FakeV2Container(tmp_path)
    counters = Counters()
    sampler = make_sampler(tmp_path, proc, golden_policies, counters)
    sampler.tick(now=0.0)
    assert len(sampler.tracked) == 1
    for name in ("cgroup.procs", "cpu.max", "cpu.stat", "memory.current", "io.stat"):
        (container.dir / name).unlink()
    container.dir.rmdir()
    assert sampler.tick(now=5.0) == []
    assert sampler.tracked == {}
    assert counters.get("cgroup_gone") == 1
