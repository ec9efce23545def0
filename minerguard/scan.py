"""``minerguard scan``: the admission decision, offline, for manifests on disk or stdin.

Uses :mod:`minerguard.evaluate` exactly as the webhook does, so a manifest that scans clean
is admitted and one that scans as DENY is refused. Images are not resolved (no registry
access): containers that rely on their image's entrypoint are checked on what the manifest
says. ConfigMaps and Secrets the containers read (env, envFrom, mounted files the command
line names) are resolved against those given in the same input, as the webhook resolves them
against the cluster; one that is not there is named (a note, or a refusal under
``onRegistryFailure: Deny``). Workload CRDs (Argo, Tekton, Kubeflow) are read where they keep
their containers, other kinds searched for pod templates by shape; no kind is skipped
silently: objects of a kind that runs something but could not be judged are listed as
UNJUDGED in every output format. Exit status: 0 clean, 1 something would be denied, 2 usage
or input errors, 3 (only with ``--fail-on-unjudged``) nothing denied but something unjudged.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TextIO

from minerguard import __version__, evaluate, manifests, references, workloads
from minerguard.compiled_policy import CompiledPolicy, by_strictness, load_policy_files
from minerguard.errors import InputError, PolicyError, UnsupportedObjectError

EXIT_CLEAN, EXIT_DENY, EXIT_ERROR, EXIT_UNJUDGED = 0, 1, 2, 3
UNJUDGED_RULE = "unjudged-kind"


@dataclass(frozen=True)
class PolicyView:
    """One policy's part in a decision: whether it covers the object, and its own outcome."""

    policy: CompiledPolicy
    not_covering: str | None
    decision: evaluate.Decision

    @property
    def mode(self) -> str:
        """``Enforce, admission Deny``, ``Enforce, dry run`` or ``Audit``."""
        spec = self.policy.spec
        if self.policy.enforcing:
            return f"Enforce, admission {spec.actions.admission.value}"
        return "Enforce, dry run" if spec.dry_run else spec.mode.value

    def as_json(self) -> dict[str, Any]:
        """The view as a JSON object."""
        return {
            "policy": self.policy.name,
            "mode": self.mode,
            "covers": self.not_covering is None,
            "notCovering": self.not_covering,
            "verdict": verdict(self.decision),
            "exempt": list(self.decision.exempt),
            "findings": [_finding_json(f) for f in self.decision.findings],
        }


def verdict(decision: evaluate.Decision) -> str:
    """DENY, WARN or OK."""
    if not decision.allowed:
        return "DENY"
    return "WARN" if decision.warnings else "OK"


def explain(
    obj: Mapping[str, Any],
    policies: Sequence[CompiledPolicy],
    namespace_labels: Mapping[str, str],
    lookup: references.Lookup | None = None,
    kinds: workloads.Workloads = workloads.BUILTIN,
) -> tuple[PolicyView, ...]:
    """Every policy's part in the decision about ``obj``, strictest policy first.

    Each policy is evaluated alone, exactly as :func:`minerguard.evaluate.evaluate_object`
    evaluates it among the others; the object's outcome is the strictest of these.
    """
    metadata = obj.get("metadata")
    namespace = metadata.get("namespace") if isinstance(metadata, Mapping) else None
    views = []
    for policy in by_strictness(policies):
        why = policy.not_covering(
            namespace if isinstance(namespace, str) else None, namespace_labels
        )
        decision = evaluate.evaluate_object(
            obj, [policy], namespace_labels=namespace_labels, lookup=lookup, kinds=kinds
        )
        views.append(PolicyView(policy, why, decision))
    return tuple(views)


@dataclass(frozen=True)
class Result:
    """The decision about one object, and where it was read from."""

    origin: str
    obj: Mapping[str, Any]
    decision: evaluate.Decision
    explained: tuple[PolicyView, ...] = ()
    """Per policy, with ``--explain``."""
    unjudged: str | None = None
    """Why the object was not judged (a kind minerguard does not know where to read)."""
    by_shape: bool = False
    """Judged on pod specs found by shape: its kind is not in the table (say so)."""

    @property
    def deciding(self) -> str | None:
        """The policy whose outcome applies: the first (strictest) one reported, if any."""
        reported: list[evaluate.Finding | evaluate.Unverified] = [
            *self.decision.findings,
            *self.decision.unverified,
        ]
        chosen = next((item for item in reported if item.denies), None) or next(
            iter(reported), None
        )
        return chosen.policy.name if chosen is not None else None

    @property
    def verdict(self) -> str:
        """DENY, WARN or OK; UNJUDGED for an object of a kind that was not judged."""
        return UNJUDGED if self.unjudged is not None else verdict(self.decision)

    @property
    def kind(self) -> str:
        """``Kind`` or ``Kind.group`` (how unjudged kinds are counted and named)."""
        group = workloads.group_of(self.obj.get("apiVersion"))
        return f"{self.obj.get('kind')}.{group}" if group else str(self.obj.get("kind"))

    @property
    def strictest(self) -> str:
        """The outcome and the policy it comes from, in words."""
        if self.deciding is not None:
            return f'{self.verdict} by MinerPolicy "{self.deciding}"'
        if not self.decision.policies:
            return f"{self.verdict} (no policy covers it)"
        return self.verdict

    @property
    def label(self) -> str:
        """``Kind/namespace/name`` of the object."""
        metadata = self.obj.get("metadata") or {}
        namespace = metadata.get("namespace") or "default"
        return f"{self.obj.get('kind')}/{namespace}/{metadata.get('name') or '?'}"


def scan(
    paths: Sequence[str],
    policies: Sequence[CompiledPolicy],
    errors: list[str],
    *,
    explaining: bool = False,
) -> list[Result]:
    """Decide about every Pod and workload in ``paths``; input problems go to ``errors``."""
    results = []
    loaded: list[tuple[str, Any]] = []
    for source in manifests.expand_paths(paths):
        try:
            for origin, doc in manifests.documents(source):
                loaded.append((origin, doc))
        except InputError as err:
            errors.append(str(err))
    lookup = given_objects(loaded)
    for origin, doc in loaded:
        try:
            for where, obj in manifests.objects(origin, doc):
                kinds, by_shape = _kinds(obj)
                if kinds is None:
                    if not workloads.runs_nothing(obj):
                        results.append(Result(where, obj, evaluate.Decision(), unjudged=NOT_KNOWN))
                    continue
                namespace = str((obj.get("metadata") or {}).get("namespace") or "default")
                labels = {"kubernetes.io/metadata.name": namespace}
                decision = evaluate.evaluate_object(
                    obj, policies, namespace_labels=labels, lookup=lookup, kinds=kinds
                )
                views = explain(obj, policies, labels, lookup, kinds) if explaining else ()
                results.append(Result(where, obj, decision, views, by_shape=by_shape))
        except (InputError, UnsupportedObjectError, AttributeError, TypeError) as err:
            errors.append(f"{origin}: {err}" if not str(err).startswith(origin) else str(err))
    return results


UNJUDGED = "UNJUDGED"
NOT_KNOWN = (
    "not judged: minerguard does not know where this kind keeps what its pods run, and found "
    "no pod template in it (register it: webhook.podTemplateKinds)"
)
BY_SHAPE = "judged on the pod templates found in it; register its kind to say where they are"


def _kinds(obj: Mapping[str, Any]) -> tuple[workloads.Workloads | None, bool]:
    """The table to judge ``obj`` with, and whether its pod specs were found by shape.

    A kind in the table is read where it keeps its containers; any other is searched for
    pod-spec-shaped parts (:func:`minerguard.workloads.find_pod_specs`, bounded); None when
    that finds none either.
    """
    if workloads.BUILTIN.of(obj) is not None:
        return workloads.BUILTIN, False
    if workloads.runs_nothing(obj):
        return None, False
    group = workloads.group_of(obj.get("apiVersion")) or ""
    kind = workloads.user_kind(group, str(obj.get("kind")), "", ())
    try:
        kind.read(obj)
    except UnsupportedObjectError:
        return None, False
    return workloads.BUILTIN.with_kinds([kind]), True


def unjudged_kinds(results: Sequence[Result]) -> dict[str, int]:
    """Per kind not judged, how many objects of it were left out."""
    counts: dict[str, int] = {}
    for result in results:
        if result.unjudged is not None:
            counts[result.kind] = counts.get(result.kind, 0) + 1
    return counts


def given_objects(loaded: Sequence[tuple[str, Any]]) -> references.Lookup:
    """A lookup over the ConfigMaps and Secrets among the documents.

    A document that names no namespace is in ``default``, as ``kubectl apply`` puts it.
    """
    found: dict[tuple[str, str, str], references.Data] = {}
    for origin, doc in loaded:
        try:
            for _, obj in manifests.objects(origin, doc):
                data = references.object_data(obj)
                metadata = obj.get("metadata")
                if data is None or not isinstance(metadata, Mapping):
                    continue
                namespace = str(metadata.get("namespace") or "default")
                found[(str(obj["kind"]), namespace, str(metadata.get("name") or ""))] = data
        except InputError:
            continue  # reported when the document is judged

    def lookup(kind: str, namespace: str, name: str) -> references.Data | None:
        return found.get((kind, namespace, name))

    return lookup


def _finding_json(finding: evaluate.Finding) -> dict[str, Any]:
    return {
        "container": finding.container.name,
        "containerKind": finding.container.kind.value,
        "origin": finding.origin,
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
        if result.unjudged is not None:
            print(f"      {result.unjudged}", file=out)
        if result.by_shape:
            print(f"      note: {BY_SHAPE}", file=out)
        for finding in result.decision.findings:
            action = "deny" if finding.denies else "warn"
            print(f"      {action}: {finding.message()}", file=out)
        for unverified in result.decision.unverified:
            print(f"      note: {unverified.message()}", file=out)
        if result.explained:
            write_explained(result, out)
    counts = unjudged_kinds(results)
    if counts:
        listed = ", ".join(f"{kind} ({n})" for kind, n in sorted(counts.items()))
        total = sum(counts.values())
        print(f"not judged: {total} object(s) of {len(counts)} kind(s): {listed}", file=out)


def write_explained(result: Result, out: TextIO) -> None:
    """Per policy: coverage, exemptions that applied and why, its outcome; then the strictest."""
    for view in result.explained:
        head = f'      policy "{view.policy.name}" ({view.mode}): '
        if view.not_covering is not None:
            print(f"{head}does not cover: {view.not_covering}", file=out)
            continue
        namespace = result.label.split("/")[1]
        print(f"{head}covers namespace {namespace}: {verdict(view.decision)}", file=out)
        for reason in view.decision.exempt:
            print(f"        exempt: {reason}", file=out)
        for finding in view.decision.findings:
            action = "deny" if finding.denies else "warn"
            print(f"        {action}: {finding.message()}", file=out)
        for unverified in view.decision.unverified:
            print(f"        note: {unverified.message()}", file=out)
    print(f"      strictest: {result.strictest}", file=out)


def write_json(results: Sequence[Result], out: TextIO) -> None:
    """A JSON array, one entry per object."""
    payload = [
        {
            "origin": r.origin,
            "object": r.label,
            "verdict": r.verdict,
            "message": r.decision.message,
            "findings": [_finding_json(f) for f in r.decision.findings],
            "notes": [
                *([BY_SHAPE] if r.by_shape else []),
                *(u.message() for u in r.decision.unverified),
            ],
            **({"kind": r.kind, "unjudged": r.unjudged} if r.unjudged is not None else {}),
            **(
                {
                    "explain": {
                        "policies": [view.as_json() for view in r.explained],
                        "strictest": {"verdict": r.verdict, "policy": r.deciding},
                    }
                }
                if r.explained
                else {}
            ),
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
        if result.unjudged is not None:
            rules.setdefault(UNJUDGED_RULE, {"id": UNJUDGED_RULE, "name": UNJUDGED_RULE})
            sarif_results.append(
                {
                    "ruleId": UNJUDGED_RULE,
                    "level": "note",
                    "message": {"text": f"{result.kind} {result.unjudged}"},
                    "locations": [
                        {
                            "physicalLocation": {
                                "artifactLocation": {"uri": result.origin.split("[", 1)[0]}
                            },
                            "logicalLocations": [{"name": result.label, "kind": "object"}],
                        }
                    ],
                    "properties": {"kind": result.kind},
                }
            )
    counts = unjudged_kinds(results)
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
                "properties": {"unjudgedKinds": counts},
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
    p.add_argument(
        "--explain",
        action="store_true",
        help="per object, every policy: whether it covers it, which exemptions apply and why, "
        "its outcome, and the strictest outcome (text and json)",
    )
    p.add_argument(
        "--fail-on-unjudged",
        action="store_true",
        help=f"exit {EXIT_UNJUDGED} when nothing is denied but objects of kinds minerguard "
        "cannot judge were given (they are listed in every output format either way)",
    )
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
    results = scan(args.paths, policies, errors, explaining=args.explain)
    WRITERS[args.output](results, sys.stdout)
    for error in errors:
        print(f"minerguard scan: error: {error}", file=sys.stderr)
    if errors:
        return EXIT_ERROR
    if any(not r.decision.allowed for r in results):
        return EXIT_DENY
    if args.fail_on_unjudged and unjudged_kinds(results):
        return EXIT_UNJUDGED
    return EXIT_CLEAN
