import io
import json
from contextlib import redirect_stdout
from pathlib import Path

import pytest

from node_agent import cli

from .conftest import CID1, DATA, POD1

POLICY = """\
apiVersion: minerguard.io/v1alpha1
kind: MinerPolicy
metadata: {name: golden}
spec:
  builtinSignatures: false
  signatures:
    binaries: [xmrig]
    options: [--donate-level]
    poolPorts: [3333]
    argumentPatterns: ['stratum\\+tcp://']
"""


def run_cli(argv: list[str]) -> tuple[int, list[str]]:
    out = io.StringIO()
    with redirect_stdout(out):
        code = cli.main(argv)
    return code, [line for line in out.getvalue().splitlines() if line]


def test_no_cluster_json_reports_the_golden_miner_with_pod_uid_and_container_id(
    tmp_path: Path,
) -> None:
    policy = tmp_path / "policy.yaml"
    policy.write_text(POLICY)
    code, lines = run_cli(
        [
            "--no-cluster",
            "--policy-file",
            str(policy),
            "--proc-root",
            str(DATA / "proc"),
            "--cgroup-root",
            str(DATA / "cgroup" / "v1"),
            "--duration",
            "0.3",
            "--output",
            "json",
        ]
    )
    assert code == 0
    detections = [json.loads(line) for line in lines]
    miner = next(d for d in detections if d["spec"]["evidence"]["pid"] == 100)
    assert miner["kind"] == "MinerDetection"
    assert miner["spec"]["layer"] == "Exec"
    assert miner["spec"]["podUID"] == POD1
    assert miner["spec"]["evidence"]["containerID"] == CID1
    assert miner["spec"]["evidence"]["executable"] == "/usr/local/bin/xmrig"
    assert miner["spec"]["evidence"]["cgroup"].endswith(CID1)
    assert miner["spec"]["policy"] == "golden"
    assert {r["signal"] for r in miner["spec"]["reasons"]} >= {"miner-binary", "argument-pattern"}
    assert all(d["spec"]["evidence"]["pid"] != 300 for d in detections)


def test_no_cluster_text_output_prints_one_line_per_detection(tmp_path: Path) -> None:
    policy = tmp_path / "policy.yaml"
    policy.write_text(POLICY)
    code, lines = run_cli(
        [
            "--no-cluster",
            "--policy-file",
            str(policy),
            "--proc-root",
            str(DATA / "proc"),
            "--cgroup-root",
            str(DATA / "cgroup" / "v2"),
            "--duration",
            "0.3",
        ]
    )
    assert code == 0
    assert any("pid=100" in line and "Exec detection" in line for line in lines)


def test_an_invalid_policy_file_exits_with_2(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("kind: NotAPolicy\n")
    code, _ = run_cli(["--no-cluster", "--policy-file", str(bad), "--duration", "0.1"])
    assert code == 2


def test_unknown_output_formats_are_rejected_by_the_parser() -> None:
    with pytest.raises(SystemExit):
        cli.main(["--no-cluster", "--output", "xml"])


def test_settings_come_from_the_environment_and_flags_win(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MINERGUARD_AGENT_SAMPLE_INTERVAL", "2.5")
    monkeypatch.setenv("MINERGUARD_AGENT_OUTPUT", "json")
    args = cli.parser().parse_args(["--no-cluster", "--output", "text"])
    settings = cli.settings_from(args)
    assert settings.sample_interval == 2.5
    assert settings.output == "text"
    assert settings.judge_host_processes


def test_no_cluster_and_kube_server_are_named_as_in_the_other_components(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("MINERGUARD_AGENT_NO_CLUSTER", "true")
    monkeypatch.setenv("MINERGUARD_AGENT_KUBE_SERVER", "http://127.0.0.1:6443")
    settings = cli.settings_from(cli.parser().parse_args([]))
    assert settings.no_cluster
    assert settings.kube_server == "http://127.0.0.1:6443"
