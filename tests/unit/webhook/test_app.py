"""The app in-process: bad input is a 4xx with a reason or a well-formed review, never a 500."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import orjson
import pytest
import pytest_asyncio

from tests.support import policy
from tests.unit.webhook.helpers import MINER_COMMAND, body, container, pod
from webhook.app import create_app
from webhook.settings import WebhookSettings

pytestmark = pytest.mark.asyncio(loop_scope="module")
Client = httpx.AsyncClient


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def client() -> AsyncIterator[Client]:
    settings = WebhookSettings(registry_timeout=0.5, max_request_bytes=8 << 20)
    app = create_app(settings, policies=[policy(actions={"onRegistryFailure": "Deny"})])
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://webhook") as test_client:
            yield test_client


async def post(client: Client, payload: Any) -> httpx.Response:
    raw = payload if isinstance(payload, bytes) else orjson.dumps(payload)
    return await client.post("/validate", content=raw, headers={"Content-Type": "application/json"})


def verdict(answer: httpx.Response) -> dict[str, Any]:
    assert answer.status_code == 200, answer.text
    document = orjson.loads(answer.content)
    assert document["apiVersion"] == "admission.k8s.io/v1"
    assert document["kind"] == "AdmissionReview"
    result: dict[str, Any] = document["response"]
    return result


async def test_a_miner_is_denied_with_a_200_review_echoing_the_uid(client: Client) -> None:
    review = body(pod(container(command=MINER_COMMAND)))
    result = verdict(await post(client, review))
    assert result["uid"] == review["request"]["uid"]
    assert result["allowed"] is False
    assert result["status"]["code"] == 403


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b"{", "not JSON"),
        (b'"just a string"', "not a JSON object"),
        (b'{"apiVersion": "admission.k8s.io/v1beta1", "kind": "AdmissionReview"}', "v1beta1"),
        (b'{"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": {}}', "uid"),
        (b"[" * 100_000 + b"]" * 100_000, "not JSON"),
    ],
)
async def test_malformed_requests_get_a_400_with_a_reason(
    client: Client, raw: bytes, reason: str
) -> None:
    answer = await post(client, raw)
    assert answer.status_code == 400
    assert reason in orjson.loads(answer.content)["error"]


async def test_unknown_kinds_are_allowed(client: Client) -> None:
    result = verdict(await post(client, body({"kind": "Widget", "spec": {}}, kind="Widget")))
    assert result["allowed"] is True


async def test_an_object_of_the_wrong_shape_is_decided_not_failed(client: Client) -> None:
    odd = {
        "kind": "Pod",
        "spec": {"containers": [{"name": 1, "image": ["x"], "command": "xmrig"}, 5]},
    }
    result = verdict(await post(client, body(odd)))
    # Mistyped fields are read as strings; a bare "xmrig" alone is no miner. An internal error
    # would have been answered as a refusal.
    assert result["allowed"] is True


async def test_a_three_megabyte_pod_is_decided(client: Client) -> None:
    big = pod(
        container(
            "app",
            command=["/app"],
            env=[{"name": f"V{i}", "value": "x" * 300} for i in range(10_000)],
        ),
        container("miner", command=MINER_COMMAND),
    )
    raw = orjson.dumps(body(big))
    assert len(raw) > 3_000_000
    started = time.monotonic()
    result = verdict(await post(client, raw))
    assert time.monotonic() - started < 5
    assert result["allowed"] is False


async def test_thousands_of_containers_are_decided(client: Client) -> None:
    many = pod(*[container(f"c{i}", command=["/bin/app", f"--id={i}"]) for i in range(1500)])
    result = verdict(await post(client, body(many)))
    assert result["allowed"] is True


async def test_hostile_strings_do_not_break_the_review(client: Client) -> None:
    hostile = [
        "\x00\x01\x1b[2J",
        "\u202e\u200b\ufeff" * 1000,
        "$(" * 5000,
        "$(A)" * 5000,
        "x" * 200_000,
        "%n%s%x" * 100,
    ]
    containers = [
        container(
            f"h{i}", image=text[:300] or "x", command=[text], env=[{"name": "A", "value": text}]
        )
        for i, text in enumerate(hostile)
    ]
    result = verdict(await post(client, body(pod(*containers))))
    # Nothing in them mines, and nothing breaks: they are more than one review's judging
    # budget examines, so the containers from the one that used it up on are refused as
    # not fully examined, and nothing else is said (an internal error would say so).
    message = result["status"]["message"].removeprefix("minerguard: ")
    assert result["allowed"] is False
    reasons = message.split("; ")
    assert all("not fully examined" in reason for reason in reasons), message
    assert 'container "h0"' not in message  # judged within the budget: nothing found


async def test_a_lone_surrogate_in_json_is_refused_as_not_json(client: Client) -> None:
    raw = (
        b'{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":"u",'
        b'"kind":{"kind":"Pod"},"operation":"CREATE","object":{"kind":"Pod","spec":'
        b'{"containers":[{"name":"\\ud800","image":"\\udfff","command":["\\ud800"]}]}}}}'
    )
    answer = await post(client, raw)
    assert answer.status_code == 400
    assert "no low surrogate" in orjson.loads(answer.content)["error"]


async def test_a_body_over_the_limit_is_refused_with_413(client: Client) -> None:
    answer = await post(client, b"{" + b" " * (9 << 20) + b"}")
    assert answer.status_code == 413
    assert "over" in orjson.loads(answer.content)["error"]


async def test_probes_and_metrics_answer(client: Client) -> None:
    assert (await client.get("/healthz")).text == "ok"
    assert (await client.get("/readyz")).status_code == 200
    exposition = (await client.get("/metrics")).text
    assert (
        'minerguard_webhook_reviews_total{kind="Pod",operation="CREATE",verdict="denied"}'
        in exposition
    )
    assert "minerguard_webhook_bad_requests_total" in exposition


async def test_other_methods_on_validate_are_not_allowed(client: Client) -> None:
    assert (await client.get("/validate")).status_code == 405
