"""Reads image provenance from registries, bounded in time and calls, cached across reads.

:meth:`ProvenanceReader.read` never raises for what a registry does (times out, refuses,
lies): it returns what it could read and says what it could not. Cost is bounded and cached:
the digest part (config, history, labels; :mod:`.history`) is immutable and kept per
(registry, repository, digest, platform) within ``cache_size``; the tag map (:mod:`.tags`) is
kept per repository for ``tags_ttl_seconds``. Concurrent reads of one digest or repository
share one flight, and ``registry_calls`` is this read's own count
(:func:`minerguard.oci.registry.tally`), exact even on a client shared by concurrent reads.
"""

from __future__ import annotations

import asyncio
import functools
import re
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import re2

from minerguard import images
from minerguard.api.investigation import (
    MAX_LIST,
    Basis,
    Confidence,
    ImageProvenance,
)
from minerguard.cache import BoundedCache, Clock
from minerguard.oci import auth, registry
from minerguard.oci.provenance import platforms
from minerguard.oci.provenance.history import DigestPart, history_steps, parse_digest, weaker
from minerguard.oci.provenance.tags import TAG, TagMap, read_tags
from minerguard.oci.provenance.trust import trusted_by

REPOSITORY = re2.compile(
    r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*"
)
"""The distribution spec's repository grammar (RE2: linear whatever the name)."""
MAX_REPOSITORY = 255
HOST = re2.compile(
    r"(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?)*"
    r"|\[[0-9a-f:.]{2,45}\])(?::[0-9]{1,5})?"
)
"""A registry's DNS name or bracketed IPv6 address, with an optional port."""
DIGEST = re.compile(r"sha256:[0-9a-f]{64}")

T = TypeVar("T")
K = TypeVar("K")


@dataclass(frozen=True, slots=True)
class ProvenanceRead:
    """What the registry said about one image, what it could not say, and what it cost."""

    provenance: ImageProvenance
    unknowns: tuple[str, ...]
    """One sentence per thing that could not be read or was cut."""
    registry_calls: int
    """HTTP requests this read cost (0 when fully cached)."""
    cached: bool
    """The digest part (config, history, labels) came from the cache."""


@dataclass(frozen=True, slots=True)
class _Ask:
    """One read's question: which image, with which credentials, for which node, until when."""

    ref: images.ImageRef
    creds: auth.Credentials | None
    platform: registry.Platform | None
    """The node's platform; None: not known, the default is read as a guess."""
    deadline: float
    """On the event loop's clock."""


class ProvenanceReader:
    """Reads image provenance from registries, bounded in time and calls, cached across reads.

    ``timeout`` bounds one whole :meth:`read` (the digest part and the tag map run side by
    side); ``max_tags`` bounds the tags listed and compared per repository, ``tag_concurrency``
    the manifests fetched at once.
    """

    def __init__(
        self,
        client: registry.RegistryClient,
        *,
        max_tags: int = 100,
        tag_concurrency: int = 8,
        cache_size: int = 256,
        tags_ttl_seconds: float = 60.0,
        timeout: float = 3.0,
        clock: Clock = time.monotonic,
    ) -> None:
        self._client = client
        self._max_tags = max(1, max_tags)
        self._tag_concurrency = max(1, tag_concurrency)
        self._timeout = timeout
        # (registry, repository, digest, platform): an index's part depends on the platform.
        self._digests: BoundedCache[tuple[str, str, str, str], DigestPart] = BoundedCache(
            cache_size
        )
        self._tags: BoundedCache[tuple[str, str], TagMap] = BoundedCache(
            cache_size, ttl=tags_ttl_seconds, clock=clock
        )
        self._digest_flights: dict[tuple[str, str, str, str], asyncio.Task[DigestPart]] = {}
        self._tag_flights: dict[tuple[str, str], asyncio.Task[TagMap]] = {}

    async def read(
        self,
        image: str,
        digest: str | None,
        *,
        trusted: Sequence[str] = (),
        executable: str | None = None,
        creds: auth.Credentials | None = None,
        platform: str | None = None,
    ) -> ProvenanceRead:
        """What the registry says about ``image`` at ``digest`` (the pod's imageID digest).

        ``digest`` None: the tag's digest now is read instead (Likely: the tag may have moved
        since the pod started). ``platform`` (``linux/arm64``): the index entry to read when the
        digest is an index; without it linux/amd64, else the first linux entry. Never raises
        :class:`~minerguard.oci.registry.RegistryError`.
        """
        ref = images.parse(image)
        entry = trusted_by(image, trusted) if trusted else None
        unknowns: list[str] = []
        if not trusted:
            unknowns.append("no policy lists trustedRegistries: whether the image is ours")
        chosen = platforms.wanted(platform)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._timeout
        digest = digest or ref.digest
        if digest is not None and not DIGEST.fullmatch(digest):
            unknowns.append(f"the digest {digest[:80]!r} is not a sha256 digest: not asked")
            digest = None
        part: DigestPart | None = None
        tags: TagMap | None = None
        cached, tags_error = False, None
        with registry.tally() as calls:
            if _askable(ref, digest, unknowns):
                digest_task = asyncio.ensure_future(
                    self._digest_part(_Ask(ref, creds, chosen, deadline), digest, unknowns)
                )
                tags_task = asyncio.ensure_future(self._tag_part(ref, creds, deadline))
                try:
                    part, cached = await digest_task
                    tags, tags_error = await tags_task
                finally:
                    # A caller that gives up (or a part that fails) leaves none of this read's
                    # own tasks behind: only the shared flights, for the other readers.
                    for task in (digest_task, tags_task):
                        task.add_done_callback(_retrieve)
                        task.cancel()
        basis: list[Basis] = []
        confidence = Confidence.UNKNOWN
        provenance: dict[str, Any] = {
            "image": image[:512],
            "registry": ref.registry,
            "repository": ref.repository,
            "digest": digest,
            "trusted": (entry is not None) if trusted else None,
            "trusted_by": entry,
        }
        if part is not None:
            basis.append(Basis.REGISTRY)
            confidence = part.confidence
            if digest is None:
                confidence = weaker(confidence, Confidence.LIKELY)
                unknowns.append(
                    f"the pod's image digest is not known: read the digest tag "
                    f"{ref.tag or 'latest'!r} names now; the tag may have moved since the pod "
                    "started"
                )
            unknowns.extend(part.notes)
            provenance.update(
                digest=part.digest,
                created=part.created,
                labels=dict(part.labels),
                history=history_steps(part, executable, unknowns),
            )
        if tags is not None:
            if Basis.REGISTRY not in basis:
                basis.append(Basis.REGISTRY)
            unknowns.extend(tags.notes)
            provenance.update(tags_checked=len(tags.delivers), tags_complete=tags.complete)
            targets = part.manifests if part is not None else frozenset({digest} if digest else ())
            if targets:
                pointing = sorted(t for t, ds in tags.delivers.items() if ds & targets)
                provenance["tags"] = pointing[:MAX_LIST]
                if len(pointing) > MAX_LIST:
                    unknowns.append(
                        f"{len(pointing)} tags point at the digest: {MAX_LIST} are listed"
                    )
        elif tags_error:
            unknowns.append(tags_error)
        if trusted:
            basis.append(Basis.POLICY)
        provenance.update(basis=basis, confidence=confidence)
        return ProvenanceRead(
            provenance=ImageProvenance.model_validate(provenance),
            unknowns=tuple(dict.fromkeys(unknowns)),
            registry_calls=calls[0],
            cached=cached,
        )

    # -- flights ----------------------------------------------------------------------------

    async def _shared(
        self,
        flights: dict[K, asyncio.Task[T]],
        key: K,
        make: Callable[[], Awaitable[T]],
        deadline: float,
    ) -> T:
        """One flight per key: the first reader starts it (and pays its calls), others wait.

        A waiter gives up at its own deadline without cancelling the flight, which is bounded
        by the deadline of the read that started it.
        """
        task = flights.get(key)
        if task is None:
            task = asyncio.ensure_future(make())
            flights[key] = task
            task.add_done_callback(functools.partial(_landed, flights, key))
        remaining = deadline - asyncio.get_running_loop().time()
        return await asyncio.wait_for(asyncio.shield(task), max(remaining, 0.0))

    # -- the digest part --------------------------------------------------------------------

    async def _digest_part(
        self, ask: _Ask, digest: str | None, unknowns: list[str]
    ) -> tuple[DigestPart | None, bool]:
        """The cached or freshly read digest part, and whether it came from the cache."""
        fetched: registry.Fetched | None = None
        try:
            if digest is None:
                # The tag's manifest is needed to learn its digest; it is read once.
                ref, remaining = ask.ref, max(ask.deadline - asyncio.get_running_loop().time(), 0.0)
                async with asyncio.timeout(remaining):
                    fetched = await self._client.manifest(
                        ref, ref.tag or "latest", ask.creds, remaining
                    )
                digest = fetched.digest
            key = (ask.ref.registry, ask.ref.repository, digest, str(ask.platform))
            hit = self._digests.get(key)
            if hit is not None:
                return hit, True
            first = fetched

            async def make() -> DigestPart:
                part = await self._read_digest(ask, digest, first)
                self._digests.put(key, part)
                return part

            return await self._shared(self._digest_flights, key, make, ask.deadline), False
        except TimeoutError:
            unknowns.append("registry timed out: config, history and labels not read")
        except registry.RegistryError as err:
            unknowns.append(f"{err.public}: config, history and labels not read")
        return None, False

    async def _read_digest(
        self, ask: _Ask, digest: str, fetched: registry.Fetched | None
    ) -> DigestPart:
        loop = asyncio.get_running_loop()
        ref, creds, deadline = ask.ref, ask.creds, ask.deadline
        notes: list[str] = []
        confidence = Confidence.CERTAIN
        async with asyncio.timeout_at(deadline):
            top = fetched or await self._client.manifest(ref, digest, creds, deadline - loop.time())
            manifest = top
            if top.media_type in registry.INDEXES:
                entry, guessed = platforms.choose(top.document, ask.platform)
                if entry is None:
                    raise registry.BadImage(f"{ref.name}@{digest}: index has no linux entry")
                if guessed:
                    notes.append(
                        f"the digest is an index: history read from its {entry.platform} entry "
                        f"{entry.digest}; the node may have run another platform"
                    )
                    confidence = Confidence.LIKELY
                manifest = await self._client.manifest(
                    ref, entry.digest, creds, deadline - loop.time()
                )
                if manifest.media_type in registry.INDEXES:
                    raise registry.BadImage(f"{ref.name}@{digest}: an index inside an index")
            config = await self._client.config(ref, manifest, creds, deadline - loop.time())
        # Judging is bounded but CPU: off the event loop, which the operator shares.
        return await asyncio.to_thread(parse_digest, top, manifest, config, confidence, notes)

    # -- the tag map ------------------------------------------------------------------------

    async def _tag_part(
        self, ref: images.ImageRef, creds: auth.Credentials | None, deadline: float
    ) -> tuple[TagMap | None, str | None]:
        """The repository's tag map (cached for the TTL), or None and why not."""
        key = (ref.registry, ref.repository)
        hit = self._tags.get(key)
        if hit is not None:
            return hit, None

        async def make() -> TagMap:
            tags = await read_tags(
                self._client,
                ref,
                creds,
                deadline,
                max_tags=self._max_tags,
                concurrency=self._tag_concurrency,
            )
            if not tags.failed:
                self._tags.put(key, tags)
            return tags

        try:
            return await self._shared(self._tag_flights, key, make, deadline), None
        except TimeoutError:
            return None, "registry timed out: tags not listed"
        except registry.RegistryError as err:
            return None, f"{err.public}: tags not listed"


def _askable(ref: images.ImageRef, digest: str | None, unknowns: list[str]) -> bool:
    """Whether the reference can go into a registry URL (it comes from a pod: a claim)."""
    if len(ref.registry) > MAX_REPOSITORY or not HOST.fullmatch(ref.registry):
        unknowns.append(f"{ref.registry[:80]!r} is not a registry host: registry not asked")
        return False
    if len(ref.repository) > MAX_REPOSITORY or not REPOSITORY.fullmatch(ref.repository):
        unknowns.append(f"{ref.repository[:80]!r} is not a repository name: registry not asked")
        return False
    if digest is None and not TAG.fullmatch(ref.tag or "latest"):
        unknowns.append(f"{(ref.tag or '')[:80]!r} is not a tag: registry not asked")
        return False
    return True


def _landed(flights: dict[K, asyncio.Task[T]], key: K, task: asyncio.Task[T]) -> None:
    """Forget a finished flight, and retrieve its error (a waiter may have given up)."""
    if flights.get(key) is task:
        del flights[key]
    _retrieve(task)


def _retrieve(task: asyncio.Future[Any]) -> None:
    """Read a finished task's error: asyncio logs one nobody read when the task is collected."""
    if not task.cancelled():
        task.exception()
