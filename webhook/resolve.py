"""What the images of an object would run: cached, deduplicated, deadline-bound resolution.

Only containers without a pod ``command`` need their image's config. A warm lookup is two
dict hits (tag → digest, digest and platform choice → config). A cold one reads the registry
once however many concurrent reviews ask for the same image (single flight), and all of an
object's images resolve concurrently under one deadline inside the webhook's timeout budget.
Failures are remembered for a few seconds, so a dead registry costs one deadline, not one per
request; what a failure means (allow with a warning, or deny) is the policy's call, not ours.

The platform choice is a :class:`Platform` when the pod pins one, else ``None``: any node
may run the pod, so a multi-arch index resolves to what *each* of its Linux entries runs
(fetched concurrently), and an index that hides a miner behind one architecture is judged on
it. A pinned pod is judged on every entry a node of that architecture might pull, by the
runtime's own rules (:mod:`webhook.matching`). Entries that all run the same thing collapse to
one :class:`ImageConfig`, so the common multi-arch image costs nothing more than a single one.

Caches are per tenant where it matters. What an image runs is cached by registry, repository
and digest, with the set of credential identities (:func:`minerguard.oci.auth.identity`) that proved
to the registry they may read that digest. Anyone may be served an answer proven anonymously
(no keychain is even loaded); anyone else is served only after the registry let *their*
credentials read the manifest (one request; the config stays cached). Failures and in-flight
lookups are keyed by the same identity, so one namespace's 401 is never another's answer.

The caller is told one generic sentence per kind of failure (:attr:`RegistryError.public`);
hosts, statuses and addresses go to the log only, so reviews cannot be used as a port scanner.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from minerguard.cache import BoundedCache, Clock
from minerguard.images import ImageRef
from minerguard.oci import auth, registry
from minerguard.oci.registry import Platform
from minerguard.podspec import ImageConfig
from webhook import matching, references

log = logging.getLogger(__name__)

Keychain = Mapping[str, auth.Credentials]
KeychainLoader = Callable[[], Awaitable[Keychain]]
"""Loads a pod's registry credentials; called only when the registry must be asked."""
GRACE = 0.05
ANYONE = ""
"""The identity of an anonymous lookup: an answer it proved may be served to every requester."""


async def no_credentials() -> Keychain:
    """The loader for pods without pull secrets, or webhooks without a cluster."""
    return {}


@dataclass(frozen=True, slots=True)
class Variant:
    """One distinct config among an index's entries, and the platforms that run it."""

    platforms: tuple[Platform, ...]
    config: ImageConfig

    def __str__(self) -> str:
        return ", ".join(str(p) for p in self.platforms)


@dataclass(frozen=True, slots=True)
class PerPlatform:
    """An unpinned multi-arch image whose entries do not all run the same thing.

    Also used when they agree but some runnable entries were left unjudged (past
    :data:`registry.MAX_PLATFORMS`), so that the gap is reported on every review, warm or cold.
    """

    variants: tuple[Variant, ...]
    unjudged: int = 0


Resolved = ImageConfig | PerPlatform
"""What one image resolves to: one config (single-arch, pinned, or all entries agree), or
the distinct configs of an unpinned index, each of which a node might run."""

PlatformChoice = Platform | None
"""The platform a pod is pinned to, or None: any node, so every runnable index entry counts."""


@dataclass
class Resolution:
    """Configs for the images that resolved, reasons for those that did not.

    An image lands in ``configs`` when it runs one thing wherever it is pulled, in
    ``per_platform`` when an unpinned pod might run any of several (never in both).
    """

    configs: dict[str, ImageConfig] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)
    per_platform: dict[str, PerPlatform] = field(default_factory=dict)
    cold: int = 0

    def add(self, image: str, resolved: Resolved) -> None:
        """File what ``image`` resolved to under ``configs`` or ``per_platform``."""
        if isinstance(resolved, PerPlatform):
            self.per_platform[image] = resolved
        else:
            self.configs[image] = resolved


def combine(judged: Sequence[tuple[Platform, ImageConfig]], unjudged: int = 0) -> Resolved:
    """Group entries by what they run; one config when they all agree and none was left out."""
    platforms: dict[ImageConfig, list[Platform]] = {}
    for platform, config in judged:
        platforms.setdefault(config, []).append(platform)
    if len(platforms) == 1 and not unjudged:
        return judged[0][1]
    return PerPlatform(
        tuple(Variant(tuple(where), config) for config, where in platforms.items()), unjudged
    )


@dataclass(frozen=True, slots=True)
class Outcome:
    """How one image resolution went, for metrics."""

    cached: bool
    seconds: float
    error: str | None


Where = tuple[str, str, str]
"""(registry, repository, top-level digest): what a cached answer is the answer for."""
FlightKey = tuple[str, PlatformChoice, str]
"""(image, platform choice, credential identity): one lookup, shared by identical requesters."""


class ImageResolver:
    """Image references → what they run, through the caches and the registry client."""

    def __init__(
        self,
        client: registry.RegistryClient,
        *,
        tag_ttl: float = 300.0,
        error_ttl: float = 5.0,
        size: int = 4096,
        clock: Clock = time.monotonic,
        observe: Callable[[Outcome], None] | None = None,
    ) -> None:
        self.client = client
        self._clock = clock
        self._error_ttl = error_ttl
        # A tag names one manifest or index whatever the platform: one entry serves all.
        self._tags: BoundedCache[tuple[str, str, str], str] = BoundedCache(
            size, ttl=tag_ttl, clock=clock
        )
        # (registry, repository, top-level digest) → identities the registry let read it;
        # expires with the tags, so revoked credentials are noticed within the tag TTL.
        self._access: BoundedCache[Where, frozenset[str]] = BoundedCache(
            size, ttl=tag_ttl, clock=clock
        )
        # (where, choice) → answer.
        self._configs: BoundedCache[tuple[Where, PlatformChoice], Resolved] = BoundedCache(size)
        # (where, entry manifest digest) → that entry's config, for either choice.
        self._entries: BoundedCache[tuple[Where, str], ImageConfig] = BoundedCache(size)
        self._errors: BoundedCache[FlightKey, str] = BoundedCache(size, ttl=error_ttl, clock=clock)
        self._inflight: dict[FlightKey, asyncio.Future[Resolved]] = {}
        self._observe = observe

    def _warm(self, ref: ImageRef, platform: PlatformChoice, who: str) -> Resolved | None:
        """The cached answer for ``ref`` if ``who`` (or anyone anonymously) proved access."""
        digest = ref.digest or self._tags.get((ref.registry, ref.repository, ref.tag or "latest"))
        if digest is None:
            return None
        where = (ref.registry, ref.repository, digest)
        proven = self._access.get(where)
        if proven is None or (ANYONE not in proven and who not in proven):
            return None
        return self._configs.get((where, platform))

    def _grant(self, where: Where, who: str) -> None:
        self._access.put(where, (self._access.get(where) or frozenset()) | {who})

    def cached(self, image: str, platform: PlatformChoice) -> Resolved | None:
        """The cached answer anyone may have, without any I/O (a warm webhook's hot path)."""
        try:
            ref = references.reference(image)
        except registry.BadImage:
            return None
        return self._warm(ref, platform, ANYONE)

    async def resolve_all(
        self,
        images: Iterable[str],
        platform: PlatformChoice,
        *,
        deadline: float,
        keychain: KeychainLoader = no_credentials,
    ) -> Resolution:
        """Resolve each distinct image within ``deadline`` seconds; never raises.

        ``platform`` None: the pod pins none, so an index answers for all its Linux entries.
        Who a requester is for the caches is the digest of the credentials its keychain
        holds for each registry (:func:`minerguard.oci.auth.identity`), never a secret's name.
        """
        result = Resolution()
        pending: dict[str, asyncio.Future[Resolved]] = {}
        shared = _Once(keychain)
        cold: list[str] = []
        for image in dict.fromkeys(images):
            hit = self.cached(image, platform)
            if hit is not None:
                result.add(image, hit)
                self._report(Outcome(True, 0.0, None))
                continue
            pending[image] = asyncio.ensure_future(
                self._lookup(image, platform, shared, deadline, cold)
            )
        if not pending:
            return result
        # A little past the fetches' own deadline, so they end (and are remembered) first.
        _, late = await asyncio.wait(pending.values(), timeout=deadline + GRACE)
        result.cold = len(cold)
        for image, future in pending.items():
            if future in late:
                future.cancel()  # the shared fetch goes on for other reviews and the cache
                result.errors[image] = _timeout(deadline).public
                continue
            error = future.exception()
            if error is None:
                result.add(image, future.result())
            else:
                result.errors[image] = _public(error)
        return result

    def _report(self, outcome: Outcome) -> None:
        if self._observe is not None:
            self._observe(outcome)

    async def _lookup(
        self,
        image: str,
        platform: PlatformChoice,
        keychain: _Once,
        deadline: float,
        cold: list[str],
    ) -> Resolved:
        """Who is asking, then the cache for them, their remembered failure, or the registry."""
        ref = references.reference(image)
        try:
            async with asyncio.timeout(deadline):
                creds = (await keychain.get()).get(ref.registry)
        except TimeoutError as err:
            raise _timeout(deadline) from err
        who = auth.identity(ref.registry, creds)
        warm = self._warm(ref, platform, who)
        if warm is not None:
            self._report(Outcome(True, 0.0, None))
            return warm
        key = (image, platform, who)
        remembered = self._errors.get(key)
        if remembered is not None:
            raise registry.RegistryError(remembered, public=remembered)
        cold.append(image)
        return await self._flight(key, ref, creds, deadline)

    def _flight(
        self,
        key: FlightKey,
        ref: ImageRef,
        creds: auth.Credentials | None,
        deadline: float,
    ) -> asyncio.Future[Resolved]:
        running = self._inflight.get(key)
        if running is not None:
            return asyncio.shield(running)
        image, platform, who = key
        task = asyncio.ensure_future(self._fetch(ref, platform, creds, who, deadline))
        self._inflight[key] = task
        started = self._clock()

        def finished(done: asyncio.Future[Resolved]) -> None:
            self._inflight.pop(key, None)
            if done.cancelled():
                return
            error = done.exception()
            reason = None if error is None else _public(error)
            if error is not None:
                self._errors.put(key, _public(error), self._error_ttl)
                log.warning("image %s not resolved: %s", image, str(error) or type(error).__name__)
            self._report(Outcome(False, self._clock() - started, reason))

        task.add_done_callback(finished)
        return asyncio.shield(task)

    async def _fetch(
        self,
        ref: ImageRef,
        platform: PlatformChoice,
        creds: auth.Credentials | None,
        who: str,
        deadline: float,
    ) -> Resolved:
        """Registry round trips for one image, all inside ``deadline`` seconds.

        The top-level manifest is always read with the requester's own credentials: that
        read is what proves their access, and it is all a known image costs them.
        """
        end = self._clock() + deadline

        def left() -> float:
            remaining = end - self._clock()
            if remaining <= 0:
                raise _timeout(deadline)
            return remaining

        try:
            async with asyncio.timeout(deadline):
                top = await self.client.manifest(ref, ref.reference, creds, left())
                if ref.digest is None:
                    self._tags.put((ref.registry, ref.repository, ref.tag or "latest"), top.digest)
                where = (ref.registry, ref.repository, top.digest)
                self._grant(where, who)
                cached = self._configs.get((where, platform))
                if cached is not None:
                    return cached
                steps = _Steps(self.client, ref, top, creds, left)
                resolved: Resolved
                if top.media_type not in registry.INDEXES:
                    resolved = await steps.config(top)
                else:
                    resolved = await self._everywhere(steps, platform)
        except TimeoutError as err:
            raise _timeout(deadline) from err
        self._configs.put((where, platform), resolved)
        return resolved

    async def _everywhere(self, steps: _Steps, platform: PlatformChoice) -> Resolved:
        """Every entry a node might pull, fetched concurrently; any failure fails the image."""
        chosen = matching.candidates(steps.top, steps.ref.name, platform)
        digests = list(dict.fromkeys(e.digest for e in chosen.entries))
        fetched = await _all(self._entry(steps, digest) for digest in digests)
        configs = dict(zip(digests, fetched, strict=True))
        judged = [(e.platform, configs[e.digest]) for e in chosen.entries]
        return combine(judged, chosen.unjudged)

    async def _entry(self, steps: _Steps, digest: str) -> ImageConfig:
        """One index entry's config, cached by its manifest digest.

        Keyed by digest, not platform, so pinned and unpinned reviews that reach the same
        entry share it, however ambiguously the index declares its platforms.
        """
        key = ((steps.ref.registry, steps.ref.repository, steps.top.digest), digest)
        config = self._entries.get(key)
        if config is None:
            config = await steps.entry(digest)
            self._entries.put(key, config)
        return config

    def prime(self, image: str, platform: PlatformChoice, config: Resolved) -> None:
        """Seed the cache with a known answer (warm-up from a known set, tests)."""
        ref = references.reference(image)
        first = config.variants[0].config if isinstance(config, PerPlatform) else config
        digest = ref.digest or first.digest
        if digest is None:
            raise registry.BadImage(f"{image}: a primed config needs a digest")
        if ref.digest is None:
            self._tags.put((ref.registry, ref.repository, ref.tag or "latest"), digest)
        where = (ref.registry, ref.repository, digest)
        self._grant(where, ANYONE)
        self._configs.put((where, platform), config)

    def forget(self) -> None:
        """Drop every cached answer (tests, benchmarks of the cold path)."""
        self._tags.clear()
        self._access.clear()
        self._configs.clear()
        self._entries.clear()
        self._errors.clear()


@dataclass(frozen=True, slots=True)
class _Steps:
    """The registry reads below one image's top-level manifest, under its deadline."""

    client: registry.RegistryClient
    ref: ImageRef
    top: registry.Fetched
    creds: auth.Credentials | None
    left: Callable[[], float]

    async def entry(self, digest: str) -> ImageConfig:
        """The config of one index entry (digests stay the index's, as exemptions name it)."""
        manifest = await self.client.manifest(self.ref, digest, self.creds, self.left())
        if manifest.media_type in registry.INDEXES:
            raise registry.BadImage(f"{self.ref.name}: nested index not supported")
        return await self.config(manifest)

    async def config(self, manifest: registry.Fetched) -> ImageConfig:
        """The config blob ``manifest`` names, read into an :class:`ImageConfig`."""
        document = await self.client.config(self.ref, manifest, self.creds, self.left())
        return registry.image_config(document, self.top.digest)


def _timeout(deadline: float) -> registry.RegistryUnavailable:
    text = f"registry did not answer within {deadline:g}s"
    return registry.RegistryUnavailable(text, public=text)


def _public(error: BaseException) -> str:
    """What a review's caller may be told about a failed lookup (details are logged)."""
    if isinstance(error, registry.RegistryError):
        return error.public
    return registry.RegistryError.generic


async def _all(steps: Iterable[Awaitable[ImageConfig]]) -> list[ImageConfig]:
    """Run concurrently; on the first failure the rest are cancelled and it is raised."""
    tasks = [asyncio.ensure_future(step) for step in steps]
    try:
        return await asyncio.gather(*tasks)
    finally:
        for task in tasks:
            task.cancel()


class _Once:
    """Loads a keychain at most once per review, and only if the registry is asked."""

    def __init__(self, loader: KeychainLoader) -> None:
        self._loader = loader
        self._task: asyncio.Future[Keychain] | None = None

    async def get(self) -> Keychain:
        if self._task is None:
            self._task = asyncio.ensure_future(self._loader())
        return await asyncio.shield(self._task)
