"""``minerguard investigate NAMESPACE/NAME``: a MinerDetection's investigation, as a report.

Reads the detection from the cluster (``--server URL``, else in-cluster credentials, else
kubeconfig) or from a file (``-f FILE``, ``-`` for stdin: what ``kubectl get md NAME -o yaml``
or ``-o json`` saved, a ``List`` too), and prints it as text, JSON or one HTML page
(``--output``). The renderers are pure (:mod:`minerguard.report`); this module only fetches.

A detection the operator has not investigated yet is still a report: what the detection itself
holds (evidence, actions, its own timeline), with the fact said at the top, on stderr, and as
``"investigated": false`` in JSON, and exit status 0, since a responder needs what there is.
An investigation this version cannot read (an operator of another version, a hand-edited
object) is left out the same way, with the reason, rather than failing the whole report.

Exit status: 0 the report was printed; 1 no such MinerDetection; 2 usage, or a file or
object that is not a MinerDetection; 3 the API could not be read (unreachable, forbidden, no
credentials).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from pydantic import ValidationError

from minerguard import manifests
from minerguard.api.detection import MinerDetection
from minerguard.api.meta import API_VERSION
from minerguard.errors import InputError
from minerguard.kube import client, errors, resources
from minerguard.report import blocks, html, json_report, sections, text

EXIT_OK, EXIT_NOT_FOUND, EXIT_INPUT, EXIT_API = 0, 1, 2, 3
Renderer = Callable[[MinerDetection, Sequence[str]], str]
RENDERERS: dict[str, Renderer] = {
    "text": text.render,
    "json": json_report.render,
    "html": html.render,
}
MAX_ERRORS = 3
"""Validation errors named when an object is not a MinerDetection."""


class Failure(Exception):
    """Why no report can be printed, and the exit status that says so."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="minerguard investigate",
        description=(
            "Show a MinerDetection's investigation: how the miner got in, who ran it, what "
            "would restart it, which door was open, the checklist and the timeline."
        ),
        epilog=(
            "Exit status: 0 printed (also when not investigated yet: the report says so), "
            "1 not found, 2 usage or malformed input, 3 the API could not be read."
        ),
    )
    parser.add_argument(
        "target", nargs="?", metavar="NAMESPACE/NAME", help="the MinerDetection (NAME: -n)"
    )
    parser.add_argument("-n", "--namespace", help="namespace when NAME has none (default)")
    parser.add_argument(
        "-o",
        "--output",
        choices=sorted(RENDERERS),
        default="text",
        help="text (default), json (the record and its timeline) or html (one page)",
    )
    parser.add_argument(
        "-f", "--filename", metavar="FILE", help="read it from FILE (YAML or JSON; - for stdin)"
    )
    parser.add_argument("--server", help="API server URL (no credentials: tests and proxies)")
    parser.add_argument("--kubeconfig", help="kubeconfig file (default: $KUBECONFIG, ~/.kube)")
    parser.add_argument("--context", help="kubeconfig context")
    parser.add_argument(
        "--request-timeout", type=float, default=30.0, metavar="SECONDS", help="per API call"
    )
    return parser


def _target(target: str | None, namespace: str | None) -> tuple[str | None, str | None]:
    """(namespace, name) as given; either may be None (a file may name its own)."""
    if target is None or "/" not in target:
        return namespace, target
    ns, _, name = target.partition("/")
    if not ns or not name or "/" in name:
        raise Failure(f"{target!r} is not NAMESPACE/NAME", EXIT_INPUT)
    return ns, name


def _from_cluster(args: argparse.Namespace, namespace: str, name: str) -> dict[str, Any]:
    where = f"minerdetection {namespace}/{name}"
    try:
        api = client.api_client(args.server, kubeconfig=args.kubeconfig, context=args.context)
        url = resources.path(API_VERSION, MinerDetection.plural, namespace, name)
        response = resources.request(api, "GET", url, timeout=args.request_timeout)
        return resources.read_json(response)
    except errors.NotFound as err:
        raise Failure(f"{where} not found", EXIT_NOT_FOUND) from err
    except errors.Forbidden as err:
        raise Failure(f"may not read {where}: {err}", EXIT_API) from err
    except errors.ConfigError as err:
        raise Failure(f"{err} (or give --server, --kubeconfig, or -f FILE)", EXIT_API) from err
    except errors.ApiError as err:
        raise Failure(f"cannot read {where}: {err}", EXIT_API) from err


def _from_file(source: str, namespace: str | None, name: str | None) -> dict[str, Any]:
    found: list[tuple[str, Mapping[str, Any]]] = []
    try:
        for origin, doc in manifests.documents(source):
            found += manifests.objects(origin, doc)
    except InputError as err:
        raise Failure(str(err), EXIT_INPUT) from err
    detections = [(o, obj) for o, obj in found if obj.get("kind") == MinerDetection.kind]
    if name is not None:
        detections = [
            (origin, obj)
            for origin, obj in detections
            if _meta(obj).get("name") == name
            and (namespace is None or _meta(obj).get("namespace") in (namespace, None))
        ]
        if not detections:
            raise Failure(
                f"minerdetection {namespace}/{name} not found in {source}", EXIT_NOT_FOUND
            )
    if not detections:
        raise Failure(f"{source}: no MinerDetection in it", EXIT_INPUT)
    if len(detections) > 1:
        raise Failure(
            f"{source}: {len(detections)} MinerDetections; name one as NAMESPACE/NAME", EXIT_INPUT
        )
    return dict(detections[0][1])


def _meta(obj: Mapping[str, Any]) -> Mapping[str, Any]:
    meta = obj.get("metadata")
    return meta if isinstance(meta, Mapping) else {}


def _problems(err: ValidationError) -> str:
    listed = [
        f"{'.'.join(str(p) for p in e['loc']) or '(object)'}: {e['msg']}"
        for e in err.errors()[:MAX_ERRORS]
    ]
    more = err.error_count() - len(listed)
    return "; ".join(listed) + (f" (and {more} more)" if more > 0 else "")


def model(raw: Mapping[str, Any], where: str) -> tuple[MinerDetection, list[str]]:
    """The detection, and notes on what of it could not be read (an unreadable investigation)."""
    try:
        return MinerDetection.model_validate(raw), []
    except ValidationError as err:
        status = raw.get("status")
        if not isinstance(status, Mapping) or "investigation" not in status:
            raise Failure(f"{where} is not a MinerDetection: {_problems(err)}", EXIT_INPUT) from err
        problem = _problems(err)
    stripped = {**raw, "status": {k: v for k, v in status.items() if k != "investigation"}}
    try:
        detection = MinerDetection.model_validate(stripped)
    except ValidationError as err:
        raise Failure(f"{where} is not a MinerDetection: {_problems(err)}", EXIT_INPUT) from err
    return detection, [f"status.investigation could not be read, so it is left out: {problem}"]


def run(args: argparse.Namespace) -> tuple[str, list[str]]:
    """The report text and the notes for stderr."""
    namespace, name = _target(args.target, args.namespace)
    if args.filename:
        raw = _from_file(args.filename, namespace, name)
        where = args.filename
    elif name is None:
        raise Failure("name a MinerDetection as NAMESPACE/NAME, or give -f FILE", EXIT_INPUT)
    else:
        namespace = namespace or "default"
        raw = _from_cluster(args, namespace, name)
        where = f"minerdetection {namespace}/{name}"
    detection, notes = model(raw, where)
    investigated = bool(detection.status and detection.status.investigation)
    said = notes + ([] if investigated else [sections.NOT_INVESTIGATED])
    return RENDERERS[args.output](detection, notes), said


def main(argv: Sequence[str]) -> int:
    """Print the report; the exit status says whether there was one to print."""
    args = _parser().parse_args(list(argv))
    try:
        report, notes = run(args)
    except Failure as failure:
        print(f"minerguard investigate: {blocks.inert(str(failure))}", file=sys.stderr)
        return failure.status
    for note in notes:
        print(f"minerguard investigate: {blocks.inert(note)}", file=sys.stderr)
    sys.stdout.write(report)
    sys.stdout.flush()
    return EXIT_OK
