"""Rendering the minerguard chart with Helm's own engine (helm-python-sdk), for the chart tests.

A render is a list of `Manifest`s: the parsed object plus the template it came from. CRDs are
rendered from templates/ (see templates/crds/crds.yaml), so they are part of every render.
"""

from __future__ import annotations

import copy
import dataclasses
import functools
import json
import pathlib
from typing import Any

import helm_python as helm
import yaml

from tests import support

REPO = pathlib.Path(__file__).resolve().parents[3]
CHART = REPO / "charts" / "minerguard"
PROFILES = sorted(p.name.removesuffix("-values.yaml") for p in (CHART / "ci").glob("*-values.yaml"))
RELEASE = "mg"
NAMESPACE = "minerguard"
KUBE_VERSION = "1.30"

Object = dict[str, Any]


@dataclasses.dataclass(frozen=True)
class Manifest:
    """One rendered object and the template that produced it."""

    template: str
    obj: Object

    @property
    def kind(self) -> str:
        return str(self.obj["kind"])

    @property
    def name(self) -> str:
        return str(self.obj["metadata"]["name"])

    @property
    def annotations(self) -> dict[str, str]:
        return dict(self.obj["metadata"].get("annotations") or {})


@dataclasses.dataclass(frozen=True)
class Render:
    """A whole render: the objects, NOTES.txt, and the namespace it was rendered for."""

    manifests: tuple[Manifest, ...]
    notes: str
    namespace: str
    values: Object

    def of_kind(self, kind: str) -> list[Manifest]:
        return [m for m in self.manifests if m.kind == kind]

    def one(self, kind: str, name_suffix: str = "") -> Object:
        """The single object of `kind` whose name ends with `name_suffix`."""
        found = [m.obj for m in self.of_kind(kind) if m.name.endswith(name_suffix)]
        assert len(found) == 1, f"expected one {kind} *{name_suffix}, found {len(found)}"
        return found[0]

    def hooks(self, hook: str) -> list[Manifest]:
        return [
            m for m in self.manifests if hook in m.annotations.get("helm.sh/hook", "").split(",")
        ]


def profile_values(profile: str) -> Object:
    """The values of ci/<profile>-values.yaml."""
    loaded = yaml.safe_load((CHART / "ci" / f"{profile}-values.yaml").read_text())
    return dict(loaded or {})


@functools.cache
def _render_cached(values_json: str, namespace: str, release: str) -> Render:
    values: Object = json.loads(values_json)
    with helm.Chart.load(CHART) as chart:
        out = chart.render(values=values, name=release, namespace=namespace, is_install=True)
        merged: Object = chart.merge_values(values)
    manifests: list[Manifest] = []
    notes = ""
    for template, text in sorted(out.items()):
        if template.endswith("NOTES.txt"):
            notes = text
            continue
        for doc in yaml.safe_load_all(text):
            if doc:
                manifests.append(Manifest(template=template, obj=doc))
    return Render(tuple(manifests), notes, namespace, merged)


def render(
    values: Object | None = None, *, namespace: str = NAMESPACE, release: str = RELEASE
) -> Render:
    """Render the chart as `helm install` would (offline: `lookup` finds nothing)."""
    return _render_cached(json.dumps(values or {}, sort_keys=True), namespace, release)


def render_profile(profile: str) -> Render:
    """Render a ci/ profile, the custom-namespace one into a namespace of its own."""
    namespace = "security" if profile == "custom-namespace" else NAMESPACE
    return render(profile_values(profile), namespace=namespace)


def target_namespace(rendered: Render) -> str:
    """The namespace the chart installs into (namespaceOverride or the release namespace)."""
    return str(rendered.values.get("namespaceOverride") or rendered.namespace)


def typed(model: type[Any], obj: Object) -> Any:
    """Parse `obj` into the `kubernetes` client's model (which refuses misspelt or mistyped fields).

    Returned as Any: every field of those models is Optional, and the tests navigate paths the
    render is known to have (a missing one fails the test with an AttributeError, as it should).
    """
    return model.from_dict(obj)


def crd_json_schema(kind: str) -> dict[str, Any]:
    """The strict JSON schema of a custom resource `kind`, from the CRD the chart renders."""
    for crd in render().of_kind("CustomResourceDefinition"):
        if crd.obj["spec"]["names"]["kind"] == kind:
            version = next(v for v in crd.obj["spec"]["versions"] if v.get("storage"))
            schema: dict[str, Any] = _as_json_schema(
                copy.deepcopy(version["schema"]["openAPIV3Schema"])
            )
            return schema
    raise AssertionError(f"no CRD for {kind}")


def _as_json_schema(node: Any) -> Any:
    """A structural OpenAPI v3 schema as a strict JSON schema (see :func:`support.json_schema`)."""
    return support.json_schema(node)
