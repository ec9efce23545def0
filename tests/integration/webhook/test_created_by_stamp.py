"""The creator stamp through the real HTTPS webhook: ``/mutate`` as the API server calls it.

With ``MINERGUARD_WEBHOOK_STAMP_CREATOR``, ``/mutate`` answers each CREATE of a pod or workload
with a JSONPatch setting ``minerguard.io/created-by`` to the requester (whatever the object was
sent with), puts the stored value back on an UPDATE that would change it, and, with pinning
on, carries both parts in one patch: the pod is pinned to the judged digest and stamped.
"""

from __future__ import annotations

import base64
import copy
import json
from typing import Any

import jsonpatch
import pytest

from minerguard.api.investigation import CREATED_BY_ANNOTATION, Actor
from tests.integration.webhook import oci
from tests.integration.webhook.conftest import Images, Server, ServerFactory
from tests.integration.webhook.reviews import container, pod, review

pytestmark = pytest.mark.slow
FORGED = Actor(username="ceo@example.com", operation="CREATE").stamp()


def _mutated(server: Server, document: dict[str, Any]) -> dict[str, Any]:
    """What the API server stores: the review's object with ``/mutate``'s patch applied."""
    answer = server.client.post("/mutate", json=document)
    assert answer.status_code == 200, answer.text
    response = answer.json()["response"]
    assert response["uid"] == document["request"]["uid"]
    assert response["allowed"] is True
    obj: dict[str, Any] = copy.deepcopy(document["request"]["object"])
    if "patch" not in response:
        return obj
    assert response["patchType"] == "JSONPatch"
    patched: dict[str, Any] = jsonpatch.apply_patch(
        obj, json.loads(base64.b64decode(response["patch"]))
    )
    return patched


def _stamp(obj: dict[str, Any]) -> Actor | None:
    return Actor.parse_stamp(obj["metadata"].get("annotations", {}).get(CREATED_BY_ANNOTATION))


def _deployment(annotations: dict[str, str] | None = None) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "apps", "annotations": annotations or {}},
        "spec": {"template": {"spec": {"containers": [{"name": "c", "image": "nginx:1.27"}]}}},
    }


def test_a_workload_is_stamped_with_who_applied_it_and_a_forged_stamp_is_replaced(
    serve: ServerFactory,
) -> None:
    server = serve(
        env={"MINERGUARD_WEBHOOK_STAMP_CREATOR": "true", "MINERGUARD_WEBHOOK_PIN_DIGESTS": "false"}
    )
    forged = _deployment({CREATED_BY_ANNOTATION: FORGED, "team": "a"})
    created = review(
        forged, kind="Deployment", group="apps", resource="deployments", user="alice@example.com"
    )
    stored = _mutated(server, created)
    found = _stamp(stored)
    assert found is not None
    assert found.username == "alice@example.com"
    assert found.groups == ["devs", "system:authenticated"]
    assert found.operation == "CREATE"
    assert stored["metadata"]["annotations"]["team"] == "a"
    # A later `kubectl apply` by someone else that drops or rewrites it gets it put back.
    for sent in (_deployment({"team": "b"}), _deployment({CREATED_BY_ANNOTATION: FORGED})):
        update = review(
            sent, kind="Deployment", group="apps", resource="deployments", operation="UPDATE"
        )
        update["request"]["oldObject"] = stored
        kept = _mutated(server, update)
        assert (
            kept["metadata"]["annotations"][CREATED_BY_ANNOTATION]
            == (stored["metadata"]["annotations"][CREATED_BY_ANNOTATION])
        )


def test_one_patch_pins_and_stamps_a_pod(images: Images, serve: ServerFactory) -> None:
    server = serve(
        "--insecure-registry",
        images.open,
        env={**oci.LOOPBACK_ENV, "MINERGUARD_WEBHOOK_STAMP_CREATOR": "true"},
    )
    image = images.ref("benign/web:1")
    stored = _mutated(server, review(pod(container(image)), user="bob@example.com"))
    assert stored["spec"]["containers"][0]["image"] == f"{image}@{images.digests['benign/web:1']}"
    found = _stamp(stored)
    assert found is not None
    assert found.username == "bob@example.com"


def test_without_the_stamp_setting_mutate_only_pins(images: Images, serve: ServerFactory) -> None:
    server = serve("--insecure-registry", images.open, env=oci.LOOPBACK_ENV)
    image = images.ref("benign/web:1")
    forged = pod(container(image))
    forged["metadata"]["annotations"] = {CREATED_BY_ANNOTATION: FORGED}
    stored = _mutated(server, review(forged))
    assert stored["spec"]["containers"][0]["image"].startswith(f"{image}@sha256:")
    assert stored["metadata"]["annotations"][CREATED_BY_ANNOTATION] == FORGED  # not ours to judge
