"""Attack: one tenant's registry answers served to another.

The resolver's caches used to be global or keyed by names: the tag and config caches by image
alone (a private image resolved with one namespace's pull secret was served to a namespace
with none), failures by service-account and secret *names* (``default`` in one namespace is
not ``default`` in another), and bearer tokens by user name (ECR's is always ``AWS``). Now what
a requester is for every cache is a digest of the credentials it holds, and a private answer
is only served to a requester whose own credentials the registry accepted. Real
docker-registry behind a real token server on loopback.
"""

from __future__ import annotations

from collections.abc import Mapping

import pytest

from minerguard.oci import auth, egress, registry
from tests.integration.webhook.conftest import Images, images  # noqa: F401 - the fixture
from webhook import resolve

pytestmark = pytest.mark.slow
PULLER = auth.Credentials("puller", "pull-secret-pw")
SAME_NAME = auth.Credentials("puller", "another-tenants-password")  # ECR: always "AWS"


@pytest.fixture
def resolver(images: Images) -> resolve.ImageResolver:  # noqa: F811
    client = registry.RegistryClient(
        insecure=[images.token, images.tokens.host], policy=egress.AddressPolicy(egress.LOOPBACK)
    )
    return resolve.ImageResolver(client)


def keychain(host: str, creds: auth.Credentials | None) -> resolve.KeychainLoader:
    async def load() -> Mapping[str, auth.Credentials]:
        return {host: creds} if creds else {}

    return load


async def test_a_private_image_is_not_served_to_a_tenant_without_credentials(
    images: Images,  # noqa: F811
    resolver: resolve.ImageResolver,
) -> None:
    image = images.ref("private/app:1", images.token)
    try:
        mine = await resolver.resolve_all(
            [image], None, deadline=5, keychain=keychain(images.token, PULLER)
        )
        assert "xmrig" in mine.configs[image].cmd
        theirs = await resolver.resolve_all(
            [image], None, deadline=5, keychain=keychain(images.token, None)
        )
        assert image not in theirs.configs
        assert theirs.errors[image] == "the registry refused access"
        again = await resolver.resolve_all(
            [image], None, deadline=5, keychain=keychain(images.token, PULLER)
        )
        assert again.configs[image] == mine.configs[image]  # proven: from the cache
    finally:
        await resolver.client.aclose()


async def test_another_tenants_refusal_is_not_handed_to_a_tenant_with_credentials(
    images: Images,  # noqa: F811
    resolver: resolve.ImageResolver,
) -> None:
    image = images.ref("private/app:1", images.token)
    try:
        refused = await resolver.resolve_all(
            [image], None, deadline=5, keychain=keychain(images.token, None)
        )
        assert refused.errors[image] == "the registry refused access"
        allowed = await resolver.resolve_all(
            [image], None, deadline=5, keychain=keychain(images.token, PULLER)
        )
        assert image in allowed.configs, allowed.errors
    finally:
        await resolver.client.aclose()


async def test_a_token_is_not_reused_for_other_credentials_with_the_same_user_name(
    images: Images,  # noqa: F811
    resolver: resolve.ImageResolver,
) -> None:
    image = images.ref("private/app:1", images.token)
    try:
        mine = await resolver.resolve_all(
            [image], None, deadline=5, keychain=keychain(images.token, PULLER)
        )
        assert image in mine.configs
        resolver.forget()  # the answers are gone (evicted); the client's tokens are not
        theirs = await resolver.resolve_all(
            [image], None, deadline=5, keychain=keychain(images.token, SAME_NAME)
        )
        assert image not in theirs.configs
        assert theirs.errors[image] == "the registry refused access"
    finally:
        await resolver.client.aclose()


async def test_a_public_image_is_served_to_everyone_from_the_cache(
    images: Images,  # noqa: F811
    resolver: resolve.ImageResolver,
) -> None:
    image = images.ref("miners/cmdonly:1", images.token)
    try:
        await resolver.resolve_all([image], None, deadline=5, keychain=keychain(images.token, None))
        requests = resolver.client.requests
        with_secret = await resolver.resolve_all(
            [image], None, deadline=5, keychain=keychain(images.token, PULLER)
        )
        assert image in with_secret.configs
        assert resolver.client.requests == requests  # proven anonymously: no lookup
    finally:
        await resolver.client.aclose()
