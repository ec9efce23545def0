"""Generate the CRD YAML from the pydantic models.

Run ``python -m minerguard.api.crds`` to rewrite ``charts/minerguard/files/crds/``; a test
regenerates in memory and fails on drift. Pydantic's JSON schema is turned into a structural
OpenAPI v3 schema that the API server accepts: ``$ref`` inlined, ``anyOf [X, null]`` folded into
``nullable: true``, titles dropped, descriptions, enums, bounds and defaults kept.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import yaml

from minerguard.api import detection, policy
from minerguard.api.meta import GROUP, VERSION, ApiModel, ResourceInfo

CRD_DIR = Path("charts/minerguard/files/crds")
CATEGORIES = ["minerguard", "security"]

_PRINTER_COLUMNS: dict[str, list[dict[str, Any]]] = {
    "MinerPolicy": [
        {"name": "Mode", "type": "string", "jsonPath": ".spec.mode"},
        {"name": "Admission", "type": "string", "jsonPath": ".spec.actions.admission"},
        {
            "name": "Ready",
            "type": "string",
            "jsonPath": '.status.conditions[?(@.type=="Ready")].status',
        },
        {"name": "Detections", "type": "integer", "jsonPath": ".status.counts.detections"},
        {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
    ],
    "MinerDetection": [
        {"name": "Pod", "type": "string", "jsonPath": ".spec.podName"},
        {"name": "Node", "type": "string", "jsonPath": ".spec.node"},
        {"name": "Layer", "type": "string", "jsonPath": ".spec.layer"},
        {"name": "Reason", "type": "string", "jsonPath": ".spec.reasons[0].signal"},
        {"name": "Score", "type": "number", "jsonPath": ".spec.score"},
        {"name": "Action", "type": "string", "jsonPath": ".status.action"},
        {"name": "Origin", "type": "string", "jsonPath": ".status.investigation.origin"},
        {"name": "Via", "type": "string", "jsonPath": ".status.investigation.via"},
        {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
        {"name": "Seen", "type": "integer", "jsonPath": ".status.occurrences", "priority": 1},
        {"name": "Last", "type": "date", "jsonPath": ".status.lastSeen", "priority": 1},
        {"name": "User", "type": "string", "jsonPath": ".spec.requestingUser", "priority": 1},
        {"name": "Image", "type": "string", "jsonPath": ".spec.image", "priority": 1},
        # Last: kubectl describe sorts the status's fields, burying the summary; -o wide shows it.
        {
            "name": "Summary",
            "type": "string",
            "jsonPath": ".status.investigation.summary",
            "priority": 1,
        },
    ],
}

_DROP_KEYS = {"title"}


def _resolve(node: Any, defs: dict[str, Any]) -> Any:
    """Inline ``$ref``s and fold ``anyOf [X, null]`` into ``nullable``, recursively."""
    if isinstance(node, list):
        return [_resolve(item, defs) for item in node]
    if not isinstance(node, dict):
        return node
    if "$ref" in node:
        target = _resolve(defs[node["$ref"].rsplit("/", 1)[-1]], defs)
        extra = {k: _resolve(v, defs) for k, v in node.items() if k not in {"$ref", *_DROP_KEYS}}
        return {**target, **extra}
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key in _DROP_KEYS or key == "$defs":
            continue
        out[key] = _resolve(value, defs)
    if "anyOf" in out:
        options = [o for o in out["anyOf"] if o.get("type") != "null"]
        if len(options) < len(out["anyOf"]):
            out["nullable"] = True
        if len(options) == 1:
            del out["anyOf"]
            out = {**options[0], **out}
    if "default" in out and out["default"] is None:
        del out["default"]  # the API server treats a null default as a value, not as absence
    for bound, exclusive in (("minimum", "exclusiveMinimum"), ("maximum", "exclusiveMaximum")):
        if isinstance(out.get(exclusive), int | float) and not isinstance(out[exclusive], bool):
            out[bound] = out.pop(exclusive)  # JSON Schema 2020 form -> OpenAPI v3.0 form
            out[exclusive] = True
    if "const" in out:
        out["enum"] = [out.pop("const")]
    return out


def openapi_schema(model: type[ApiModel]) -> dict[str, Any]:
    """The structural OpenAPI v3 schema of a model, as a CRD wants it."""
    raw = model.model_json_schema(by_alias=True, mode="validation")
    schema: dict[str, Any] = _resolve(raw, raw.get("$defs", {}))
    properties = schema["properties"]
    properties["metadata"] = {"type": "object"}
    for name in ("apiVersion", "kind"):
        properties[name] = {"type": "string"}
    if "status" in properties:
        properties["status"].pop("default", None)
    schema.pop("required", None)
    if "spec" in (raw.get("required") or []):
        schema["required"] = ["spec"]
    schema.pop("description", None)
    return schema


def crd(model: type[ResourceInfo]) -> dict[str, Any]:
    """The CustomResourceDefinition of a resource model."""
    assert issubclass(model, ApiModel)  # noqa: S101 - both bases are ours
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{model.plural}.{GROUP}"},
        "spec": {
            "group": GROUP,
            "names": {
                "kind": model.kind,
                "plural": model.plural,
                "singular": model.singular,
                "shortNames": list(model.short_names),
                "categories": CATEGORIES,
            },
            "scope": "Namespaced" if model.namespaced else "Cluster",
            "versions": [
                {
                    "name": VERSION,
                    "served": True,
                    "storage": True,
                    "subresources": {"status": {}},
                    "additionalPrinterColumns": _PRINTER_COLUMNS[model.kind],
                    "schema": {"openAPIV3Schema": openapi_schema(model)},
                }
            ],
        },
    }


def rendered() -> dict[str, str]:
    """File name -> YAML text for every CRD."""
    header = "# Generated by `python -m minerguard.api.crds` from minerguard/api. Do not edit.\n"
    return {
        f"{model.plural}.yaml": header + yaml.safe_dump(crd(model), sort_keys=False, width=100)
        for model in (policy.MinerPolicy, detection.MinerDetection)
    }


def main(argv: list[str] | None = None) -> int:
    """Write (or with --check, verify) the CRD files."""
    parser = argparse.ArgumentParser(prog="python -m minerguard.api.crds")
    parser.add_argument("--out", type=Path, default=CRD_DIR)
    parser.add_argument("--check", action="store_true", help="fail if the files are stale")
    args = parser.parse_args(argv)
    stale = []
    for name, text in rendered().items():
        path = args.out / name
        if args.check:
            if not path.exists() or path.read_text() != text:
                stale.append(str(path))
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
    if stale:
        print("stale CRDs: " + ", ".join(stale) + "; run python -m minerguard.api.crds")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
