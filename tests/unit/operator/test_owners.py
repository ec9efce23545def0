"""Which ownerReference is a pod's controller, by group and kind, never by kind name alone."""

from __future__ import annotations

from typing import Any

import pytest

from minerguard_operator import owners


def _pod(*refs: dict[str, Any]) -> dict[str, Any]:
    return {"metadata": {"name": "p", "namespace": "ns", "ownerReferences": list(refs)}}


def _ref(api_version: str, kind: str) -> dict[str, Any]:
    return {"apiVersion": api_version, "kind": kind, "name": "x", "uid": "u1", "controller": True}


@pytest.mark.parametrize(
    ("api_version", "kind"),
    [("batch/v1", "Job"), ("apps/v1", "ReplicaSet"), ("v1", "ReplicationController")],
)
def test_a_built_in_controller_is_followed(api_version: str, kind: str) -> None:
    ref = owners.controller_ref(_pod(_ref(api_version, kind)))
    assert ref is not None
    assert ref["kind"] == kind


@pytest.mark.parametrize(
    ("api_version", "kind"),
    [
        ("batch.volcano.sh/v1alpha1", "Job"),  # Volcano's Job is not batch/v1's
        ("kubeflow.org/v1", "Job"),
        ("example.com/v1", "Deployment"),
        ("apps.kruise.io/v1alpha1", "StatefulSet"),  # OpenKruise's Advanced StatefulSet
        ("", "ReplicaSet"),
    ],
)
def test_a_crd_whose_kind_shares_a_built_in_name_is_not_read_as_the_built_in(
    api_version: str, kind: str
) -> None:
    assert owners.controller_ref(_pod(_ref(api_version, kind))) is None
