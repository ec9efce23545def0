"""The corpus and the transform generator write what the API server would accept.

A case the API server would refuse tests nothing: a miner that cannot be created needs no
admission decision. Every built-in object of every corpus case (workloads, ConfigMaps,
Secrets), and every object the transform generator renders for every transform and pair on two
seeds (a plain command and a shell script), validates against the Kubernetes 1.30 OpenAPI
schema, strictly (no unknown fields). Workload kinds of other groups (Argo, Tekton, Kubeflow)
have no schema here and are checked by the CRD tests that judge them.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import kubernetes_validate
import pytest

from tests import corpus, transforms

KUBE_VERSION = "1.30"
BUILT_IN_GROUPS = ("v1", "apps/v1", "batch/v1")


def _built_in(doc: Mapping[str, Any]) -> bool:
    return doc.get("apiVersion") in BUILT_IN_GROUPS


def _invalid(doc: Mapping[str, Any]) -> str | None:
    try:
        kubernetes_validate.validate(dict(doc), KUBE_VERSION, strict=True)
    except kubernetes_validate.ValidationError as err:
        return str(err).splitlines()[0]
    return None


@pytest.mark.parametrize("case", corpus.cases(), ids=lambda case: case.name)
def test_every_built_in_object_of_the_corpus_is_valid(case: corpus.Case) -> None:
    problems = [p for doc in case.documents if _built_in(doc) and (p := _invalid(doc))]
    assert problems == []


def _seed(argv_shell: bool) -> transforms.Seed:
    for case in corpus.cases(heldout=False):
        for seed in transforms.seeds(case, neutral_image=case.malicious):
            if case.malicious and (seed.argv[0] == "sh") is argv_shell and not seed.references:
                return seed
    raise AssertionError("no seed of that shape in the corpus")


@pytest.mark.parametrize("shell", [False, True], ids=["plain-command", "shell-script"])
def test_every_transform_and_pair_renders_valid_objects(shell: bool) -> None:
    seed = _seed(shell)
    combos = [(name,) for name in transforms.TRANSFORMS] + list(transforms.pairs())
    problems = []
    for names in combos:
        variant = transforms.apply(seed, names)
        if variant is None:
            continue
        for doc in transforms.render(seed, variant):
            if _built_in(doc) and (problem := _invalid(doc)):
                problems.append(f"{'+'.join(names)}: {problem}")
    assert problems == []
