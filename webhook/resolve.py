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
it. Entries that all run the same thing collapse to one :class:`ImageConfig`, so the common
multi-arch image costs the decision nothing more than a single-arch one.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from minerguard.cache import BoundedCache, Clock
from minerguard.images import ImageRef
from minerguard.podspec import ImageConfig
from webhook import auth, references, registry
from webhook.registry import Platform

Keychain = Mapping[str, auth.Credentials]
KeychainLoader = Callable[[], Awaitable[Keychain]]
"""Loads a pod's registry credentials; called only when the registry must be asked."""
GRACE = 0.05


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
        # (top-level digest, choice) → answer; a pinned choice always holds an ImageConfig.
        self._configs: BoundedCache[tuple[str, PlatformChoice], Resolved] = BoundedCache(size)
        # (index digest, entry manifest digest) → that entry's config, for either choice.
        self._entries: BoundedCache[tuple[str, str], ImageConfig] = BoundedCache(size)
        self._errors: BoundedCache[tuple[str, PlatformChoice, str], str] = BoundedCache(
            size, ttl=error_ttl, clock=clock
        )
        self._inflight: dict[tuple[str, PlatformChoice, str], asyncio.Future[Resolved]] = {}
        self._observe = observe

    def cached(self, image: str, platform: PlatformChoice) -> Resolved | None:
        """The cached answer, without any I/O (the hot path of a warm webhook)."""
        try:
            ref = references.reference(image)
        except registry.BadImage:
            return None
        digest = ref.digest or self._tags.get((ref.registry, ref.repository, ref.tag or "latest"))
        return self._configs.get((digest, platform)) if digest else None

    async def resolve_all(
        self,
        images: Iterable[str],
        platform: PlatformChoice,
        *,
        deadline: float,
        keychain: KeychainLoader = no_credentials,
        identity: str = "",
    ) -> Resolution:
        """Resolve each distinct image within ``deadline`` seconds; never raises.

        ``platform`` None: the pod pins none, so an index answers for all its Linux entries.
        """
        result = Resolution()
        pending: dict[str, asyncio.Future[Resolved]] = {}
        shared = _Once(keychain)
        for image in dict.fromkeys(images):
            hit = self.cached(image, platform)
            if hit is not None:
                result.add(image, hit)
                self._report(Outcome(True, 0.0, None))
                continue
            remembered = self._errors.get((image, platform, identity))
            if remembered is not None:
                result.errors[image] = remembered
                continue
            pending[image] = self._flight(image, platform, identity, shared, deadline)
        if not pending:
            return result
        result.cold = len(pending)
        # A little past the fetches' own deadline, so they end (and are remembered) first.
        _, late = await asyncio.wait(pending.values(), timeout=deadline + GRACE)
        for image, future in pending.items():
            if future in late:
                future.cancel()  # the shared fetch goes on for other reviews and the cache
                result.errors[image] = f"registry did not answer within {deadline:g}s"
                continue
            error = future.exception()
            if error is None:
                result.add(image, future.result())
            else:
                result.errors[image] = str(error) or type(error).__name__
        return result

    def _report(self, outcome: Outcome) -> None:
        if self._observe is not None:
            self._observe(outcome)

    def _flight(
        self,
        image: str,
        platform: PlatformChoice,
        identity: str,
        keychain: _Once,
        deadline: float,
    ) -> asyncio.Future[Resolved]:
        key = (image, platform, identity)
        running = self._inflight.get(key)
        if running is not None:
            return asyncio.shield(running)
        task = asyncio.ensure_future(self._fetch(image, platform, keychain, deadline))
        self._inflight[key] = task
        started = self._clock()

        def finished(done: asyncio.Future[Resolved]) -> None:
            self._inflight.pop(key, None)
            if done.cancelled():
                return
            error = done.exception()
            reason = None if error is None else str(error) or type(error).__name__
            if reason is not None:
                self._errors.put(key, reason, self._error_ttl)
            self._report(Outcome(False, self._clock() - started, reason))

        task.add_done_callback(finished)
        return asyncio.shield(task)

    async def _fetch(
        self, image: str, platform: PlatformChoice, keychain: _Once, deadline: float
    ) -> Resolved:
        """Registry round trips for one image, all inside ``deadline`` seconds."""
        ref = references.reference(image)
        end = self._clock() + deadline

        def left() -> float:
            remaining = end - self._clock()
            if remaining <= 0:
                raise registry.RegistryUnavailable(f"registry did not answer within {deadline:g}s")
            return remaining

        try:
            async with asyncio.timeout(deadline):
                creds = (await keychain.get()).get(ref.registry)
                top = await self.client.manifest(ref, ref.reference, creds, left())
                if ref.digest is None:
                    self._tags.put((ref.registry, ref.repository, ref.tag or "latest"), top.digest)
                cached = self._configs.get((top.digest, platform))
                if cached is not None:
                    return cached
                steps = _Steps(self.client, ref, top, creds, left)
                resolved: Resolved
                if top.media_type not in registry.INDEXES:
                    resolved = await steps.config(top)
                elif platform is not None:
                    resolved = await self._entry(steps, registry.pick(top, platform, ref.name))
                else:
                    resolved = await self._everywhere(steps)
        except TimeoutError as err:
            raise registry.RegistryUnavailable(
                f"registry did not answer within {deadline:g}s"
            ) from err
        self._configs.put((top.digest, platform), resolved)
        return resolved

    async def _everywhere(self, steps: _Steps) -> Resolved:
        """Every runnable entry of an index, fetched concurrently; any failure fails the image."""
        chosen = registry.runnable(steps.top, steps.ref.name)
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
        key = (steps.top.digest, digest)
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
        self._configs.put((digest, platform), config)

    def forget(self) -> None:
        """Drop every cached answer (tests, benchmarks of the cold path)."""
        self._tags.clear()
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
