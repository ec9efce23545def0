"""Registry authentication: pull-secret credentials, challenges and bearer tokens.

The distribution API answers 401 with ``WWW-Authenticate: Bearer realm=..,service=..,scope=..``;
the client asks the realm for a token (anonymously, or with Basic credentials from a pull
secret) and retries. The client caches the resulting header per repository and identity until
shortly before the token expires, so a warm webhook makes one registry call per image, not two.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import orjson

from minerguard import images

DOCKER_HUB_ALIASES = frozenset(
    {"docker.io", "index.docker.io", "registry-1.docker.io", "registry.hub.docker.com"}
)
DEFAULT_TOKEN_SECONDS = 60.0
TOKEN_MARGIN_SECONDS = 10.0
DOCKERCONFIGJSON = "kubernetes.io/dockerconfigjson"
DOCKERCFG = "kubernetes.io/dockercfg"


@dataclass(frozen=True, slots=True)
class Credentials:
    """Basic credentials for one registry (from a pull secret)."""

    username: str
    password: str

    def basic(self) -> str:
        """The ``Authorization`` header value."""
        raw = f"{self.username}:{self.password}".encode()
        return "Basic " + base64.b64encode(raw).decode("ascii")

    def __repr__(self) -> str:  # never print a password into a log
        return f"Credentials(username={self.username!r})"


@dataclass(frozen=True, slots=True)
class Challenge:
    """A parsed ``WWW-Authenticate`` header."""

    scheme: str
    params: Mapping[str, str]


def parse_challenge(header: str) -> Challenge | None:
    """``Bearer realm="x",service="y"`` → Challenge; None when it cannot be read."""
    scheme, _, rest = header.strip().partition(" ")
    if not scheme:
        return None
    params: dict[str, str] = {}
    index, size = 0, len(rest)
    while index < size:
        while index < size and rest[index] in " ,":
            index += 1
        eq = rest.find("=", index)
        if eq < 0:
            break
        key = rest[index:eq].strip().lower()
        index = eq + 1
        if index < size and rest[index] == '"':
            end = index + 1
            chars: list[str] = []
            while end < size and rest[end] != '"':
                if rest[end] == "\\" and end + 1 < size:
                    end += 1
                chars.append(rest[end])
                end += 1
            value = "".join(chars)
            index = end + 1
        else:
            end = rest.find(",", index)
            end = size if end < 0 else end
            value = rest[index:end].strip()
            index = end
        if key:
            params[key] = value
    return Challenge(scheme=scheme.lower(), params=params)


def identity(registry: str, creds: Credentials | None) -> str:
    """Who a cached answer or token belongs to: a digest of the registry and the credentials.

    The user name alone is not an identity (ECR's is always ``AWS``; two namespaces' secrets
    may share a robot name with different passwords), and the secret's name or namespace says
    nothing about what the registry grants; the credentials themselves do. ``""``: anonymous.
    """
    if creds is None:
        return ""
    material = f"{registry}\0{creds.username}\0{creds.password}".encode()
    return hashlib.sha256(material).hexdigest()[:32]


def registry_key(text: str) -> str:
    """A registry host as written in a docker config: no scheme, no path, Hub aliases folded."""
    host = text.strip().lower()
    for prefix in ("https://", "http://"):
        if host.startswith(prefix):
            host = host[len(prefix) :]
    host = host.split("/", 1)[0]
    return images.DEFAULT_REGISTRY if host in DOCKER_HUB_ALIASES else host


def _entry_credentials(entry: Any) -> Credentials | None:
    if not isinstance(entry, Mapping):
        return None
    username, password = entry.get("username"), entry.get("password")
    if isinstance(username, str) and isinstance(password, str) and username:
        return Credentials(username, password)
    auth = entry.get("auth")
    if isinstance(auth, str) and auth:
        try:
            decoded = base64.b64decode(auth, validate=True).decode()
        except (binascii.Error, UnicodeDecodeError):
            return None
        user, sep, secret = decoded.partition(":")
        if sep and user:
            return Credentials(user, secret)
    return None


def keychain_from_secret(secret: Mapping[str, Any]) -> dict[str, Credentials]:
    """Registry credentials in a pull Secret as the API returns it (base64 ``data``).

    Unreadable secrets yield nothing: a broken pull secret makes the image unverifiable
    (the registry refuses), never the webhook fail.
    """
    data = secret.get("data")
    if not isinstance(data, Mapping):
        return {}
    kind = secret.get("type")
    field = ".dockerconfigjson" if kind == DOCKERCONFIGJSON else ".dockercfg"
    encoded = data.get(field)
    if not isinstance(encoded, str):
        return {}
    try:
        document = orjson.loads(base64.b64decode(encoded, validate=True))
    except (binascii.Error, orjson.JSONDecodeError):
        return {}
    if not isinstance(document, Mapping):
        return {}
    auths = document.get("auths") if field == ".dockerconfigjson" else document
    if not isinstance(auths, Mapping):
        return {}
    found: dict[str, Credentials] = {}
    for host, entry in auths.items():
        creds = _entry_credentials(entry)
        if creds is not None and isinstance(host, str):
            found.setdefault(registry_key(host), creds)
    return found


def merge_keychains(chains: Iterable[Mapping[str, Credentials]]) -> dict[str, Credentials]:
    """The first secret naming a registry wins, as in the kubelet."""
    merged: dict[str, Credentials] = {}
    for chain in chains:
        for host, creds in chain.items():
            merged.setdefault(host, creds)
    return merged


def token_from_answer(body: bytes) -> tuple[str, float | None]:
    """Token and lifetime from a token endpoint's JSON; raises ValueError when absent."""
    document = orjson.loads(body)
    if not isinstance(document, Mapping):
        raise ValueError("token answer is not a JSON object")
    token = document.get("token") or document.get("access_token")
    if not isinstance(token, str) or not token:
        raise ValueError("token answer has no token")
    expires = document.get("expires_in")
    return token, float(expires) if isinstance(expires, int | float) else None
