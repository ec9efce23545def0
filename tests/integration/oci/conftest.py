"""A real registry (Debian's docker-registry) on loopback, and a provenance reader over it."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from minerguard.oci import egress, registry
from tests.conftest import require
from tests.integration.webhook import oci

LOOPBACK = egress.AddressPolicy(egress.LOOPBACK)


@dataclass(frozen=True)
class Registries:
    """HOST:PORTs of one storage served anonymously and behind token auth, and the realm."""

    open: str
    token: str
    realm: str


@pytest.fixture(scope="session")
def registries(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registries]:
    require(Path(oci.BINARY).exists(), "docker-registry is not installed")
    folder = tmp_path_factory.mktemp("oci-registry")
    storage = folder / "storage"
    storage.mkdir()
    with (
        oci.TokenServer(folder, {}) as tokens,
        oci.Registry(storage, folder) as served,
        oci.Registry(storage, folder, tokens) as guarded,
    ):
        yield Registries(served.host, guarded.host, tokens.host)


@pytest.fixture(scope="session")
def registry_host(registries: Registries) -> str:
    """HOST:PORT of an anonymous registry shared by the session (each test its own repos)."""
    return registries.open


@pytest.fixture
async def client(registry_host: str) -> AsyncIterator[registry.RegistryClient]:
    opened = registry.RegistryClient(insecure=[registry_host], policy=LOOPBACK)
    try:
        yield opened
    finally:
        await opened.aclose()
