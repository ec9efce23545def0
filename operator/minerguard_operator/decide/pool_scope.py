"""Who a MinerPolicy covers, as the label requirements each engine's selectors can carry.

Its namespace selector, minus excluded and exempt namespaces, minus exempt pods. A label
selector cannot say "not (a and b)", so an exemption selector with n requirements becomes n
subjects (pods lacking a, pods lacking b): denies add up, so their union is the policy.
Calico's selector language says it directly (:func:`calico_term`). Every key and value is
checked against Kubernetes' label syntax first, so none can rewrite a Calico selector.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from minerguard.api.meta import LabelSelector, LabelSelectorRequirement
from minerguard.api.policy import MinerPolicySpec

MAX_SUBJECTS = 16
"""An exemption selector with more requirements than this is refused (16 objects at most)."""

_LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")
_LABEL_KEY = re.compile(
    r"^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?"
    r"[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$"
)
_NEGATION = {"In": "NotIn", "NotIn": "In", "Exists": "DoesNotExist", "DoesNotExist": "Exists"}


class RenderError(ValueError):
    """The policy cannot be rendered safely (a label the selectors could not carry)."""


@dataclass(frozen=True, slots=True)
class Scope:
    """The pods a policy covers, as label requirements an engine can carry."""

    namespace_selector: LabelSelector | None
    namespaces_out: tuple[str, ...]
    """Excluded and exempt namespaces."""
    subjects: tuple[tuple[LabelSelectorRequirement, ...], ...]
    """Pod requirements, one tuple per subject (their union is covered); empty: all exempt."""
    exempt_pods: LabelSelector | None


def scope(spec: MinerPolicySpec) -> Scope:
    """Who a policy covers; raises :class:`RenderError` for labels no selector could carry."""
    out = sorted(set(spec.excluded_namespaces) | set(spec.exemptions.namespaces))
    for name in out:
        _check_value(name, "a namespace name")
    if spec.namespace_selector is not None:
        _check_selector(spec.namespace_selector)
    exempt = spec.exemptions.pod_labels
    if exempt is None:
        subjects: tuple[tuple[LabelSelectorRequirement, ...], ...] = ((),)
    else:
        _check_selector(exempt)
        negated = [_negate(r) for r in requirements(exempt)]
        if len(negated) > MAX_SUBJECTS:
            raise RenderError(
                f"spec.exemptions.podLabels has {len(negated)} requirements; at most"
                f" {MAX_SUBJECTS} can be rendered"
            )
        subjects = tuple((r,) for r in negated)  # {} exempts every pod: nothing is covered
    return Scope(spec.namespace_selector, tuple(out), subjects, exempt)


def requirements(selector: LabelSelector) -> list[LabelSelectorRequirement]:
    """A selector's requirements, ``matchLabels`` spelt as ``In`` terms (they AND together)."""
    found = [
        LabelSelectorRequirement(key=k, operator="In", values=[v])
        for k, v in sorted(selector.match_labels.items())
    ]
    return found + list(selector.match_expressions)


def _negate(requirement: LabelSelectorRequirement) -> LabelSelectorRequirement:
    return LabelSelectorRequirement(
        key=requirement.key,
        operator=_NEGATION[requirement.operator],
        values=list(requirement.values) if requirement.operator in ("In", "NotIn") else [],
    )


def _check_value(value: str, what: str) -> None:
    if len(value) > 253 or not _LABEL_VALUE.match(value):
        raise RenderError(f"{what} {value!r} is not a valid label value")


def _check_selector(selector: LabelSelector) -> None:
    for requirement in requirements(selector):
        if not _LABEL_KEY.match(requirement.key) or len(requirement.key) > 316:
            raise RenderError(f"label key {requirement.key!r} is not a valid label key")
        for value in requirement.values:
            if len(value) > 63 or not _LABEL_VALUE.match(value):
                raise RenderError(f"label value {value!r} is not a valid label value")


def expression(requirement: LabelSelectorRequirement, key: str | None = None) -> dict[str, Any]:
    """A ``matchExpressions`` entry, under another key where the engine names it so."""
    found: dict[str, Any] = {"key": key or requirement.key, "operator": requirement.operator}
    if requirement.operator in ("In", "NotIn"):
        found["values"] = sorted(requirement.values)
    return found


def calico_term(requirement: LabelSelectorRequirement) -> str:
    """A requirement in Calico's selector language (keys and values were checked already)."""
    key = requirement.key
    values = ", ".join(f"'{v}'" for v in sorted(requirement.values))
    if requirement.operator == "In":
        return f"{key} in {{{values}}}"
    if requirement.operator == "NotIn":
        return f"{key} not in {{{values}}}"
    if requirement.operator == "Exists":
        return f"has({key})"
    return f"!has({key})"


def calico_and(terms: Sequence[str]) -> str:
    """Terms ANDed in Calico's selector language; ``all()`` when there are none."""
    return " && ".join(terms) if terms else "all()"
