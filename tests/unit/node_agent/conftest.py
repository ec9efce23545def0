from pathlib import Path

import pytest
import yaml

from minerguard import policy
from node_agent.policyset import PolicySet
from node_agent.procfs import ProcFS

DATA = Path(__file__).resolve().parents[2] / "data"
POD1 = "0f6c1d2e-3b4a-4c5d-8e9f-a0b1c2d3e4f5"
CID1 = "a1" * 32
POD2 = "11111111-2222-3333-4444-555555555555"
CID2 = "b2" * 32


@pytest.fixture
def proc() -> ProcFS:
    return ProcFS(DATA / "proc")


@pytest.fixture
def cgroup_v1() -> Path:
    return DATA / "cgroup" / "v1"


@pytest.fixture
def cgroup_v2() -> Path:
    return DATA / "cgroup" / "v2"


POLICY_YAML = """\
apiVersion: minerguard.io/v1alpha1
kind: MinerPolicy
metadata: {name: golden}
spec:
  builtinSignatures: false
  signatures:
    binaries: [xmrig]
    poolPorts: [3333]
    poolHosts: [pool.test.invalid]
  behaviour: {windowSeconds: 120}
  actions: {runtime: [Alert, KillProcess]}
"""


@pytest.fixture
def golden_policies() -> PolicySet:
    document = yaml.safe_load(POLICY_YAML)
    return PolicySet([policy.compile_policy(policy.parse_policy(document, "test"))])
