"""Digest pinning (``/mutate``): which image fields are rewritten, and how the patch reads."""

from __future__ import annotations

import base64
import json
from typing import Any

import httpx
import jsonpatch
import jsonpointer
import orjson
import pytest

from minerguard.oci import registry
from minerguard.podspec import ImageConfig
from tests.support import policy
from webhook import pinning, resolve
from webhook.app import create_app
from webhook.settings import WebhookSettings

from .helpers import CLOSED, body, container, pod, request

APP = "registry.example/team/app:1"
APP_DIGEST = "sha256:" + "a" * 64
MULTI = "registry.example/team/multi:2"
INDEX_DIGEST = "sha256:" + "b" * 64
OTHER = "sha256:" + "c" * 64


def pinner() -> pinning.Pinner:
    """A pinner whose registry knows APP (single-arch) and MULTI (an index whose entries differ)."""
    resolver = resolve.ImageResolver(registry.RegistryClient(insecure=[CLOSED]))
    resolver.prime(APP, None, ImageConfig(("/app",), (), (), APP_DIGEST))
    variants = resolve.PerPlatform(
        (
            resolve.Variant((registry.Platform(),), ImageConfig(("/a",), (), (), INDEX_DIGEST)),
            resolve.Variant(
                (registry.Platform(architecture="arm64"),),
                ImageConfig(("/b",), (), (), INDEX_DIGEST),
            ),
        )
    )
    resolver.prime(MULTI, None, variants)
    return pinning.Pinner(WebhookSettings(registry_timeout=0.5), resolver)


def applied(obj: dict[str, Any], pins: pinning.Pins) -> dict[str, Any]:
    patched: dict[str, Any] = jsonpatch.apply_patch(obj, list(pins.operations))
    return patched


def test_pointer_escapes_tilde_before_slash() -> None:
    path = pinning.pointer("spec", "a/b", "c~d", "~1", 3)
    assert path == "/spec/a~1b/c~0d/~01/3"
    assert jsonpointer.JsonPointer(path).parts == ["spec", "a/b", "c~d", "~1", "3"]


def test_slots_cover_init_regular_and_ephemeral_containers_at_their_indices() -> None:
    spec = {
        "initContainers": [{"name": "i", "image": "init:1"}],
        "containers": ["not a container", {"name": "c", "image": "app:1"}],
        "ephemeralContainers": [{"name": "e", "image": "debug:1"}],
    }
    assert pinning.slots(spec) == [
        pinning.Slot("/spec/initContainers/0/image", "init:1"),
        pinning.Slot("/spec/containers/1/image", "app:1"),
        pinning.Slot("/spec/ephemeralContainers/0/image", "debug:1"),
    ]


@pytest.mark.parametrize(
    "image",
    [
        f"app:1@{OTHER}",  # already pinned: left as written
        f"app@{OTHER}",
        "App:1",  # not a pullable reference: the validating webhook says so
        " app:1",
        "",
        None,
    ],
)
def test_images_already_pinned_or_invalid_are_not_slots(image: Any) -> None:
    assert pinning.slots({"containers": [{"name": "c", "image": image}]}) == []


def test_an_update_pins_only_the_images_it_sets() -> None:
    old = {
        "containers": [{"name": "c", "image": "app:1"}, {"name": "d", "image": "side:1"}],
        "ephemeralContainers": [{"name": "old", "image": "a:1"}],
    }
    new = {
        "containers": [{"name": "c", "image": "app:1"}, {"name": "d", "image": "side:2"}],
        "ephemeralContainers": [{"name": "old", "image": "a:1"}, {"name": "new", "image": "b:1"}],
    }
    assert pinning.slots(new, old) == [
        pinning.Slot("/spec/containers/1/image", "side:2"),
        pinning.Slot("/spec/ephemeralContainers/1/image", "b:1"),
    ]
    assert pinning.slots(old, old) == []  # a metadata-only update rewrites nothing


def test_the_patch_keeps_the_tag_and_adds_the_digest_of_resolved_images_only() -> None:
    found = [pinning.Slot("/spec/containers/0/image", "a:1"), pinning.Slot("/x", "b:1")]
    assert pinning.patch(found, {"a:1": APP_DIGEST}) == [
        {"op": "replace", "path": "/spec/containers/0/image", "value": f"a:1@{APP_DIGEST}"}
    ]


async def test_a_pod_is_pinned_to_the_digests_its_review_resolved() -> None:
    obj = pod(
        container("c", APP),
        container("d", MULTI),
        initContainers=[container("i", APP)],
    )
    pins = await pinner().pin(request(obj))
    spec = applied(obj, pins)["spec"]
    assert spec["containers"][0]["image"] == f"{APP}@{APP_DIGEST}"
    assert spec["containers"][1]["image"] == f"{MULTI}@{INDEX_DIGEST}"  # the index judged
    assert spec["initContainers"][0]["image"] == f"{APP}@{APP_DIGEST}"
    assert pins.warnings == ()


async def test_an_image_that_cannot_be_resolved_is_left_unpinned_with_a_warning() -> None:
    obj = pod(container("c", APP), container("d", f"{CLOSED}/team/gone:1"))
    pins = await pinner().pin(request(obj))
    spec = applied(obj, pins)["spec"]
    assert spec["containers"][0]["image"] == f"{APP}@{APP_DIGEST}"
    assert spec["containers"][1]["image"] == f"{CLOSED}/team/gone:1"
    assert len(pins.warnings) == 1
    assert "not pinned to a digest" in pins.warnings[0]


@pytest.mark.parametrize(
    ("obj", "fields"),
    [
        (pod(container("c", APP)), {"operation": "UPDATE", "old": pod(container("c", APP))}),
        (pod(container("c", APP)), {"operation": "DELETE"}),
        (pod(container("c", APP)), {"operation": "CREATE", "sub_resource": "status"}),
        ({"kind": "Deployment", "spec": {"template": {"spec": {}}}}, {"kind": "Deployment"}),
        (
            {
                **pod(container("c", APP)),
                "metadata": {"annotations": {pinning.MIRROR_ANNOTATION: "x"}},
            },
            {},
        ),
    ],
    ids=["unchanged-update", "delete", "status", "workload", "mirror-pod"],
)
async def test_only_images_a_pod_request_sets_are_pinned(obj: Any, fields: dict[str, Any]) -> None:
    assert await pinner().pin(request(obj, **fields)) == pinning.NOTHING


async def test_an_ephemeral_container_added_by_kubectl_debug_is_pinned() -> None:
    old = pod(container("c", APP))
    new = {**old, "spec": {**old["spec"], "ephemeralContainers": [container("dbg", APP)]}}
    pins = await pinner().pin(
        request(new, operation="UPDATE", sub_resource="ephemeralcontainers", old=old)
    )
    assert [op["path"] for op in pins.operations] == ["/spec/ephemeralContainers/0/image"]


def test_the_response_allows_and_carries_a_base64_json_patch() -> None:
    ops = ({"op": "replace", "path": "/spec/containers/0/image", "value": "a@x"},)
    document = orjson.loads(pinning.response("u1", pinning.Pins(ops, ("w",))))
    answer = document["response"]
    assert document["kind"] == "AdmissionReview"
    assert answer["allowed"] is True
    assert answer["patchType"] == "JSONPatch"
    assert json.loads(base64.b64decode(answer["patch"])) == list(ops)
    assert answer["warnings"] == ["w"]
    assert "patch" not in orjson.loads(pinning.response("u2", pinning.NOTHING))["response"]


async def test_mutate_is_served_under_the_same_body_limits_and_never_refuses() -> None:
    settings = WebhookSettings(registry_timeout=0.5, max_request_bytes=1 << 16)
    app = create_app(settings, policies=[policy(actions={"onRegistryFailure": "Deny"})])
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://webhook") as client:
            unresolvable = body(pod(container("c", f"{CLOSED}/team/app:1")))
            answer = await client.post("/mutate", content=orjson.dumps(unresolvable))
            assert answer.status_code == 200
            response = orjson.loads(answer.content)["response"]
            assert response["allowed"] is True
            assert "patch" not in response
            assert "not pinned to a digest" in response["warnings"][0]
            assert (await client.post("/mutate", content=b"{")).status_code == 400
            huge = orjson.dumps(body(pod(container("c", "a" * (1 << 17)))))
            assert (await client.post("/mutate", content=huge)).status_code == 413


async def test_kubectl_set_image_on_a_pod_pins_the_new_image() -> None:
    old = pod(container("c", "registry.example/team/app:0"), container("d", APP))
    new = pod(container("c", APP), container("d", APP))
    pins = await pinner().pin(request(new, operation="UPDATE", old=old))
    assert [op["path"] for op in pins.operations] == ["/spec/containers/0/image"]
