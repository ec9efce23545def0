"""``minerguard scan``: exit codes, outputs and errors, through the command's entry point.

The command runs in-process (``cli.main``) to keep unit tests quick; one test starts
``python -m minerguard`` for real.
"""

import contextlib
import io
import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from minerguard import cli, manifests

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples" / "manifests"


@dataclass(frozen=True)
class Result:
    returncode: int
    stdout: str
    stderr: str


def run(*args: str, stdin: str | None = None) -> Result:
    """``minerguard scan ARGS`` with ``stdin``, as the shell would see it."""
    out, err = io.StringIO(), io.StringIO()
    saved = sys.stdin
    sys.stdin = io.StringIO(stdin or "")
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                code = cli.main(["scan", *args])
            except SystemExit as exit_:  # argparse's usage errors
                code = exit_.code if isinstance(exit_.code, int) else 2
    finally:
        sys.stdin = saved
    return Result(code, out.getvalue(), err.getvalue())


def test_scan_of_the_examples_denies_the_miners_and_passes_the_rest() -> None:
    result = run(str(EXAMPLES))
    assert result.returncode == 1
    verdicts = dict(
        line.split()[:2][::-1] for line in result.stdout.splitlines() if line[:1] != " "
    )
    assert verdicts == {
        "Job/ci/build-pool": "OK",
        "DaemonSet/infra/chrony": "OK",
        "StatefulSet/blockchain/monerod": "OK",
        "Pod/default/totally-legit-worker": "DENY",
        "Deployment/media/image-resizer": "DENY",
    }


def test_json_and_sarif_outputs_carry_the_signals() -> None:
    payload = json.loads(run("--output", "json", str(EXAMPLES / "miner-pod.yaml")).stdout)
    assert payload[0]["verdict"] == "DENY"
    assert "pool-url" in {s["name"] for s in payload[0]["findings"][0]["signals"]}
    sarif = json.loads(run("--output", "sarif", str(EXAMPLES / "miner-pod.yaml")).stdout)
    assert sarif["version"] == "2.1.0"
    assert sarif["runs"][0]["results"][0]["level"] == "error"


def test_stdin_list_kinds_are_expanded() -> None:
    doc = {
        "apiVersion": "v1",
        "kind": "List",
        "items": [
            {
                "kind": "Pod",
                "metadata": {"name": "a"},
                "spec": {"containers": [{"name": "c", "image": "i", "command": ["true"]}]},
            },
            {"kind": "Service", "metadata": {"name": "s"}},
        ],
    }
    result = run("-", stdin=json.dumps(doc))
    assert result.returncode == 0
    assert result.stdout.startswith("OK    Pod/default/a")


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"kind: Pod\nspec: [unclosed", "not valid YAML/JSON"),
        (bytes(range(256)) * 4, "not UTF-8"),
        (b"- just\n- a list\n", "not a Kubernetes object"),
        (b"kind: Pod\nmetadata: {name: a}\nspec: {containers: 5}\n", None),
        (b"a: \x00", "binary data"),
    ],
)
def test_malformed_input_is_a_clear_error_naming_the_file(
    tmp_path: Path, content: bytes, message: str | None
) -> None:
    path = tmp_path / "input.yaml"
    path.write_bytes(content)
    result = run(str(path))
    assert "Traceback" not in result.stderr
    if message is None:
        assert result.returncode == 0
    else:
        assert result.returncode == 2
        assert str(path) in result.stderr
        assert message in result.stderr


def test_a_huge_document_is_refused_without_reading_it_all(tmp_path: Path) -> None:
    path = tmp_path / "huge.yaml"
    with path.open("wb") as handle:
        handle.truncate(manifests.MAX_INPUT_BYTES + 10)
    result = run(str(path))
    assert result.returncode == 2
    assert f"larger than {manifests.MAX_INPUT_BYTES >> 20} MiB" in result.stderr


def test_an_invalid_policy_is_a_usage_error(tmp_path: Path) -> None:
    policy = tmp_path / "p.yaml"
    policy.write_text(
        "kind: MinerPolicy\nmetadata: {name: p}\nspec: {signatures: {argumentPatterns: ['(']}}\n"
    )
    result = run("--policy", str(policy), str(EXAMPLES))
    assert result.returncode == 2
    assert "argumentPatterns[0]" in result.stderr


def test_unknown_subcommands_and_missing_paths_are_usage_errors() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "minerguard", "nope"], capture_output=True, text=True, check=False
    )
    assert result.returncode == 2
    assert "unknown command 'nope'" in result.stderr
    assert run().returncode == 2
    assert run("/nonexistent/x.yaml").returncode == 2


def test_a_miner_in_a_post_start_hook_of_a_manifest_is_denied_naming_the_hook(
    tmp_path: Path,
) -> None:
    manifest = tmp_path / "deploy.yaml"
    manifest.write_text(
        """\
apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: shop}
spec:
  template:
    spec:
      containers:
        - name: web
          image: nginx:1.27
          command: [nginx, -g, daemon off;]
          lifecycle:
            postStart:
              exec:
                command: [sh, -c, "xmrig -o stratum+tcp://pool.example:3333 &"]
          readinessProbe: {exec: {command: [cat, /tmp/healthy]}}
""",
        encoding="utf-8",
    )
    result = run(str(manifest))
    assert result.returncode == 1
    assert 'container "web" lifecycle.postStart exec would run a cryptominer' in result.stdout
    payload = json.loads(run("--output", "json", str(manifest)).stdout)
    assert [f["origin"] for f in payload[0]["findings"]] == ["lifecycle.postStart"]
