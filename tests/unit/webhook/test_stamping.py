"""The ``minerguard.io/created-by`` stamp: written on CREATE, never forged, never lost.

Patches are applied with ``jsonpatch`` as the API server applies them, and the stamp is read
back with :meth:`Actor.parse_stamp`, as the operator reads it.
"""

from __future__ import annotations

import base64
import copy
from typing import Any

import httpx
import jsonpatch
import orjson
import pytest

from minerguard import workloads
from minerguard.api.investigation import CREATED_BY_ANNOTATION, Actor, Basis
from minerguard.podspec import ImageConfig
from tests.support import policy
from webhook import stamping
from webhook.app import create_app
from webhook.review import AdmissionRequest
from webhook.settings import WebhookSettings

from .helpers import CLOSED, container, pod, request

NOW = "2026-12-02T05:00:00Z"
FORGED = Actor(username="someone-else@example.com", operation="CREATE").stamp()


def _deployment(annotations: dict[str, str] | None = None) -> dict[str, Any]:
    metadata: dict[str, Any] = {"name": "web", "namespace": "apps"}
    if annotations is not None:
        metadata["annotations"] = annotations
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": metadata, "spec": {}}


def _as(req: AdmissionRequest, user: str, groups: tuple[str, ...] = ()) -> AdmissionRequest:
    info = req.user_info.model_copy(update={"username": user, "groups": list(groups)})
    return req.model_copy(update={"user_info": info})


def _apply(obj: dict[str, Any], ops: list[dict[str, Any]]) -> dict[str, Any]:
    patched: dict[str, Any] = jsonpatch.apply_patch(copy.deepcopy(obj), ops)
    return patched


def _stamp_of(obj: dict[str, Any]) -> Actor | None:
    return Actor.parse_stamp(obj["metadata"].get("annotations", {}).get(CREATED_BY_ANNOTATION))


def test_the_annotation_key_is_escaped_in_the_json_pointer() -> None:
    assert stamping.KEY_PATH == "/metadata/annotations/minerguard.io~1created-by"
    assert stamping.pointer("a~b/c") == "/metadata/annotations/a~0b~1c"


def test_a_created_pod_is_stamped_with_its_requester() -> None:
    created = request(pod(container()))
    ops = stamping.operations(created, NOW)
    # The pod had no annotations: the map is added whole (a member of a missing map cannot be).
    assert ops == [
        {
            "op": "add",
            "path": "/metadata/annotations",
            "value": {CREATED_BY_ANNOTATION: stamping.stamp(created, NOW)},
        }
    ]
    found = _stamp_of(_apply(created.object, ops))
    assert found == Actor(
        username="mallory@example.com",
        groups=["devs", "system:authenticated"],
        operation="CREATE",
        time=NOW,
        basis=Basis.STAMP,
    )


def test_a_forged_stamp_is_replaced_on_create_never_trusted() -> None:
    for kind, group, obj in (
        ("Deployment", "apps", _deployment({"team": "a", CREATED_BY_ANNOTATION: FORGED})),
        ("Pod", "", {**pod(container()), "metadata": {"annotations": {CREATED_BY_ANNOTATION: ""}}}),
    ):
        created = request(obj, kind=kind, group=group)
        patched = _apply(obj, stamping.operations(created, NOW))
        found = _stamp_of(patched)
        assert found is not None
        assert found.username == "mallory@example.com", kind
        assert patched["metadata"]["annotations"].get("team") == obj["metadata"]["annotations"].get(
            "team"
        )


def test_an_update_that_changes_or_removes_the_stamp_is_put_back() -> None:
    genuine = Actor(username="alice@example.com", operation="CREATE", time=NOW).stamp()
    stored = _deployment({CREATED_BY_ANNOTATION: genuine, "team": "a"})
    changed = _deployment({CREATED_BY_ANNOTATION: FORGED, "team": "a"})
    removed = _deployment({"team": "b"})
    bare = _deployment()  # kubectl replace of a manifest without annotations
    for new in (changed, removed, bare):
        update = request(new, kind="Deployment", group="apps", operation="UPDATE", old=stored)
        patched = _apply(new, stamping.operations(update, NOW))
        assert patched["metadata"]["annotations"][CREATED_BY_ANNOTATION] == genuine
    # An object created before stamping was on cannot be given one later.
    added = request(changed, kind="Deployment", group="apps", operation="UPDATE", old=removed)
    patched = _apply(changed, stamping.operations(added, NOW))
    assert CREATED_BY_ANNOTATION not in patched["metadata"]["annotations"]


def test_an_update_that_keeps_the_stamp_is_not_patched() -> None:
    stored = _deployment({CREATED_BY_ANNOTATION: FORGED})
    update = request(stored, kind="Deployment", group="apps", operation="UPDATE", old=stored)
    assert stamping.operations(update, NOW) == []
    assert stamping.operations(request(_deployment(), kind="ConfigMap"), NOW) == []
    delete = request(stored, kind="Deployment", group="apps", operation="DELETE")
    assert stamping.operations(delete, NOW) == []


def test_a_controller_created_pod_carries_the_controllers_identity() -> None:
    from_template = pod(container())
    from_template["metadata"]["annotations"] = {CREATED_BY_ANNOTATION: FORGED}
    rs = "system:serviceaccount:kube-system:replicaset-controller"
    created = _as(request(from_template), rs, ("system:serviceaccounts",))
    found = _stamp_of(_apply(from_template, stamping.operations(created, NOW)))
    assert found is not None
    assert found.username == rs


def test_a_replicaset_of_a_deployment_keeps_the_stamp_its_controller_copied() -> None:
    # The deployment controller copies the Deployment's (guarded) annotations onto the
    # ReplicaSet and puts them back on every sync; replacing them would start a tug of war.
    copied = Actor(username="alice@example.com", operation="CREATE", time=NOW).stamp()
    owner = {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web", "controller": True}
    rs: dict[str, Any] = {
        "apiVersion": "apps/v1",
        "kind": "ReplicaSet",
        "metadata": {
            "name": "web-5d8f",
            "annotations": {CREATED_BY_ANNOTATION: copied},
            "ownerReferences": [owner],
        },
    }
    by_controller = _as(
        request(rs, kind="ReplicaSet", group="apps"), stamping.DEPLOYMENT_CONTROLLER
    )
    assert stamping.operations(by_controller, NOW) == []
    # Anyone else creating that ReplicaSet (a user copying its manifest) is stamped as usual.
    by_user = request(rs, kind="ReplicaSet", group="apps")
    found = _stamp_of(_apply(rs, stamping.operations(by_user, NOW)))
    assert found is not None
    assert found.username == "mallory@example.com"
    # And the controller's ReplicaSet of no Deployment, or with no stamp, gets its own.
    orphan = copy.deepcopy(rs)
    orphan["metadata"]["ownerReferences"] = []
    lone = _as(request(orphan, kind="ReplicaSet", group="apps"), stamping.DEPLOYMENT_CONTROLLER)
    found = _stamp_of(_apply(orphan, stamping.operations(lone, NOW)))
    assert found is not None
    assert found.username == stamping.DEPLOYMENT_CONTROLLER


async def _mutate(settings: WebhookSettings, review: dict[str, Any]) -> dict[str, Any]:
    app = create_app(settings, policies=[policy()])
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://webhook") as client:
            answer = await client.post("/mutate", content=orjson.dumps(review))
            assert answer.status_code == 200
            response: dict[str, Any] = orjson.loads(answer.content)["response"]
            return response


def _review(req: AdmissionRequest) -> dict[str, Any]:
    return {
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": req.model_dump(by_alias=True, exclude_none=True),
    }


def _ops(response: dict[str, Any]) -> list[dict[str, Any]]:
    if "patch" not in response:
        return []
    ops: list[dict[str, Any]] = orjson.loads(base64.b64decode(response["patch"]))
    return ops


async def test_mutate_combines_pinning_and_stamping_each_only_when_on() -> None:
    image = f"{CLOSED}/team/app:1"
    digest = "sha256:" + "a" * 64
    created = request(pod(container("c", image)))
    both = WebhookSettings(registry_timeout=0.5, stamp_creator=True)
    app = create_app(both, policies=[policy()])
    async with app.router.lifespan_context(app):
        app.state.services.resolver.prime(image, None, ImageConfig(("/a",), (), (), digest))
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://webhook") as client:
            answer = await client.post("/mutate", content=orjson.dumps(_review(created)))
            response = orjson.loads(answer.content)["response"]
    patched = _apply(created.object, _ops(response))
    assert patched["spec"]["containers"][0]["image"] == f"{image}@{digest}"
    stamp = _stamp_of(patched)
    assert stamp is not None
    assert stamp.username == "mallory@example.com"
    # Stamping alone: pinning off, the image stays as written (nothing is even looked up).
    only_stamp = await _mutate(
        WebhookSettings(registry_timeout=0.5, stamp_creator=True, pin_digests=False),
        _review(created),
    )
    patched = _apply(created.object, _ops(only_stamp))
    assert patched["spec"]["containers"][0]["image"] == image
    assert _stamp_of(patched) is not None
    assert "warnings" not in only_stamp
    # Pinning alone (the default): no stamp, pinning's answer as before (unresolvable here).
    only_pin = await _mutate(WebhookSettings(registry_timeout=0.5), _review(created))
    assert _ops(only_pin) == []
    assert "not pinned to a digest" in only_pin["warnings"][0]


def _crd(kind: workloads.WorkloadKind, annotations: dict[str, str] | None = None) -> Any:
    metadata: dict[str, Any] = {"name": "run-1", "namespace": "apps"}
    if annotations is not None:
        metadata["annotations"] = annotations
    return {"apiVersion": f"{kind.group}/v1", "kind": kind.kind, "metadata": metadata, "spec": {}}


@pytest.mark.parametrize("kind", workloads.CRD_KINDS, ids=lambda k: f"{k.group}/{k.kind}")
def test_a_created_workload_crd_is_stamped_with_its_creator_and_kept(
    kind: workloads.WorkloadKind,
) -> None:
    # Argo and Tekton pods carry their controller's identity: the person who created the
    # Workflow or TaskRun is only known if the CRD object itself is stamped.
    obj = _crd(kind, {CREATED_BY_ANNOTATION: FORGED})
    created = request(obj, kind=kind.kind, group=kind.group, resource=kind.resource)
    found = _stamp_of(_apply(obj, stamping.operations(created, NOW)))
    assert found is not None
    assert found.username == "mallory@example.com"
    genuine = Actor(username="alice@example.com", operation="CREATE", time=NOW).stamp()
    stored = _crd(kind, {CREATED_BY_ANNOTATION: genuine})
    for new in (_crd(kind), _crd(kind, {CREATED_BY_ANNOTATION: FORGED})):
        update = request(
            new,
            kind=kind.kind,
            group=kind.group,
            resource=kind.resource,
            operation="UPDATE",
            old=stored,
        )
        patched = _apply(new, stamping.operations(update, NOW))
        assert patched["metadata"]["annotations"][CREATED_BY_ANNOTATION] == genuine


RAY = {"group": "ray.io", "kind": "RayCluster", "resource": "rayclusters", "paths": []}


async def test_a_registered_pod_template_kind_is_stamped_and_an_unknown_kind_is_not() -> None:
    ray = {"apiVersion": "ray.io/v1", "kind": "RayCluster", "metadata": {"name": "r"}, "spec": {}}
    created = _review(request(ray, kind="RayCluster", group="ray.io", resource="rayclusters"))
    registered = WebhookSettings.model_validate(
        {"stamp_creator": True, "pin_digests": False, "pod_template_kinds": [RAY]}
    )
    found = _stamp_of(_apply(ray, _ops(await _mutate(registered, created))))
    assert found is not None
    assert found.username == "mallory@example.com"
    # A kind nobody registered is not stamped (the chart does not route it here either).
    plain = WebhookSettings(stamp_creator=True, pin_digests=False)
    assert _ops(await _mutate(plain, created)) == []
    config = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}}
    other = _review(request(config, kind="ConfigMap", resource="configmaps"))
    assert _ops(await _mutate(registered, other)) == []
