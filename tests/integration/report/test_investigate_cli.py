"""``minerguard investigate`` as a responder runs it: a process, against the API (kmock)."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from minerguard.api.detection import MinerDetection
from minerguard.kube import client, resources
from minerguard.report import sections
from tests.kube_emulator import EmulatorThread
from tests.unit.report import cases

ROOT = Path(__file__).resolve().parents[3]


def investigate(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "minerguard", "investigate", *args],
        cwd=ROOT,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def store(kube: EmulatorThread, investigation: dict[str, Any] | None, name: str) -> None:
    """Create the detection, then write its status through the status subresource."""
    document = cases.detection_document(investigation=investigation, name=name)
    api = client.api_client(kube.url)
    status = document.pop("status")
    created = resources.create_detection(api, MinerDetection.model_validate(document))
    assert created["metadata"]["name"] == name
    resources.patch_detection_status(api, "shop", name, status)


@pytest.mark.parametrize("output", ["text", "json", "html"])
def test_an_investigated_detection_is_reported_in_every_format(
    kube: EmulatorThread, output: str
) -> None:
    store(kube, cases.full_investigation(), "md-full")
    result = investigate("shop/md-full", "--server", kube.url, "--output", output)
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    if output == "text":
        assert result.stdout.startswith("MinerDetection shop/md-full\n")
        assert "COPY helper /usr/local/bin/helper  [adds what was detected]" in result.stdout
        assert "exec by alice" in result.stdout
    elif output == "json":
        out = json.loads(result.stdout)
        assert out["investigated"] is True
        assert out["detection"]["status"]["investigation"]["via"] == "Exec"
        assert [e["kind"] for e in out["timeline"]][-2:] == ["Action", "Action"]
    else:
        assert result.stdout.startswith("<!DOCTYPE html>")
        assert result.stdout.count('class="marker"') == 10


def test_a_detection_that_does_not_exist_is_named_and_exits_1(kube: EmulatorThread) -> None:
    result = investigate("shop/nope", "--server", kube.url)
    assert result.returncode == 1
    assert "minerdetection shop/nope not found" in result.stderr
    assert result.stdout == ""


def test_a_detection_not_investigated_yet_is_still_reported_and_says_so(
    kube: EmulatorThread,
) -> None:
    store(kube, None, "md-bare")
    result = investigate("md-bare", "-n", "shop", "--server", kube.url)
    assert result.returncode == 0
    assert sections.NOT_INVESTIGATED in result.stderr
    assert sections.NOT_INVESTIGATED in result.stdout
    assert "/tmp/.x/xmrig -o stratum+tcp://pool.example:3333" in result.stdout


def test_an_unreachable_api_server_exits_3_and_says_so() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    result = investigate("shop/x", "--server", f"http://127.0.0.1:{port}", "--request-timeout", "5")
    assert result.returncode == 3
    assert "cannot read minerdetection shop/x" in result.stderr
    assert "unreachable" in result.stderr


def test_a_saved_detection_is_read_from_a_file_or_stdin_without_a_cluster(tmp_path: Path) -> None:
    listed = {"apiVersion": "v1", "kind": "List", "items": [cases.detection_document(
        investigation=cases.full_investigation())]}  # fmt: skip
    saved = tmp_path / "md.yaml"
    saved.write_text(yaml.safe_dump(listed))
    result = investigate("-f", str(saved), "--output", "json")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["investigated"] is True
    piped = investigate("shop/web-7f9c-exec-x1", "-f", "-", stdin=json.dumps(listed["items"][0]))
    assert piped.returncode == 0, piped.stderr
    assert "WHO STARTED IT, AND HOW" in piped.stdout


def test_a_malformed_file_exits_2_with_the_reason(tmp_path: Path) -> None:
    broken = tmp_path / "broken.yaml"
    broken.write_text("kind: MinerDetection\nspec: [unclosed\n")
    result = investigate("-f", str(broken))
    assert result.returncode == 2
    assert "not valid YAML/JSON" in result.stderr
    not_one = tmp_path / "pod.yaml"
    not_one.write_text("apiVersion: v1\nkind: Pod\nmetadata: {name: p}\n")
    result = investigate("-f", str(not_one))
    assert result.returncode == 2
    assert "no MinerDetection in it" in result.stderr
    shapeless = tmp_path / "md.json"
    shapeless.write_text(json.dumps({"kind": "MinerDetection", "spec": {"score": -1}}))
    result = investigate("-f", str(shapeless))
    assert result.returncode == 2
    assert "is not a MinerDetection: spec.layer: Field required" in result.stderr


def test_an_investigation_this_version_cannot_read_is_left_out_with_the_reason(
    tmp_path: Path,
) -> None:
    investigation = cases.full_investigation()
    investigation["state"] = "Pondering"
    saved = tmp_path / "md.json"
    saved.write_text(json.dumps(cases.detection_document(investigation=investigation)))
    result = investigate("-f", str(saved))
    assert result.returncode == 0
    assert "status.investigation could not be read" in result.stderr
    assert "status.investigation could not be read" in result.stdout
    assert "WHAT WAS DETECTED" in result.stdout
