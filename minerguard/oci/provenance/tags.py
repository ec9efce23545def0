"""Which tags of a repository deliver which digests now: what would bring an image back.

Up to ``max_tags`` tags are listed (``tags/list``, following the registry's ``Link`` only on
our own URL and within the bound) and each tag's manifest read, ``concurrency`` at a time; a
tag delivers its manifest's digest and, for an index, its entries' digests. A listing cut by
the bound, a registry that loops, entries that are not tags and tags that could not be read
are each said in the notes.
"""

from __future__ import annotations

import asyncio
import re
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass

import orjson
import re2

from minerguard import images
from minerguard.oci import auth, registry

MAX_INDEX_CHILDREN = 64
"""Entries of an index compared against the digest, per tag."""
MAX_TAGS_BYTES = 1 << 20
"""One page of ``tags/list``: 100 tags of 128 characters are 14 KB."""
TAG = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._-]{0,127}")
"""The distribution spec's tag grammar: a tag goes into a URL path, so nothing else is asked."""
_NEXT_LINK = re2.compile(r"<([^>]*)>\s*;\s*rel=\"?next\"?")


@dataclass(frozen=True, slots=True)
class TagMap:
    """A repository's tags as listed now, each with the digests it delivers."""

    delivers: Mapping[str, frozenset[str]]
    """Tag → its manifest digest and, for an index, its entries' digests."""
    listed: int
    complete: bool
    failed: int
    """Listed tags whose manifest could not be read: such a map is not cached."""
    notes: tuple[str, ...]


async def read_tags(
    client: registry.RegistryClient,
    ref: images.ImageRef,
    creds: auth.Credentials | None,
    deadline: float,
    *,
    max_tags: int,
    concurrency: int,
) -> TagMap:
    """Each listed tag with the digests it delivers; tags not read in time are counted failed."""
    loop = asyncio.get_running_loop()
    names, complete, notes = await _list_tags(client, ref, creds, deadline, max_tags)
    delivers: dict[str, frozenset[str]] = {}
    failed: list[str] = []
    gate = asyncio.Semaphore(concurrency)

    async def one(tag: str) -> None:
        async with gate:
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise TimeoutError
            found = await client.manifest(ref, tag, creds, remaining)
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
    return TagMap(delivers, len(names), complete, len(failed), tuple(notes))


async def _list_tags(
    client: registry.RegistryClient,
    ref: images.ImageRef,
    creds: auth.Credentials | None,
    deadline: float,
    max_tags: int,
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
        query = {"n": str(max_tags - len(names)), **({"last": last} if last else {})}
        path = "tags/list?" + urllib.parse.urlencode(query)
        async with asyncio.timeout_at(deadline):
            answer, body = await client.get(
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
                if len(names) >= max_tags:
                    overflow = True  # a registry that ignores ``n``
                    break
                seen.add(tag)
                names.append(tag)
                fresh += 1
        last = _next_last(answer.headers.get("link", ""))
        if overflow or (last is not None and (fresh == 0 or len(names) >= max_tags)):
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
