"""The resolver against the loopback registries: single flight, failure memory, deadlines."""

from __future__ import annotations

import asyncio
import time

import pytest

from minerguard.oci import egress, registry
from tests.integration.webhook import oci
from tests.integration.webhook.conftest import Images
from webhook import resolve

LOOPBACK = egress.AddressPolicy(egress.LOOPBACK)

pytestmark = pytest.mark.slow


async def test_concurrent_reviews_of_one_cold_image_share_one_fetch(images: Images) -> None:
    client = registry.RegistryClient(insecure=[images.open], policy=LOOPBACK)
    resolver = resolve.ImageResolver(client)
    image = images.ref("miners/envminer:1")
    try:
        results = await asyncio.gather(
            *[resolver.resolve_all([image], registry.Platform(), deadline=5) for _ in range(20)]
        )
        assert all(image in r.configs for r in results)
        assert client.requests == 2  # one manifest, one config blob
        config = results[0].configs[image]
        assert config.digest == images.digests["miners/envminer:1"]
        assert ("POOL_URL", "stratum+tcp://pool.supportxmr.com:3333") in config.env
    finally:
        await client.aclose()


async def test_a_failure_is_remembered_briefly(images: Images) -> None:
    client = registry.RegistryClient(insecure=[images.hanging], policy=LOOPBACK)
    resolver = resolve.ImageResolver(client, error_ttl=30)
    image = images.ref("x/y:1", images.hanging)
    try:
        started = time.monotonic()
        first = await resolver.resolve_all([image], registry.Platform(), deadline=0.3)
        again = await resolver.resolve_all([image], registry.Platform(), deadline=0.3)
        assert time.monotonic() - started < 1.5
        assert "did not answer" in first.errors[image]
        assert again.errors[image] == first.errors[image]
        assert again.cold == 0
    finally:
        await client.aclose()


async def test_a_moved_tag_is_seen_after_the_tag_ttl(images: Images) -> None:
    now = [0.0]
    client = registry.RegistryClient(insecure=[images.open], policy=LOOPBACK)
    resolver = resolve.ImageResolver(client, tag_ttl=60, clock=lambda: now[0])
    image = images.ref("moving/app:latest")
    try:
        oci.push_image(f"http://{images.open}", "moving/app", tag="latest", cmd=["/serve"])
        before = await resolver.resolve_all([image], registry.Platform(), deadline=5)
        oci.push_image(f"http://{images.open}", "moving/app", tag="latest", cmd=["xmrig"])
        cached = await resolver.resolve_all([image], registry.Platform(), deadline=5)
        assert cached.configs[image] == before.configs[image]
        now[0] += 61
        moved = await resolver.resolve_all([image], registry.Platform(), deadline=5)
        assert moved.configs[image].cmd == ("xmrig",)
    finally:
        await client.aclose()


async def test_an_unpinned_index_reads_every_entry_once_and_pinned_reviews_share_them(
    images: Images,
) -> None:
    client = registry.RegistryClient(insecure=[images.open], policy=LOOPBACK)
    resolver = resolve.ImageResolver(client)
    image = images.ref("mixed/app:1")
    try:
        results = await asyncio.gather(
            *[resolver.resolve_all([image], None, deadline=5) for _ in range(10)]
        )
        assert client.requests == 5  # the index, then two manifests and two configs
        mixed = results[0].per_platform[image]
        assert all(r.per_platform[image] == mixed for r in results)
        assert image not in results[0].configs
        by_platform = {str(v): v.config for v in mixed.variants}
        assert by_platform["linux/amd64"].cmd == ("--serve",)
        assert "stratum+tcp://pool.supportxmr.com:3333" in by_platform["linux/arm64"].entrypoint
        assert {v.config.digest for v in mixed.variants} == {images.digests["mixed/app:1"]}
        arm = await resolver.resolve_all([image], registry.Platform("linux", "arm64"), deadline=5)
        assert arm.configs[image] == by_platform["linux/arm64"]
        assert client.requests == 6  # only the index again: the entry's config is known
        warm = await resolver.resolve_all([image], None, deadline=5)
        assert warm.per_platform[image] == mixed
        assert warm.cold == 0
        assert client.requests == 6
    finally:
        await client.aclose()


async def test_a_single_arch_image_is_one_config_for_an_unpinned_pod(images: Images) -> None:
    client = registry.RegistryClient(insecure=[images.open], policy=LOOPBACK)
    resolver = resolve.ImageResolver(client)
    image = images.ref("benign/web:1")
    try:
        result = await resolver.resolve_all([image], None, deadline=5)
        assert result.configs[image].cmd == ("nginx", "-g", "daemon off;")
        assert result.per_platform == {}
        assert client.requests == 2
    finally:
        await client.aclose()
