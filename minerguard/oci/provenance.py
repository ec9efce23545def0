"""Where an image came from, as its registry tells it: the registry side of an investigation.

For a detected container the operator asks: is the image ours (:func:`trusted_by`, against the
policies' ``trustedRegistries``), what did each build step do (the config's ``history``, with
the step that added the miner marked), what do its OCI labels say (source, revision), and which
tags of the repository still deliver that digest (what would bring it back).

A registry's answer is evidence to weigh, not truth: the client checks every body against its
digest, but the ``history`` inside a config is free text its builder (or an attacker) wrote.
It is kept only where well formed and consistent with the manifest's layers; anything else
lowers :class:`~minerguard.api.investigation.Confidence` and is said in ``unknowns``.
:meth:`ProvenanceReader.read` never raises for what a registry does (times out, refuses, lies):
it returns what it could read and says what it could not.

Cost is bounded and cached. The digest part (config, history, labels) is immutable and kept
per (registry, repository, digest) within ``cache_size``; the tag map (each listed tag → the
digests it delivers) is kept per repository for ``tags_ttl_seconds``. Concurrent reads of one
digest or repository share one flight, and ``registry_calls`` is this read's own count
(:func:`minerguard.oci.registry.tally`), exact even on a client shared by concurrent reads.
"""

from __future__ import annotations

import asyncio
import functools
import re
import time
import urllib.parse
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import orjson
import re2

from minerguard import images
from minerguard.api.investigation import (
    MAX_LIST,
    Basis,
    Confidence,
    HistoryStep,
    ImageProvenance,
)
from minerguard.cache import BoundedCache, Clock
from minerguard.oci import auth, registry
from minerguard.signatures import bundle, engine, normalise

MAX_CREATED_BY = 4096
"""A step's ``created_by`` is judged up to this many characters."""
MAX_SHOWN_CREATED_BY = 1024
"""...and shown up to this many (the investigation lives in an object's status)."""
MAX_HISTORY = 1024
"""A config with more history entries than this is not describing a real image (the layer
limit of overlay filesystems is far below): it is not trusted, and only this many are read."""
MAX_JUDGED_CHARS = 64 << 10
"""The signature engine judges the newest steps until this many characters are spent: a real
image's history is a few KB, a crafted one must not hold the operator for seconds."""
MAX_OCI_LABELS = 32
MAX_OTHER_LABELS = 20
MAX_LABEL_KEY = 128
MAX_LABEL_VALUE = 256
MAX_SHORT = 64
"""``created`` timestamps."""
MAX_COMMENT = 256
MAX_INDEX_CHILDREN = 64
"""Entries of an index compared against the digest, per tag."""
MAX_TAGS_BYTES = 1 << 20
"""One page of ``tags/list``: 100 tags of 128 characters are 14 KB."""
OCI_LABEL_PREFIX = "org.opencontainers.image."
TAG = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._-]{0,127}")
"""The distribution spec's tag grammar: a tag goes into a URL path, so nothing else is asked."""
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
# RE2 for what a registry writes: linear in the text, whatever it holds ("<<<<..." in a Link
# header costs Python's backtracking engine quadratic time).
_SHELL = re2.compile(r"/bin/(?:ba|da|a)?sh\s+-c\s+")
_EXEC_FORM = re2.compile(r"(?s)(?:RUN|CMD|ENTRYPOINT)\s+\[(.*)\]")
_QUOTED = re2.compile(r'"((?:[^"\\]|\\.)*)"')
_NEXT_LINK = re2.compile(r"<([^>]*)>\s*;\s*rel=\"?next\"?")
GENERIC_EXECUTABLES = frozenset(
    {"sh", "bash", "dash", "ash", "busybox", "env", "python", "python3", "perl", "node", "ruby"}
)
"""Executables every build step names: naming one says nothing, so the engine judges instead."""
DEFAULT_PLATFORM = registry.Platform()

T = TypeVar("T")
K = TypeVar("K")


def trusted_by(image: str, prefixes: Sequence[str]) -> str | None:
    """The trustedRegistries entry that makes this image ours, or None (foreign).

    Entries are a registry host (``registry.example.com``, ``localhost:5000``) or a repository
    prefix (``ghcr.io/acme/``, ``ghcr.io/acme/app``). Both sides are read the way the runtime
    reads a reference (:func:`minerguard.images.parse`: ``docker.io`` and ``library/`` filled
    in), and a prefix matches only whole path segments: ``ghcr.io/acme`` covers
    ``ghcr.io/acme/app`` but never ``ghcr.io/acmecorp/app``. The first matching entry wins.
    Pure; never raises.
    """
    ref = images.parse(image)
    for entry in prefixes:
        matched = _entry(entry)
        if matched is None:
            continue
        host, prefix = matched
        if host != ref.registry:
            continue
        if prefix is None or ref.repository == prefix or ref.repository.startswith(prefix + "/"):
            return entry
    return None


def _entry(text: str) -> tuple[str, str | None] | None:
    """(registry, repository prefix or None for the whole registry) of one entry; None: junk."""
    entry = text.strip().lower()
    for scheme in ("https://", "http://"):
        entry = entry.removeprefix(scheme)
    namespace = entry.endswith("/")
    entry = entry.strip("/")
    if not entry or "@" in entry or any(c.isspace() for c in entry):
        return None
    if "/" not in entry and ("." in entry or ":" in entry or entry == "localhost"):
        return images.parse(f"{entry}/_").registry, None
    if namespace:
        # "acme/" is a namespace: keep parse from reading it as Docker Hub's library/acme.
        ref = images.parse(f"{entry}/_")
        return ref.registry, ref.repository.removesuffix("/_")
    ref = images.parse(entry)
    return ref.registry, ref.repository


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
    platform: registry.Platform
    deadline: float
    """On the event loop's clock."""


@dataclass(frozen=True, slots=True)
class _Step:
    """A well-formed history entry, with the engine's verdict on its command."""

    created: str | None
    created_by: str | None
    empty_layer: bool
    comment: str | None
    command: str
    """``created_by`` without its shell preamble, cut to :data:`MAX_CREATED_BY`."""
    miner: bool


@dataclass(frozen=True, slots=True)
class _Digest:
    """The immutable part of one digest: read once, cached."""

    digest: str
    """The digest asked for (an index's, when the pod ran an index)."""
    manifests: frozenset[str]
    """That digest and the manifest whose config was read: what a tag must deliver."""
    created: str | None
    labels: Mapping[str, str]
    steps: tuple[_Step, ...]
    confidence: Confidence
    notes: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class _Tags:
    """A repository's tags as listed now, each with the digests it delivers."""

    delivers: Mapping[str, frozenset[str]]
    """Tag → its manifest digest and, for an index, its entries' digests."""
    listed: int
    complete: bool
    failed: int
    """Listed tags whose manifest could not be read: such a map is not cached."""
    notes: tuple[str, ...]


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
        self._digests: BoundedCache[tuple[str, str, str, str], _Digest] = BoundedCache(cache_size)
        self._tags: BoundedCache[tuple[str, str], _Tags] = BoundedCache(
            cache_size, ttl=tags_ttl_seconds, clock=clock
        )
        self._digest_flights: dict[tuple[str, str, str, str], asyncio.Task[_Digest]] = {}
        self._tag_flights: dict[tuple[str, str], asyncio.Task[_Tags]] = {}

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
        chosen = _platform(platform)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._timeout
        digest = digest or ref.digest
        if digest is not None and not DIGEST.fullmatch(digest):
            unknowns.append(f"the digest {digest[:80]!r} is not a sha256 digest: not asked")
            digest = None
        part: _Digest | None = None
        tags: _Tags | None = None
        cached, tags_error = False, None
        with registry.tally() as calls:
            if _askable(ref, digest, unknowns):
                digest_task = asyncio.ensure_future(
                    self._digest_part(_Ask(ref, creds, chosen, deadline), digest, unknowns)
                )
                tags_task = asyncio.ensure_future(self._tag_part(ref, creds, deadline))
                part, cached = await digest_task
                tags, tags_error = await tags_task
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
                confidence = _weaker(confidence, Confidence.LIKELY)
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
                history=_history(part, executable, unknowns),
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
    ) -> tuple[_Digest | None, bool]:
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

            async def make() -> _Digest:
                part = await self._read_digest(ask, digest, first)
                self._digests.put(key, part)
                return part

            return await self._shared(self._digest_flights, key, make, ask.deadline), False
        except TimeoutError:
            unknowns.append("registry timed out: config, history and labels not read")
        except registry.RegistryError as err:
            unknowns.append(f"{err.public}: config, history and labels not read")
        except ValueError:  # a host name IDNA cannot encode, met on connecting
            unknowns.append("the registry's name cannot be looked up: config, history not read")
        return None, False

    async def _read_digest(
        self, ask: _Ask, digest: str, fetched: registry.Fetched | None
    ) -> _Digest:
        loop = asyncio.get_running_loop()
        ref, creds, deadline = ask.ref, ask.creds, ask.deadline
        notes: list[str] = []
        confidence = Confidence.CERTAIN
        async with asyncio.timeout_at(deadline):
            top = fetched or await self._client.manifest(ref, digest, creds, deadline - loop.time())
            manifest = top
            if top.media_type in registry.INDEXES:
                entry, guessed = _choose(top.document, ask.platform)
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
        return await asyncio.to_thread(_parse, top, manifest, config, confidence, notes)

    # -- the tag map ------------------------------------------------------------------------

    async def _tag_part(
        self, ref: images.ImageRef, creds: auth.Credentials | None, deadline: float
    ) -> tuple[_Tags | None, str | None]:
        """The repository's tag map (cached for the TTL), or None and why not."""
        key = (ref.registry, ref.repository)
        hit = self._tags.get(key)
        if hit is not None:
            return hit, None

        async def make() -> _Tags:
            tags = await self._read_tags(ref, creds, deadline)
            if not tags.failed:
                self._tags.put(key, tags)
            return tags

        try:
            return await self._shared(self._tag_flights, key, make, deadline), None
        except TimeoutError:
            return None, "registry timed out: tags not listed"
        except registry.RegistryError as err:
            return None, f"{err.public}: tags not listed"
        except ValueError:
            return None, "the registry's name cannot be looked up: tags not listed"

    async def _read_tags(
        self, ref: images.ImageRef, creds: auth.Credentials | None, deadline: float
    ) -> _Tags:
        loop = asyncio.get_running_loop()
        names, complete, notes = await self._list_tags(ref, creds, deadline)
        delivers: dict[str, frozenset[str]] = {}
        failed: list[str] = []
        gate = asyncio.Semaphore(self._tag_concurrency)

        async def one(tag: str) -> None:
            async with gate:
                remaining = deadline - loop.time()
                if remaining <= 0:
                    raise TimeoutError
                found = await self._client.manifest(ref, tag, creds, remaining)
            delivers[tag] = frozenset({found.digest, *_children(found)})

        tasks = [asyncio.ensure_future(one(tag)) for tag in names]
        if tasks:
            _, pending = await asyncio.wait(tasks, timeout=max(deadline - loop.time(), 0.0))
            for task in pending:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            for tag, task in zip(names, tasks, strict=True):
                if task.cancelled() or task.exception() is not None:
                    failed.append(tag)
        if failed:
            notes.append(
                f"{len(failed)} of {len(names)} tags could not be read in time or at all "
                f"(e.g. {failed[0]!r}): they may point at the digest too"
            )
        return _Tags(delivers, len(names), complete, len(failed), tuple(notes))

    async def _list_tags(
        self, ref: images.ImageRef, creds: auth.Credentials | None, deadline: float
    ) -> tuple[list[str], bool, list[str]]:
        """Up to ``max_tags`` tags, following the registry's ``Link`` only within the bound.

        The next page is asked for by its ``last`` parameter on our own URL: a Link naming
        another host or path is never followed. A page that adds no new tag ends the walk (a
        registry that loops), as does the bound; either way the listing is called incomplete.
        """
        loop = asyncio.get_running_loop()
        names: list[str] = []
        seen: set[str] = set()
        bad = 0
        last: str | None = None
        while True:
            query = {"n": str(self._max_tags - len(names)), **({"last": last} if last else {})}
            path = "tags/list?" + urllib.parse.urlencode(query)
            async with asyncio.timeout_at(deadline):
                answer, body = await self._client.get(
                    ref,
                    path,
                    accept=None,
                    limit=MAX_TAGS_BYTES,
                    creds=creds,
                    timeout=max(deadline - loop.time(), 0.001),
                )
            page = _tag_page(body)
            if page is None:
                raise registry.BadImage(f"{ref.name}: tag listing is not a JSON list of tags")
            fresh, overflow = 0, False
            for tag in page:
                if not isinstance(tag, str) or not TAG.fullmatch(tag):
                    bad += 1
                elif tag not in seen:
                    if len(names) >= self._max_tags:
                        overflow = True  # a registry that ignores ``n``
                        break
                    seen.add(tag)
                    names.append(tag)
                    fresh += 1
            last = _next_last(answer.headers.get("link", ""))
            if overflow or (last is not None and (fresh == 0 or len(names) >= self._max_tags)):
                complete = False
                break
            if last is None:
                complete = True
                break
        notes = []
        if bad:
            notes.append(f"the tag listing held {bad} entries that are not tags (ignored)")
        if not complete:
            notes.append(f"tag listing cut at {len(names)} of >{len(names)} tags")
        return names, complete, notes


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


def _parse(
    top: registry.Fetched,
    manifest: registry.Fetched,
    config: Mapping[str, Any],
    confidence: Confidence,
    notes: list[str],
) -> _Digest:
    """The digest part of a manifest and its config: history checked and judged, labels cut."""
    layers = _layers(manifest.document, notes)
    steps, trust = _steps(config.get("history"), layers, notes)
    return _Digest(
        digest=top.digest,
        manifests=frozenset({top.digest, manifest.digest}),
        created=_text(config.get("created"), MAX_SHORT),
        labels=_labels(config.get("config"), notes),
        steps=steps,
        confidence=_weaker(confidence, trust),
        notes=tuple(notes),
    )


def _landed(flights: dict[K, asyncio.Task[T]], key: K, task: asyncio.Task[T]) -> None:
    """Forget a finished flight, and retrieve its error (a waiter may have given up)."""
    if flights.get(key) is task:
        del flights[key]
    if not task.cancelled():
        task.exception()


def _tag_page(body: bytes) -> list[object] | None:
    try:
        document = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None
    if not isinstance(document, dict):
        return None
    tags = document.get("tags")
    if tags is None:
        return []  # an empty repository answers null
    return tags if isinstance(tags, list) else None


def _next_last(link: str) -> str | None:
    """The ``last`` parameter of a ``Link: <...>; rel="next"`` header, else None."""
    found = _NEXT_LINK.search(link[:4096])
    if found is None:
        return None
    query = urllib.parse.urlsplit(found.group(1)).query
    values = urllib.parse.parse_qs(query).get("last")
    return values[0] if values and TAG.fullmatch(values[0]) else None


def _children(fetched: registry.Fetched) -> tuple[str, ...]:
    """The manifest digests an index names (bounded); () for a manifest."""
    if fetched.media_type not in registry.INDEXES:
        return ()
    entries = fetched.document.get("manifests")
    if not isinstance(entries, list):
        return ()
    found = []
    for item in entries[:MAX_INDEX_CHILDREN]:
        digest = item.get("digest") if isinstance(item, dict) else None
        if isinstance(digest, str) and digest.startswith("sha256:"):
            found.append(digest)
    return tuple(found)


def _platform(text: str | None) -> registry.Platform:
    if not text or text.count("/") not in (1, 2):
        return DEFAULT_PLATFORM
    return registry.Platform.parse(text.lower())


def _choose(
    index: Mapping[str, Any], wanted: registry.Platform
) -> tuple[registry.Entry | None, bool]:
    """The entry for ``wanted``, else the first linux entry; and whether that was a guess.

    An entry asked for by the caller (the node's platform) is read as such; the default
    linux/amd64 is what most clusters run, so it is named as a guess in the notes.
    """
    entries = index.get("manifests")
    first_linux: registry.Entry | None = None
    for item in entries[: registry.MAX_PLATFORMS * 4] if isinstance(entries, list) else ():
        if not isinstance(item, dict):
            continue
        digest, declared = item.get("digest"), item.get("platform")
        if not isinstance(digest, str) or not digest.startswith("sha256:"):
            continue
        declared = declared if isinstance(declared, dict) else {}
        found = registry.Platform(
            str(declared.get("os", "")),
            str(declared.get("architecture", "")),
            str(declared["variant"]) if declared.get("variant") else None,
        )
        entry = registry.Entry(found, digest)
        if (found.os, found.architecture) == (wanted.os, wanted.architecture) and (
            wanted.variant is None or found.variant == wanted.variant
        ):
            return entry, wanted == DEFAULT_PLATFORM
        if first_linux is None and found.os == registry.RUNNABLE_OS:
            first_linux = entry
    return first_linux, True


def _layers(manifest: Mapping[str, Any], notes: list[str]) -> int | None:
    """How many layers the manifest names; None (and a note) when it cannot be told."""
    layers = manifest.get("layers")
    if not isinstance(layers, list):
        notes.append("the manifest lists no layers: history not checked against them")
        return None
    bad = sum(
        1
        for layer in layers
        if not isinstance(layer, dict)
        or not isinstance(layer.get("size"), int)
        or isinstance(layer.get("size"), bool)
        or not 0 <= layer["size"] < 1 << 42
    )
    if bad:
        notes.append(f"{bad} of {len(layers)} manifest layers are malformed or of absurd size")
    return len(layers)


def _steps(
    history: object, layers: int | None, notes: list[str]
) -> tuple[tuple[_Step, ...], Confidence]:
    """The well-formed history entries, their count, and how far they can be believed."""
    if history is None:
        notes.append("the image config records no history")
        return (), Confidence.UNKNOWN
    if not isinstance(history, list):
        notes.append(f"history is a JSON {_kind(history)}, not a list: not trusted")
        return (), Confidence.UNKNOWN
    trust = Confidence.CERTAIN
    if len(history) > MAX_HISTORY:
        notes.append(f"history has {len(history)} entries, absurd for an image: not trusted")
        trust = Confidence.UNKNOWN
    kept: list[_Step] = []
    junk = 0
    for raw in history[-MAX_HISTORY:]:
        step = _step(raw)
        if step is None:
            junk += 1
        else:
            kept.append(step)
    if junk:
        notes.append(f"{junk} of {len(history)} history entries are malformed (dropped)")
        trust = _weaker(trust, Confidence.LIKELY)
    if layers is not None and junk == 0:
        filled = sum(1 for s in kept if not s.empty_layer)
        if filled != layers:
            notes.append(
                f"history has {filled} entries for {layers} layers: not trusted "
                "(it does not describe this image's layers)"
            )
            trust = Confidence.UNKNOWN
    budget = MAX_JUDGED_CHARS
    for index in range(len(kept) - 1, -1, -1):
        budget -= len(kept[index].command)
        if budget < 0:
            notes.append(
                f"only the newest {len(kept) - index - 1} of {len(kept)} history steps were "
                "judged by the signatures (the rest is too long)"
            )
            break
        kept[index] = _judge(kept[index])
    return tuple(kept), trust


def _step(raw: object) -> _Step | None:
    """One history entry, or None when it is not an object of the declared field types."""
    if not isinstance(raw, dict):
        return None
    fields = {
        "created": raw.get("created"),
        "created_by": raw.get("created_by"),
        "comment": raw.get("comment"),
        "author": raw.get("author"),
    }
    if any(value is not None and not isinstance(value, str) for value in fields.values()):
        return None
    empty = raw.get("empty_layer", False)
    if not isinstance(empty, bool):
        return None
    created_by = fields["created_by"]
    command = _command_text(created_by or "")
    return _Step(
        created=_text(fields["created"], MAX_SHORT),
        created_by=_text(created_by, MAX_SHOWN_CREATED_BY),
        empty_layer=empty,
        comment=_text(fields["comment"], MAX_COMMENT),
        command=command,
        miner=False,
    )


def _command_text(created_by: str) -> str:
    """What a step ran, without ``/bin/sh -c`` and ``#(nop)`` (cut to the judging bound)."""
    text = created_by[:MAX_CREATED_BY]
    shell = _SHELL.search(text)
    if shell is not None:
        text = text[shell.end() :]
    text = text.strip()
    return text.removeprefix("#(nop)").strip()


def _argv(command: str) -> tuple[str, ...]:
    """The step as a command line: exec form (``CMD ["a" "b"]``) as its words, else a script."""
    form = _EXEC_FORM.fullmatch(command)
    if form is not None:
        words = tuple(_unquote(w) for w in _QUOTED.findall(form.group(1)))
        if words:
            return words
    return ("/bin/sh", "-c", command)


def _unquote(word: str) -> str:
    return re.sub(r"\\(.)", r"\1", word)


@functools.cache
def _engine() -> engine.Engine:
    """The built-in bundle compiled once: build steps are judged like the webhook's commands."""
    return engine.compile_entries(bundle.builtin().signatures)


def _judge(step: _Step) -> _Step:
    if not step.command:
        return step
    verdict = _engine().evaluate(engine.Subject(argv=_argv(step.command)))
    if not verdict.matched:
        return step
    return _Step(
        step.created, step.created_by, step.empty_layer, step.comment, step.command, miner=True
    )


def _names(command: str, name: str) -> bool:
    """Whether ``command`` names the executable ``name`` as a whole word of a path or file."""
    folded = normalise.fold(command)
    start = folded.find(name)
    while start >= 0:
        end = start + len(name)
        before = folded[start - 1] if start else " "
        after = folded[end] if end < len(folded) else " "
        if not (before.isalnum() or before == "_") and not (after.isalnum() or after == "_"):
            return True
        start = folded.find(name, start + 1)
    return False


def _history(part: _Digest, executable: str | None, unknowns: list[str]) -> list[HistoryStep]:
    """The steps to show (at most MAX_LIST, suspects first kept), with suspects marked.

    Suspect: the steps naming the detected executable's file name; when none does (or the
    name is a shell every step names), the steps the signature engine judges a miner.
    """
    steps = part.steps
    name = normalise.basename(executable) if executable else ""
    suspect: list[int] = []
    if len(name) >= 2 and name not in GENERIC_EXECUTABLES:
        suspect = [i for i, s in enumerate(steps) if _names(s.command, name)]
    if not suspect:
        suspect = [i for i, s in enumerate(steps) if s.miner]
    shown = set(suspect[:MAX_LIST])
    for index in range(len(steps) - 1, -1, -1):
        if len(shown) >= MAX_LIST:
            break
        shown.add(index)
    if len(steps) > len(shown):
        unknowns.append(
            f"history cut: {len(shown)} of {len(steps)} steps shown (suspect and newest)"
        )
    marked = set(suspect)
    return [
        HistoryStep(
            created=steps[i].created,
            created_by=steps[i].created_by,
            empty_layer=steps[i].empty_layer,
            comment=steps[i].comment,
            suspect=i in marked,
        )
        for i in sorted(shown)
    ]


def _labels(config: object, notes: list[str]) -> dict[str, str]:
    """The OCI labels (bounded) plus at most :data:`MAX_OTHER_LABELS` others, values cut."""
    raw = config.get("Labels") if isinstance(config, dict) else None
    if not isinstance(raw, dict):
        return {}
    oci: dict[str, str] = {}
    other: dict[str, str] = {}
    skipped = 0
    for key, value in raw.items():
        if not isinstance(value, str) or len(key) > MAX_LABEL_KEY:
            skipped += 1
            continue
        into, bound = (
            (oci, MAX_OCI_LABELS) if key.startswith(OCI_LABEL_PREFIX) else (other, MAX_OTHER_LABELS)
        )
        if len(into) >= bound:
            skipped += 1
            continue
        into[key] = value[:MAX_LABEL_VALUE]
    if skipped:
        notes.append(f"{skipped} of {len(raw)} labels left out (bound, or not text)")
    return {**oci, **other}


def _text(value: object, limit: int) -> str | None:
    if not isinstance(value, str):
        return None
    return value if len(value) <= limit else value[: limit - 1] + "…"


def _kind(value: object) -> str:
    return {dict: "object", str: "string", bool: "boolean", int: "number", float: "number"}.get(
        type(value), type(value).__name__
    )


_ORDER = (Confidence.CERTAIN, Confidence.LIKELY, Confidence.UNKNOWN)


def _weaker(a: Confidence, b: Confidence) -> Confidence:
    return a if _ORDER.index(a) >= _ORDER.index(b) else b
