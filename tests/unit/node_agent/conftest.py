from pathlib import Path
from typing import Any

import pytest

from node_agent.judge.agent_policy import AgentPolicies
from node_agent.kernel.procfs import ProcFS
from tests.support import policy

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


GOLDEN_POLICY: dict[str, Any] = {
    "builtinSignatures": False,
    "signatures": {
        "binaries": ["xmrig"],
        "poolPorts": [3333],
        "poolHosts": ["pool.test.invalid"],
    },
    "behaviour": {"windowSeconds": 120},
    "actions": {"runtime": ["Alert", "KillProcess"]},
}
"""The spec of the policy the golden /proc tree is judged by: the miner there matches it."""


@pytest.fixture
def golden_policies() -> AgentPolicies:
    return AgentPolicies([policy("golden", **GOLDEN_POLICY)])
