"""What the images of an object would run: cached, deduplicated, deadline-bound resolution.

Only containers without a pod ``command`` need their image's config. A warm lookup is two
dict hits (tag → digest, digest → config). A cold one reads the registry once however many
concurrent reviews ask for the same image (single flight), and all of an object's images
resolve concurrently under one deadline inside the webhook's timeout budget. Failures are
remembered for a few seconds, so a dead registry costs one deadline, not one per request;
what a failure means (allow with a warning, or deny) is the policy's call, not ours.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field

from minerguard.podspec import ImageConfig
from webhook import auth, references, registry
from webhook.cache import Clock, TTLCache
from webhook.registry import Platform

Keychain = Mapping[str, auth.Credentials]
KeychainLoader = Callable[[], Awaitable[Keychain]]
"""Loads a pod's registry credentials; called only when the registry must be asked."""
GRACE = 0.05


async def no_credentials() -> Keychain:
    """The loader for pods without pull secrets, or webhooks without a cluster."""
    return {}


@dataclass
class Resolution:
    """Configs for the images that resolved, reasons for those that did not."""

    configs: dict[str, ImageConfig] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)
    cold: int = 0


@dataclass(frozen=True, slots=True)
class Outcome:
    """How one image resolution went, for metrics."""

    cached: bool
    seconds: float
    error: str | None


class ImageResolver:
    """Image references → :class:`ImageConfig`, through the caches and the registry client."""

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
        self._tags: TTLCache[tuple[str, str, str, str], str] = TTLCache(size, tag_ttl, clock)
        self._configs: TTLCache[tuple[str, str], ImageConfig] = TTLCache(size, None, clock)
        self._errors: TTLCache[tuple[str, str, str], str] = TTLCache(size, error_ttl, clock)
        self._inflight: dict[tuple[str, str, str], asyncio.Future[ImageConfig]] = {}
        self._observe = observe

    def cached(self, image: str, platform: Platform) -> ImageConfig | None:
        """The cached config, without any I/O (the hot path of a warm webhook)."""
        try:
            ref = references.reference(image)
        except registry.BadImage:
            return None
        plat = str(platform)
        digest = ref.digest or self._tags.get(
            (ref.registry, ref.repository, ref.tag or "latest", plat)
        )
        return self._configs.get((digest, plat)) if digest else None

    async def resolve_all(
        self,
        images: Iterable[str],
        platform: Platform,
        *,
        deadline: float,
        keychain: KeychainLoader = no_credentials,
        identity: str = "",
    ) -> Resolution:
        """Resolve each distinct image within ``deadline`` seconds; never raises."""
        result = Resolution()
        pending: dict[str, asyncio.Future[ImageConfig]] = {}
        plat = str(platform)
        shared = _Once(keychain)
        for image in dict.fromkeys(images):
            hit = self.cached(image, platform)
            if hit is not None:
                result.configs[image] = hit
                self._report(Outcome(True, 0.0, None))
                continue
            remembered = self._errors.get((image, plat, identity))
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
                result.configs[image] = future.result()
            else:
                result.errors[image] = str(error) or type(error).__name__
        return result

    def _report(self, outcome: Outcome) -> None:
        if self._observe is not None:
            self._observe(outcome)

    def _flight(
        self, image: str, platform: Platform, identity: str, keychain: _Once, deadline: float
    ) -> asyncio.Future[ImageConfig]:
        key = (image, str(platform), identity)
        running = self._inflight.get(key)
        if running is not None:
            return asyncio.shield(running)
        task = asyncio.ensure_future(self._fetch(image, platform, keychain, deadline))
        self._inflight[key] = task
        started = self._clock()

        def finished(done: asyncio.Future[ImageConfig]) -> None:
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
        self, image: str, platform: Platform, keychain: _Once, deadline: float
    ) -> ImageConfig:
        """Registry round trips for one image, all inside ``deadline`` seconds."""
        ref = references.reference(image)
        plat = str(platform)
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
                    self._tags.put(
                        (ref.registry, ref.repository, ref.tag or "latest", plat), top.digest
                    )
                cached = self._configs.get((top.digest, plat))
                if cached is not None:
                    return cached
                manifest = top
                if top.media_type in registry.INDEXES:
                    chosen = registry.pick(top, platform, ref.name)
                    manifest = await self.client.manifest(ref, chosen, creds, left())
                    if manifest.media_type in registry.INDEXES:
                        raise registry.BadImage(f"{ref.name}: nested index not supported")
                document = await self.client.config(ref, manifest, creds, left())
        except TimeoutError as err:
            raise registry.RegistryUnavailable(
                f"registry did not answer within {deadline:g}s"
            ) from err
        config = registry.image_config(document, top.digest)
        self._configs.put((top.digest, plat), config)
        return config

    def prime(self, image: str, platform: Platform, config: ImageConfig) -> None:
        """Seed the cache with a known config (warm-up from a known set, tests)."""
        ref = references.reference(image)
        plat = str(platform)
        digest = ref.digest or config.digest
        if digest is None:
            raise registry.BadImage(f"{image}: a primed config needs a digest")
        if ref.digest is None:
            self._tags.put((ref.registry, ref.repository, ref.tag or "latest", plat), digest)
        self._configs.put((digest, plat), config)

    def forget(self) -> None:
        """Drop every cached answer (tests, benchmarks of the cold path)."""
        self._tags.clear()
        self._configs.clear()
        self._errors.clear()


class _Once:
    """Loads a keychain at most once per review, and only if the registry is asked."""

    def __init__(self, loader: KeychainLoader) -> None:
        self._loader = loader
        self._task: asyncio.Future[Keychain] | None = None

    async def get(self) -> Keychain:
        if self._task is None:
            self._task = asyncio.ensure_future(self._loader())
        return await asyncio.shield(self._task)
