"""A registry host no URL can hold ends as a RegistryError, never as another exception.

The registry is named by whoever writes the image reference, so a host IDNA cannot encode
(an empty or 64-character label, a bad ``xn--`` A-label) or httpx cannot parse (a broken
IPv6 literal, a control character) is hostile input. Every caller relies on the client's
contract that registry failures are :class:`~minerguard.oci.registry.RegistryError`; each of
these fails before any name is looked up, so nothing leaves the machine.
"""

from __future__ import annotations

import pytest

from minerguard import images
from minerguard.oci import egress, registry

HOSTS = [
    "a..example",
    "a" * 64 + ".example",
    "xn--zz.example",
    "xn--.example",
    "[::1",
    "[zz]:1",
    "bad\x00.example",
]


@pytest.mark.parametrize("host", HOSTS)
async def test_a_host_no_url_can_hold_is_a_registry_error_with_a_generic_message(
    host: str,
) -> None:
    client = registry.RegistryClient(insecure=[host], policy=egress.AddressPolicy(egress.LOOPBACK))
    ref = images.ImageRef(registry=host, repository="app", tag="1", digest=None)
    try:
        with pytest.raises(registry.RegistryError) as raised:
            await client.manifest(ref, "1", None, 1.0)
    finally:
        await client.aclose()
    assert raised.value.public == type(raised.value).generic
    assert host not in raised.value.public
