"""Evasion transforms: the generator is faithful, and detection survives it.

Two halves. First the generator itself (:mod:`tests.transforms`): every transform and every
pair, run by a real shell (and a loopback HTTP server for the dropper), makes a stub binary
receive exactly the argv it was given, so a transformed case runs the same miner and a
transformed benign case the same harmless program. Then the property, over the main
(non-held-out) corpus: a malicious container that ``minerguard scan`` denies stays denied under
every transform and every pair; a benign one that is allowed stays allowed under every one that
adds no evidence of its own (:data:`tests.transforms.NEUTRAL`: all but the dropper). Pairs are
applied to a few seeds each, in rotation, to keep the run to a few thousand specs.

The property is expected to fail until the engine models every class issue 12 lists;
``bench/detection.py`` prints the pass rate per transform.
"""

from __future__ import annotations

import http.server
import os
import subprocess
import threading
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any

import pytest

from minerguard import podspec
from minerguard.compiled_policy import CompiledPolicy
from tests import corpus, transforms
from tests.support import wait_for

STUB = """#!/bin/sh
for a in "$@"; do printf '%s\\0' "$a"; done > "$STUB_OUT"
"""


@pytest.fixture
def stub(tmp_path: Path) -> Path:
    """A program that records the arguments it was called with, NUL-separated."""
    path = tmp_path / "bin" / "xmrig"
    path.parent.mkdir()
    path.write_text(STUB)
    path.chmod(0o755)
    return path


def _recorded(out: Path) -> tuple[str, ...]:
    return tuple(part.decode() for part in out.read_bytes().split(b"\0")[:-1])


def _synthetic(argv: tuple[str, ...]) -> transforms.Seed:
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "synthetic", "namespace": "default"},
        "spec": {"containers": [{"name": "c", "image": "x", "command": list(argv)}]},
    }
    case = corpus.Case(corpus.CORPUS / "synthetic.yaml", True, False, (pod,), {})
    [seed] = transforms.seeds(case, neutral_image=True)
    return seed


def _argvs(stub: Path) -> list[tuple[str, ...]]:
    """A plain command with awkward characters, and a shell script calling it."""
    plain = (
        str(stub),
        "-o",
        "stratum+tcp://pool.example:3333",
        "-u",
        "4" + "A" * 20,
        "--donate-level=1",
        "it's $HOME \\n 100%",
    )
    scripted = ("sh", "-c", f"{stub} --url=pool.example:443 -k && echo done")
    return [plain, scripted]


def _resolve_env(documents: list[dict[str, Any]], raw: dict[str, Any]) -> dict[str, str]:
    """The container's env as the kubelet gives it: literal values and ConfigMap keys."""
    data: dict[str, str] = {}
    for doc in documents:
        if doc.get("kind") == "ConfigMap":
            data.update(doc["data"])
    env: dict[str, str] = {}
    for item in raw.get("env") or []:
        if "value" in item:
            env[item["name"]] = item["value"]
        else:
            env[item["name"]] = data[item["valueFrom"]["configMapKeyRef"]["key"]]
    return env


def _run_rendered(seed: transforms.Seed, variant: transforms.Variant, out: Path) -> tuple[str, ...]:
    """Run what the rendered pod runs (command, init container or exec handler) for real."""
    documents = transforms.render(seed, variant)
    pod = next(doc for doc in documents if doc.get("kind") == "Pod")
    spec = pod["spec"]
    env_base = {"PATH": os.environ["PATH"], "STUB_OUT": str(out)}
    if variant.placement in ("probe", "hook"):
        [host] = spec["containers"]
        node = host["livenessProbe"] if variant.placement == "probe" else host["lifecycle"]
        command = (node if variant.placement == "probe" else node["postStart"])["exec"]["command"]
        env = _resolve_env(documents, host)
        subprocess.run(command, env={**env_base, **env}, check=True, timeout=10)
        wait_for(lambda: out.exists() and out.stat().st_size > 0, what="the exec handler")
    else:
        running = (
            spec["initContainers"][0]
            if variant.placement in ("init", "sidecar")
            else (spec["containers"][0])
        )
        env = _resolve_env(documents, running)
        argv = [podspec.expand(t, env) for t in [*running["command"], *running.get("args", [])]]
        subprocess.run(argv, env={**env_base, **env}, check=True, timeout=10)
    return _recorded(out)


class _Served(http.server.BaseHTTPRequestHandler):
    body = b""

    def do_GET(self) -> None:
        self.send_response(200)
        self.end_headers()
        self.wfile.write(self.body if not self.path.endswith(".sh") else b"true\n")

    def log_message(self, *args: object) -> None:
        """Quiet."""


@pytest.fixture
def served(stub: Path) -> Iterator[str]:
    """A loopback HTTP server handing out the stub (the dropper's download)."""
    handler = type("Handler", (_Served,), {"body": stub.read_bytes()})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/x"
    finally:
        server.shutdown()
        server.server_close()


def test_every_transform_and_pair_runs_the_same_argv(
    stub: Path, served: str, tmp_path: Path
) -> None:
    """Executed by sh/bash, each transformed command hands the stub the original argv."""
    table = dict(transforms.TRANSFORMS)
    table["dropper"] = transforms.dropper(served)
    checked = 0
    for argv in _argvs(stub):
        seed = _synthetic(argv)
        expected = argv[1:] if argv[0] != "sh" else ("--url=pool.example:443", "-k")
        combos = [(name,) for name in table] + list(transforms.pairs())
        for names in combos:
            variant: transforms.Variant | None = transforms.Variant(seed.argv)
            for name in names:
                variant = table[name](variant) if variant is not None else None
            if variant is None or "rename" in names:
                continue
            out = tmp_path / f"out-{checked}"
            got = _run_rendered(seed, variant, out)
            assert got == expected, f"{names}: {got}"
            checked += 1
    assert checked > 300


def test_rename_changes_only_the_binary() -> None:
    seed = _synthetic(("/tmp/xmrig", "-o", "pool:3333"))
    variant = transforms.apply(seed, ["rename"])
    assert variant is not None
    assert variant.argv == (transforms.RENAMED, "-o", "pool:3333")
    assert transforms.apply(_synthetic(("sh", "-c", "xmrig")), ["rename"]) is None
    assert transforms.apply(_synthetic(("python3", "-c", "x")), ["rename"]) is None
    assert transforms.apply(_synthetic(("/tmp/kdevtmpfsi",)), ["rename"]) is None


def test_pairs_put_commands_before_splits_and_placements_once_each() -> None:
    found = set(transforms.pairs())
    assert ("base64", "eval") in found
    assert ("eval", "base64") in found
    assert ("base64", "probe") in found
    assert ("split-configmap", "hook") in found
    assert ("probe", "base64") not in found
    assert ("init", "probe") not in found
    assert ("split-env", "split-configmap") not in found
    assert len(found) < 250


# -------- the property, with the engine --------


@cache
def _policies() -> tuple[CompiledPolicy, ...]:
    return tuple(corpus.admission_policies())


@cache
def _seeds() -> tuple[tuple[transforms.Seed, ...], tuple[transforms.Seed, ...]]:
    """Detected malicious seeds and quiet benign seeds of the main (non-held-out) corpus."""
    return transforms.property_seeds(corpus.cases(heldout=False), _policies())


@pytest.mark.parametrize("name", sorted(transforms.SUPPORTED))
def test_a_detected_miner_stays_detected_under(name: str) -> None:
    detected, _ = _seeds()
    assert detected
    assert transforms.changed((name,), detected, malicious=True, policies=_policies())[1] == []


@pytest.mark.parametrize("name", sorted(transforms.NEUTRAL))
def test_a_benign_container_stays_benign_under(name: str) -> None:
    _, quiet = _seeds()
    assert quiet
    assert transforms.changed((name,), quiet, malicious=False, policies=_policies())[1] == []


PAIRS = list(transforms.pairs())


@pytest.mark.parametrize("index", range(len(PAIRS)), ids=lambda i: "+".join(PAIRS[i]))
def test_a_pair_of_transforms_changes_no_verdict(index: int) -> None:
    detected, quiet = _seeds()
    names = PAIRS[index]
    policies = _policies()
    sides = [(detected, True)]
    if set(names) <= transforms.NEUTRAL:
        sides.append((quiet, False))
    for chosen, malicious in sides:
        some = transforms.rotation(index, chosen)
        assert transforms.changed(names, some, malicious=malicious, policies=policies)[1] == []
