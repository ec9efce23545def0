"""An async OCI distribution client that reads only what decides what a container runs.

Reference → manifest (or index → the manifests a node would pull, chosen by
:mod:`webhook.matching`) → config blob → Entrypoint, Cmd, Env. Every body is
size-capped and its sha256 computed here (a registry's ``Docker-Content-Digest`` header is
never trusted), so a digest cached or matched against an exemption is the digest of the
bytes actually read. Registry 2.x answers 404 to an OCI manifest requested without a
matching ``Accept``, so every manifest request sends all four media types.
"""

from __future__ import annotations

import contextlib
import hashlib
import ssl
from collections.abc import Iterable, Iterator, Mapping
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

import httpx
import orjson

from minerguard import images
from minerguard.cache import BoundedCache
from minerguard.errors import MinerguardError
from minerguard.oci import auth, egress
from minerguard.podspec import ImageConfig

OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
INDEXES = frozenset({OCI_INDEX, DOCKER_LIST})
MANIFESTS = frozenset({OCI_MANIFEST, DOCKER_MANIFEST})
ACCEPT = ", ".join((OCI_INDEX, DOCKER_LIST, OCI_MANIFEST, DOCKER_MANIFEST))
DOCKER_HUB_API = "registry-1.docker.io"
MAX_MANIFEST_BYTES = 4 << 20
MAX_CONFIG_BYTES = 8 << 20
MAX_ENV = 4096
RUNNABLE_OS = "linux"
"""The only OS whose entries count for a pod that pins no platform (:mod:`webhook.matching`)."""
MAX_TOKEN_BYTES = 1 << 20
MAX_PLATFORMS = 16
"""At most this many entries of one index are fetched and judged (the cost of one image is
bounded; the rest are reported as not judged, never silently passed)."""


_TALLY: ContextVar[list[int] | None] = ContextVar("minerguard_registry_tally", default=None)


@contextlib.contextmanager
def tally() -> Iterator[list[int]]:
    """Count the HTTP requests made in this context: the first item of the list it yields.

    Tasks started inside inherit the context, so one caller's cost is exact even while other
    callers share the client (its ``requests`` counter sums them all).
    """
    counter = [0]
    token = _TALLY.set(counter)
    try:
        yield counter
    finally:
        _TALLY.reset(token)


class RegistryError(MinerguardError):
    """An image's config could not be read.

    The message is the detail, for the webhook's log: addresses, upstream statuses, what was
    wrong. :attr:`public` is what the caller of a review is told: one sentence per kind of
    failure, the same whatever host or port was asked, so the webhook's answers cannot be
    used to scan what it can reach.
    """

    generic = "the image could not be read from its registry"

    def __init__(self, detail: str, *, public: str | None = None) -> None:
        super().__init__(detail)
        self.public = public or self.generic


class RegistryUnavailable(RegistryError):
    """Unreachable, not allowed by the address policy, timed out, or answered 5xx/429."""

    generic = "the registry could not be reached"


class RegistryDenied(RegistryError):
    """The registry refused our credentials (or wants some we do not have)."""

    generic = "the registry refused access"


class ImageNotFound(RegistryError):
    """The repository, tag or digest does not exist."""

    generic = "the image was not found"


class BadImage(RegistryError):
    """The registry answered something that is not a usable image (or too big, or tampered)."""

    generic = "the registry's answer is not a usable image"


@dataclass(frozen=True, slots=True)
class Platform:
    """Which entry of a multi-arch index a node would pull."""

    os: str = "linux"
    architecture: str = "amd64"
    variant: str | None = None

    @classmethod
    def parse(cls, text: str) -> Platform:
        """``linux/arm64/v8`` → Platform."""
        parts = text.split("/")
        return cls(parts[0], parts[1], parts[2] if len(parts) > 2 else None)

    def __str__(self) -> str:
        return "/".join(p for p in (self.os, self.architecture, self.variant) if p)


@dataclass(frozen=True, slots=True)
class Entry:
    """One entry of a multi-arch index: the platform it declares and its manifest digest."""

    platform: Platform
    digest: str


@dataclass(frozen=True, slots=True)
class Runnable:
    """The entries of an index to judge for a pod that may land on any node."""

    entries: tuple[Entry, ...]
    unjudged: int = 0
    """Runnable entries past :data:`MAX_PLATFORMS`, left out (and reported)."""


@dataclass(frozen=True, slots=True)
class Fetched:
    """A manifest-like document with its media type and computed digest."""

    media_type: str
    digest: str
    document: Mapping[str, Any]


def sha256(data: bytes) -> str:
    """``sha256:<hex>`` of the bytes."""
    return "sha256:" + hashlib.sha256(data).hexdigest()


def _strings(value: Any, limit: int) -> tuple[str, ...]:
    if not isinstance(value, list):
        return ()
    return tuple(str(item) for item in value[:limit])


def image_config(document: Mapping[str, Any], digest: str) -> ImageConfig:
    """The parts of an image config blob that decide what runs."""
    config = document.get("config")
    if not isinstance(config, Mapping):
        config = {}
    env: list[tuple[str, str]] = []
    for item in _strings(config.get("Env"), MAX_ENV):
        name, _, value = item.partition("=")
        if name:
            env.append((name, value))
    return ImageConfig(
        entrypoint=_strings(config.get("Entrypoint"), MAX_ENV),
        cmd=_strings(config.get("Cmd"), MAX_ENV),
        env=tuple(env),
        digest=digest,
    )


TokenKey = tuple[str, str, str, str, str]
"""(registry, realm, service, scope, credential identity): whose token it is, for what."""


class RegistryClient:
    """Reads image configs over HTTPS (or plain HTTP for ``insecure`` HOST:PORTs).

    Every connection goes through ``policy`` (:mod:`minerguard.oci.egress`): registries, token
    realms and blob redirects alike. Credentials go only to the registry they were issued for and to
    the token realm it names, and only over HTTPS (plain HTTP only to hosts configured
    insecure); a token goes back only to the registry whose challenge asked for it; a redirect
    is followed once, without any ``Authorization``.
    """

    def __init__(
        self,
        *,
        insecure: Iterable[str] = (),
        verify: ssl.SSLContext | bool = True,
        policy: egress.AddressPolicy | None = None,
        max_connections: int = 64,
    ) -> None:
        self._insecure = frozenset(h.lower() for h in insecure)
        limits = httpx.Limits(max_connections=max_connections, keepalive_expiry=30)
        transport = httpx.AsyncHTTPTransport(verify=verify, limits=limits)
        egress.guard(transport, policy or egress.AddressPolicy())
        self._http = httpx.AsyncClient(
            transport=transport,
            follow_redirects=False,
            trust_env=False,  # a proxy would connect where the address policy cannot see
            headers={"User-Agent": "minerguard-webhook"},
        )
        # registry → the realm and service its last challenge named, so a cached token is
        # sent before the 401 that would name them again.
        self._challenges: BoundedCache[str, tuple[str, str]] = BoundedCache(1024)
        self._authorization: BoundedCache[TokenKey, str] = BoundedCache(4096)
        self.requests = 0

    async def aclose(self) -> None:
        """Close pooled connections."""
        await self._http.aclose()

    def base_url(self, registry: str) -> str:
        """Where the distribution API of ``registry`` lives."""
        host = DOCKER_HUB_API if registry == images.DEFAULT_REGISTRY else registry
        scheme = "http" if registry in self._insecure else "https"
        return f"{scheme}://{host}"

    def _secure_enough(self, url: httpx.URL) -> bool:
        """HTTPS, or plain HTTP to a HOST:PORT configured insecure."""
        if url.scheme == "https":
            return True
        return url.scheme == "http" and _origin(str(url)).lower() in self._insecure

    # -- transport --------------------------------------------------------------------------

    async def _send(
        self, url: str, headers: Mapping[str, str], limit: int, timeout: float
    ) -> tuple[httpx.Response, bytes]:
        self.requests += 1
        counter = _TALLY.get()
        if counter is not None:
            counter[0] += 1
        try:
            request = self._http.build_request("GET", url, headers=dict(headers), timeout=timeout)
            answer = await self._http.send(request, stream=True)
        except (httpx.InvalidURL, UnicodeError) as err:
            # A host no URL can hold (a broken IPv6 literal, a label IDNA cannot encode) is
            # named by whoever wrote the image reference: a registry failure like any other.
            raise RegistryUnavailable(f"{url!r:.200} is not a reachable URL: {err!s:.200}") from err
        except httpx.TimeoutException as err:
            raise RegistryUnavailable(f"{_origin(url)} timed out") from err
        except httpx.HTTPError as err:
            raise RegistryUnavailable(f"{_origin(url)} unreachable: {_why(err)}") from err
        try:
            declared = answer.headers.get("content-length")
            if declared and declared.isdigit() and int(declared) > limit:
                raise BadImage(f"{_origin(url)} answered {declared} bytes, over {limit}")
            body = bytearray()
            async for chunk in answer.aiter_raw():
                body += chunk
                if len(body) > limit:
                    raise BadImage(f"{_origin(url)} answered over {limit} bytes")
        except httpx.TimeoutException as err:
            raise RegistryUnavailable(f"{_origin(url)} timed out") from err
        except httpx.HTTPError as err:
            raise RegistryUnavailable(f"{_origin(url)} failed mid-answer: {_why(err)}") from err
        finally:
            await answer.aclose()
        return answer, bytes(body)

    async def _token(
        self,
        challenge: auth.Challenge,
        repository: str,
        creds: auth.Credentials | None,
        timeout: float,
    ) -> tuple[str, float | None]:
        realm = challenge.params.get("realm", "")
        try:
            target = httpx.URL(realm)
        except httpx.InvalidURL as err:
            raise RegistryDenied(f"token realm {realm!r:.100} is not a URL") from err
        if not target.host or not self._secure_enough(target):
            # Our pull-secret credentials would cross the network in the clear (or to a
            # non-HTTP scheme) on a registry's say-so.
            raise RegistryDenied(f"token realm {realm!r:.100} is not HTTPS")
        params = {"scope": f"repository:{repository}:pull"}
        if "service" in challenge.params:
            params["service"] = challenge.params["service"]
        url = str(target.copy_merge_params(params))
        headers = {"Authorization": creds.basic()} if creds else {}
        answer, body = await self._send(url, headers, MAX_TOKEN_BYTES, timeout)
        if answer.status_code in (401, 403):
            raise RegistryDenied(f"token service {_origin(url)} refused ({answer.status_code})")
        if answer.status_code >= 500 or answer.status_code == 429:
            raise RegistryUnavailable(f"token service answered {answer.status_code}")
        if answer.status_code != 200:
            raise RegistryDenied(f"token service answered {answer.status_code}")
        try:
            return auth.token_from_answer(body)
        except (ValueError, orjson.JSONDecodeError) as err:
            raise RegistryDenied(f"token service answer unusable: {err}") from err

    async def get(
        self,
        ref: images.ImageRef,
        path: str,
        *,
        accept: str | None,
        limit: int,
        creds: auth.Credentials | None,
        timeout: float,
    ) -> tuple[httpx.Response, bytes]:
        """GET ``/v2/<repo>/<path>``, answering one auth challenge; raises RegistryError."""
        url = f"{self.base_url(ref.registry)}/v2/{ref.repository}/{path}"
        headers = {"Accept": accept} if accept else {}
        key = self._token_key(ref, creds)
        cached = self._authorization.get(key) if key else None
        if cached:
            headers["Authorization"] = cached
        answer, body = await self._send(url, headers, limit, timeout)
        if answer.status_code == 401:
            challenge = auth.parse_challenge(answer.headers.get("www-authenticate", ""))
            if challenge is None:
                raise RegistryDenied(f"{ref.registry} wants credentials and names no scheme")
            if challenge.scheme == "bearer":
                realm = challenge.params.get("realm", "")
                self._challenges.put(ref.registry, (realm, challenge.params.get("service", "")))
                key = self._token_key(ref, creds)
                token, expires = await self._token(challenge, ref.repository, creds, timeout)
                value = f"Bearer {token}"
                lifetime = expires if expires and expires > 0 else auth.DEFAULT_TOKEN_SECONDS
                if key:
                    ttl = max(lifetime - auth.TOKEN_MARGIN_SECONDS, 1)
                    self._authorization.put(key, value, ttl)
            elif challenge.scheme == "basic" and creds is not None:
                if not self._secure_enough(httpx.URL(url)):
                    raise RegistryDenied(f"{ref.registry} asks for Basic credentials over HTTP")
                self._challenges.put(ref.registry, ("", ""))
                key = self._token_key(ref, creds)
                value = creds.basic()
                if key:
                    self._authorization.put(key, value, 300)
            else:
                raise RegistryDenied(f"{ref.registry} wants credentials the pod does not have")
            headers["Authorization"] = value
            answer, body = await self._send(url, headers, limit, timeout)
        status = answer.status_code
        if status in (401, 403):
            if key:
                self._authorization.pop(key, None)
            raise RegistryDenied(f"{ref.registry} refused access to {ref.repository} ({status})")
        if status == 404:
            what, _, which = path.partition("/")
            raise ImageNotFound(f"{ref.name}: {what.rstrip('s')} {which} not found")
        if status == 429 or status >= 500:
            raise RegistryUnavailable(f"{ref.registry} answered {status}")
        if status in (301, 302, 303, 307, 308) and path.startswith("blobs/"):
            return await self._redirected(answer, limit, timeout)
        if status != 200:
            raise BadImage(f"{ref.registry} answered {status} for {path}")
        return answer, body

    def _token_key(self, ref: images.ImageRef, creds: auth.Credentials | None) -> TokenKey | None:
        """Where a token for this repository and these credentials is kept (None: unknown yet)."""
        known = self._challenges.get(ref.registry)
        if known is None:
            return None
        realm, service = known  # ("", "") for Basic
        scope = f"repository:{ref.repository}:pull"
        return (ref.registry, realm, service, scope, auth.identity(ref.registry, creds))

    async def _redirected(
        self, answer: httpx.Response, limit: int, timeout: float
    ) -> tuple[httpx.Response, bytes]:
        """One hop, never with ``Authorization``, HTTPS unless the target is configured insecure.

        Storage redirects are pre-signed; the address policy applies to the target as to any
        connection. A second redirect is an error, so a loop costs one request.
        """
        location = answer.headers.get("location", "")
        try:
            target = answer.request.url.join(location)
        except httpx.InvalidURL as err:
            raise BadImage(f"blob redirect to {location!r:.100}") from err
        if not target.host or not self._secure_enough(target):
            raise BadImage(f"blob redirect to a non-HTTPS location {target.scheme}://{target.host}")
        moved, body = await self._send(str(target), {}, limit, timeout)
        if moved.status_code != 200:
            raise RegistryUnavailable(f"blob storage answered {moved.status_code}")
        return moved, body

    # -- the resolution steps ---------------------------------------------------------------

    async def manifest(
        self,
        ref: images.ImageRef,
        reference: str,
        creds: auth.Credentials | None,
        timeout: float,
    ) -> Fetched:
        """A manifest or index, with the digest of its bytes (checked when asked by digest)."""
        answer, body = await self.get(
            ref,
            f"manifests/{reference}",
            accept=ACCEPT,
            limit=MAX_MANIFEST_BYTES,
            creds=creds,
            timeout=timeout,
        )
        digest = sha256(body)
        if reference.startswith("sha256:") and reference != digest:
            raise BadImage(f"{ref.name}@{reference}: content does not match its digest")
        document = _json_object(body, f"{ref.name}: manifest")
        declared = answer.headers.get("content-type", "").split(";", 1)[0].strip()
        media_type = str(document.get("mediaType") or declared)
        if media_type not in INDEXES and media_type not in MANIFESTS:
            if "manifests" in document:
                media_type = OCI_INDEX
            elif "config" in document:
                media_type = OCI_MANIFEST
            else:
                raise BadImage(f"{ref.name}: unsupported manifest type {media_type!r:.100}")
        return Fetched(media_type, digest, document)

    async def config(
        self,
        ref: images.ImageRef,
        manifest: Fetched,
        creds: auth.Credentials | None,
        timeout: float,
    ) -> Mapping[str, Any]:
        """The config blob a manifest names, digest-checked."""
        descriptor = manifest.document.get("config")
        digest = descriptor.get("digest") if isinstance(descriptor, Mapping) else None
        if not isinstance(digest, str) or not digest.startswith("sha256:") or len(digest) != 71:
            raise BadImage(f"{ref.name}: manifest names no sha256 config")
        _, body = await self.get(
            ref,
            f"blobs/{digest}",
            accept=None,
            limit=MAX_CONFIG_BYTES,
            creds=creds,
            timeout=timeout,
        )
        if sha256(body) != digest:
            raise BadImage(f"{ref.name}: config blob does not match its digest")
        return _json_object(body, f"{ref.name}: config")


def _json_object(body: bytes, what: str) -> dict[str, Any]:
    """A registry document, which must be a JSON object."""
    try:
        document = orjson.loads(body)
    except orjson.JSONDecodeError as err:
        raise BadImage(f"{what} is not JSON") from err
    if not isinstance(document, dict):
        raise BadImage(f"{what} is not a JSON object")
    return document


def _origin(url: str) -> str:
    parsed = httpx.URL(url)
    port = f":{parsed.port}" if parsed.port else ""
    return f"{parsed.host}{port}"


def _why(err: httpx.HTTPError) -> str:
    text = str(err) or type(err).__name__
    return text[:200]
