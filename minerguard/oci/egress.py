"""Where the webhook's registry lookups may connect: an address policy checked at connect time.

An image reference is written by whoever creates a pod, so every host the webhook contacts
(the registry, its token realm, a blob redirect) is the attacker's choice. Unchecked, that
makes the webhook a proxy into the cluster: the cloud metadata service on 169.254.169.254, the
API server's service IP, a database on a pod address, each answering with a status the
attacker could read back. So a lookup may only connect to globally routable addresses unless a
network is explicitly allowed (``registry_allowed_networks``: an in-cluster registry, or
loopback in tests); metadata addresses never.

The check sits in the transport (:class:`GuardedBackend`, httpcore's network backend), not in
front of it: the name is resolved once, the addresses checked, and the connection made to the
checked address, so a name that answers a public address to the check and a private one to
the connection (DNS rebinding) gains nothing. TLS still verifies the certificate against the
name. Every redirect and token realm goes through the same transport, so no path skips it.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import httpcore

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network

METADATA = frozenset(
    ipaddress.ip_address(a)
    for a in ("169.254.169.254", "169.254.170.2", "fd00:ec2::254", "100.100.100.200")
)
"""Cloud instance metadata and credential endpoints: never a registry, never allowed."""

LOOPBACK = (ipaddress.ip_network("127.0.0.0/8"), ipaddress.ip_network("::1/128"))
"""What tests (and a registry proxy on the node) allow."""


class AddressNotAllowed(httpcore.ConnectError):
    """A host resolved only to addresses the policy denies (surfaced as httpx.ConnectError)."""


NAT64 = ipaddress.ip_network("64:ff9b::/96")
"""The well-known NAT64 prefix: its last 32 bits are the IPv4 address a gateway connects to."""


def _plain(address: Address) -> Address:
    """The IPv4 address inside a mapped, 6to4 or NAT64 IPv6 one, which is where it connects."""
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return address.ipv4_mapped
        if address.sixtofour is not None:
            return address.sixtofour
        if address in NAT64:
            return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return address


@dataclass(frozen=True)
class AddressPolicy:
    """Globally routable addresses, plus ``allowed`` networks; metadata endpoints never."""

    allowed: tuple[Network, ...] = ()

    @classmethod
    def of(cls, networks: Iterable[str]) -> AddressPolicy:
        """A policy allowing these CIDRs (``10.0.0.0/8``, ``127.0.0.1``) besides the internet."""
        return cls(tuple(ipaddress.ip_network(n.strip(), strict=False) for n in networks))

    def allows(self, address: Address) -> bool:
        """Whether a connection to ``address`` may be made."""
        plain = _plain(address)
        if plain in METADATA or address in METADATA:
            return False
        if any(plain in net or address in net for net in self.allowed):
            return True
        return plain.is_global and not plain.is_multicast


class GuardedBackend(httpcore.AsyncNetworkBackend):
    """httpcore's backend, connecting only to addresses the policy allows."""

    def __init__(self, policy: AddressPolicy, inner: httpcore.AsyncNetworkBackend) -> None:
        self._policy = policy
        self._inner = inner

    async def _addresses(self, host: str, port: int, timeout: float | None) -> list[Address]:
        loop = asyncio.get_running_loop()
        async with asyncio.timeout(timeout):
            infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        found: dict[Address, None] = {}
        for _, _, _, _, sockaddr in infos:
            found[ipaddress.ip_address(str(sockaddr[0]).split("%", 1)[0])] = None
        return list(found)

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        """Resolve once, keep the allowed addresses, connect to the first that answers."""
        try:
            addresses = await self._addresses(host, port, timeout)
        except (OSError, TimeoutError) as err:
            raise httpcore.ConnectError(f"{host}: name not resolved: {err}") from err
        allowed = [a for a in addresses if self._policy.allows(a)]
        if not allowed:
            shown = ", ".join(str(a) for a in addresses[:4])
            raise AddressNotAllowed(
                f"{host} resolves to {shown}, which the webhook's address policy does not "
                "allow (registry_allowed_networks)"
            )
        failure: httpcore.ConnectError | None = None
        for address in allowed:
            try:
                return await self._inner.connect_tcp(
                    str(address),
                    port,
                    timeout=timeout,
                    local_address=local_address,
                    socket_options=socket_options,
                )
            except httpcore.ConnectError as err:
                failure = err
        assert failure is not None  # noqa: S101 - allowed is not empty
        raise failure

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        """Never: a registry is not a local socket."""
        raise AddressNotAllowed(f"unix socket {path} is not a registry")

    async def sleep(self, seconds: float) -> None:
        """The inner backend's sleep (httpcore's retries)."""
        await self._inner.sleep(seconds)


def guard(transport: Any, policy: AddressPolicy) -> None:
    """Route every connection of an httpx transport through :class:`GuardedBackend`.

    httpx builds its httpcore pool without a way to pass a network backend, so the pool's
    backend is replaced; a missing attribute (an httpx that changed this) fails loudly here
    rather than leaving lookups unguarded.
    """
    pool = transport._pool
    inner = pool._network_backend
    if not isinstance(inner, httpcore.AsyncNetworkBackend):
        raise TypeError("httpx transport without an httpcore async network backend")
    pool._network_backend = GuardedBackend(policy, inner)
