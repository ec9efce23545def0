"""What digest pinning adds per pod: ``/mutate``, then ``/validate`` on the pinned reference.

Run: PYTHONPATH=. .venv/bin/python bench/webhook_pinning.py [--rounds 20000]

In-process, warm cache (a pod's images were resolved before), no HTTP: the cost of one
``/mutate`` answer (parse, resolve from the cache, build and encode the patch) next to one
``/validate`` answer of the same pod by tag and by the pinned digest. The registry round trip
of a cold image is the same single lookup either way (``/validate`` of the pinned pod reads
the cache ``/mutate`` filled), so it is not measured here; see bench/webhook_resolve.py.
"""

from __future__ import annotations

import argparse
import asyncio
import time
import uuid
from typing import Any

import orjson

from minerguard.oci import registry
from minerguard.podspec import ImageConfig
from tests.support import policy
from webhook import memo, metrics, pinning, resolve, routes
from webhook.admission import Reviewer
from webhook.app import Services
from webhook.settings import WebhookSettings

IMAGES = [f"registry.example/team/app{i}:1" for i in range(3)]


def body(images: list[str]) -> bytes:
    containers = [{"name": f"c{i}", "image": image} for i, image in enumerate(images)]
    return orjson.dumps(
        {
            "apiVersion": "admission.k8s.io/v1",
            "kind": "AdmissionReview",
            "request": {
                "uid": str(uuid.uuid4()),
                "kind": {"group": "", "version": "v1", "kind": "Pod"},
                "resource": {"group": "", "version": "v1", "resource": "pods"},
                "namespace": "apps",
                "operation": "CREATE",
                "userInfo": {"username": "dev"},
                "object": {
                    "apiVersion": "v1",
                    "kind": "Pod",
                    "metadata": {"name": "web", "namespace": "apps"},
                    "spec": {"containers": containers},
                },
            },
        }
    )


def services() -> Services:
    settings = WebhookSettings()
    resolver = resolve.ImageResolver(registry.RegistryClient(insecure=["127.0.0.1:9"]))
    for i, image in enumerate(IMAGES):
        config = ImageConfig(("/app",), ("--serve",), (), f"sha256:{i:064x}")
        resolver.prime(image, None, config)
    fixed = (policy("default"),)
    reviewer = Reviewer(settings, memo.MemoPolicies(lambda: fixed), resolver)
    return Services(
        settings,
        metrics.Metrics(),
        reviewer,
        resolver,
        pinner=pinning.Pinner(settings, resolver),
    )


async def per_call(answer: Any, services: Services, document: bytes, rounds: int) -> float:
    for _ in range(200):
        await answer(services, document)
    started = time.perf_counter()
    for _ in range(rounds):
        await answer(services, document)
    return (time.perf_counter() - started) / rounds * 1e6


async def main() -> None:
    cli = argparse.ArgumentParser()
    cli.add_argument("--rounds", type=int, default=20000)
    rounds = cli.parse_args().rounds
    built = services()
    tagged = body(IMAGES)
    status, mutated = await pinning.answer(built, tagged)
    assert status == 200
    assert b"patch" in mutated
    pinned = body([f"{image}@sha256:{i:064x}" for i, image in enumerate(IMAGES)])
    rows = [
        ("/mutate, 3 tagged images", pinning.answer, tagged),
        ("/validate, same pod by tag", routes.answer, tagged),
        ("/validate, same pod pinned", routes.answer, pinned),
        ("/mutate, same pod already pinned", pinning.answer, pinned),
    ]
    for name, answer, document in rows:
        print(f"{name:36} {await per_call(answer, built, document, rounds):8.1f} µs/review")


if __name__ == "__main__":
    asyncio.run(main())
