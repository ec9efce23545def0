"""``minerguard scan``: the admission decision, offline, for manifests on disk or stdin.

Uses :mod:`minerguard.evaluate` exactly as the webhook does, so a manifest that scans clean
is admitted and one that scans as DENY is refused. Images are not resolved (no registry
access): containers that rely on their image's entrypoint are checked on what the manifest
says. Exit status: 0 clean, 1 something would be denied, 2 usage or input errors.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

import yaml

from minerguard import __version__, evaluate, podspec
from minerguard.errors import InputError, PolicyError, UnsupportedObjectError
from minerguard.policy import CompiledPolicy, load_policy_files

MAX_INPUT_BYTES = 32 << 20
MANIFEST_SUFFIXES = {".yaml", ".yml", ".json"}
EXIT_CLEAN, EXIT_DENY, EXIT_ERROR = 0, 1, 2


@dataclass(frozen=True)
class Result:
    """The decision about one object, and where it was read from."""

    origin: str
    obj: Mapping[str, Any]
    decision: evaluate.Decision

    @property
    def verdict(self) -> str:
        """DENY, WARN or OK."""
        if not self.decision.allowed:
            return "DENY"
        return "WARN" if self.decision.warnings else "OK"

    @property
    def label(self) -> str:
        """``Kind/namespace/name`` of the object."""
        metadata = self.obj.get("metadata") or {}
        namespace = metadata.get("namespace") or "default"
        return f"{self.obj.get('kind')}/{namespace}/{metadata.get('name') or '?'}"


def _read(source: str) -> str:
    if source == "-":
        text = sys.stdin.read(MAX_INPUT_BYTES + 1)
    else:
        try:
            with Path(source).open("rb") as handle:
                raw = handle.read(MAX_INPUT_BYTES + 1)
        except OSError as err:
            raise InputError(f"{source}: cannot read: {err.strerror or err}") from err
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as err:
            raise InputError(f"{source}: not UTF-8 text (byte {err.start})") from err
    if len(text) > MAX_INPUT_BYTES:
        raise InputError(f"{source}: larger than {MAX_INPUT_BYTES >> 20} MiB")
    return text


def documents(source: str) -> Iterator[tuple[str, Any]]:
    """(origin, document) for each YAML/JSON document in a file or stdin."""
    text = _read(source)
    if "\x00" in text:
        raise InputError(f"{source}: binary data, not a manifest")
    try:
        if text.lstrip()[:1] in ("{", "["):
            yield f"{source}[0]", json.loads(text)
            return
        for index, doc in enumerate(yaml.safe_load_all(text)):
            if doc is not None:
                yield f"{source}[{index}]", doc
    except (yaml.YAMLError, json.JSONDecodeError, RecursionError) as err:
        problem = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise InputError(f"{source}: not valid YAML/JSON: {problem}") from err


def objects(origin: str, doc: Any) -> Iterator[tuple[str, Mapping[str, Any]]]:
    """Objects in a document, with ``List`` kinds (``kubectl get -o yaml``) expanded."""
    if not isinstance(doc, Mapping):
        raise InputError(f"{origin}: a {type(doc).__name__}, not a Kubernetes object")
    if isinstance(doc.get("kind"), str) and doc["kind"].endswith("List"):
        for index, item in enumerate(doc.get("items") or []):
            yield from objects(f"{origin}.items[{index}]", item)
        return
    yield origin, doc


def expand_paths(paths: Sequence[str]) -> Iterator[str]:
    """Files named, and manifest files under directories named, in a stable order."""
    for path in paths:
        if path != "-" and Path(path).is_dir():
            for found in sorted(Path(path).rglob("*")):
                if found.suffix in MANIFEST_SUFFIXES and found.is_file():
                    yield str(found)
        else:
            yield path


def scan(
    paths: Sequence[str], policies: Sequence[CompiledPolicy], errors: list[str]
) -> list[Result]:
    """Decide about every Pod and workload in ``paths``; input problems go to ``errors``."""
    results = []
    for source in expand_paths(paths):
        try:
            for origin, doc in documents(source):
                try:
                    for where, obj in objects(origin, doc):
                        if obj.get("kind") not in podspec.POD_TEMPLATE_PATHS:
                            continue
                        namespace = str((obj.get("metadata") or {}).get("namespace") or "default")
                        labels = {"kubernetes.io/metadata.name": namespace}
                        decision = evaluate.evaluate_object(obj, policies, namespace_labels=labels)
                        results.append(Result(where, obj, decision))
                except (InputError, UnsupportedObjectError, AttributeError, TypeError) as err:
                    errors.append(
                        f"{origin}: {err}" if not str(err).startswith(origin) else str(err)
                    )
        except InputError as err:
            errors.append(str(err))
    return results


def _finding_json(finding: evaluate.Finding) -> dict[str, Any]:
    return {
        "container": finding.container.name,
        "containerKind": finding.container.kind.value,
        "policy": finding.policy.name,
        "denies": finding.denies,
        "score": finding.verdict.score,
        "command": list(finding.argv),
        "signals": [
            {
                "name": s.name,
                "detail": s.detail,
                "where": s.where,
                "weight": s.weight,
                "signature": s.signature,
            }
            for s in finding.verdict.signals
        ],
    }


def write_text(results: Sequence[Result], out: TextIO) -> None:
    """One line per object, then the reasons under each finding."""
    for result in results:
        print(f"{result.verdict:<4}  {result.label}  ({result.origin})", file=out)
        for finding in result.decision.findings:
            action = "deny" if finding.denies else "warn"
            print(f"      {action}: {finding.message()}", file=out)
        for unverified in result.decision.unverified:
            print(f"      note: {unverified.message()}", file=out)


def write_json(results: Sequence[Result], out: TextIO) -> None:
    """A JSON array, one entry per object."""
    payload = [
        {
            "origin": r.origin,
            "object": r.label,
            "verdict": r.verdict,
            "message": r.decision.message,
            "findings": [_finding_json(f) for f in r.decision.findings],
        }
        for r in results
    ]
    json.dump(payload, out, indent=2)
    out.write("\n")


def write_sarif(results: Sequence[Result], out: TextIO) -> None:
    """SARIF 2.1.0, so code-scanning UIs show findings against the manifest files."""
    rules: dict[str, dict[str, Any]] = {}
    sarif_results = []
    for result in results:
        for finding in result.decision.findings:
            top = finding.verdict.signals[0]
            rules.setdefault(top.name, {"id": top.name, "name": top.name})
            sarif_results.append(
                {
                    "ruleId": top.name,
                    "level": "error" if finding.denies else "warning",
                    "message": {"text": finding.message()},
                    "locations": [
                        {
                            "physicalLocation": {
                                "artifactLocation": {"uri": result.origin.split("[", 1)[0]}
                            },
                            "logicalLocations": [
                                {"name": result.label, "kind": "object"},
                            ],
                        }
                    ],
                    "properties": {"score": finding.verdict.score, **_finding_json(finding)},
                }
            )
    document = {
        "version": "2.1.0",
        "$schema": "https://json.schemastore.org/sarif-2.1.0.json",
        "runs": [
            {
                "tool": {
                    "driver": {
                        "name": "minerguard",
                        "version": __version__,
                        "rules": list(rules.values()),
                    }
                },
                "results": sarif_results,
            }
        ],
    }
    json.dump(document, out, indent=2)
    out.write("\n")


WRITERS = {"text": write_text, "json": write_json, "sarif": write_sarif}


def parser() -> argparse.ArgumentParser:
    """The ``scan`` argument parser."""
    p = argparse.ArgumentParser(
        prog="minerguard scan",
        description="Check Kubernetes manifests for cryptominers, as admission would.",
    )
    p.add_argument("paths", nargs="+", metavar="PATH", help="files, directories or - for stdin")
    p.add_argument(
        "--policy", action="append", default=[], metavar="FILE", help="MinerPolicy YAML file"
    )
    p.add_argument("--output", choices=sorted(WRITERS), default="text")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``minerguard scan``."""
    args = parser().parse_args(argv)
    try:
        policies = load_policy_files(args.policy)
    except PolicyError as err:
        print(f"minerguard scan: invalid policy: {err}", file=sys.stderr)
        return EXIT_ERROR
    errors: list[str] = []
    results = scan(args.paths, policies, errors)
    WRITERS[args.output](results, sys.stdout)
    for error in errors:
        print(f"minerguard scan: error: {error}", file=sys.stderr)
    if errors:
        return EXIT_ERROR
    return EXIT_DENY if any(not r.decision.allowed for r in results) else EXIT_CLEAN
