"""Miner executables known by their bytes, whatever their name or path.

A renamed, relocated or freshly downloaded miner still carries its stratum client: URL schemes,
JSON-RPC method names, its donation host. The bundle's ``content`` entries are compiled into
one re2 set and a file is scanned in one linear pass, chunk by chunk, so memory stays at one
chunk and time at ~1 ms per MiB. Packed binaries (UPX) hide these strings; the other layers
(argv, config, connections, behaviour) still see the miner they unpack to.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import re2

from minerguard.signatures import bundle
from minerguard.signatures.bundle import KIND_SIGNALS, Entry, Kind

LIMIT = 16 << 20
"""Bytes of a file that are scanned; a miner's strings sit well inside its first 16 MiB."""
CHUNK = 1 << 20


@dataclass(frozen=True, slots=True)
class ContentVerdict:
    """The content entries found in one file and the weight they add (capped)."""

    hits: tuple[Entry, ...]

    @property
    def score(self) -> float:
        """Sum of the hits' weights, at most the content kind's cap."""
        cap = bundle.builtin().scoring.cap(KIND_SIGNALS[Kind.CONTENT])
        return round(min(sum(e.weight for e in self.hits), cap), 3)

    def describe(self) -> str:
        """One line for evidence: what was found."""
        return "executable contains " + ", ".join(repr(e.value) for e in self.hits)


class ContentScanner:
    """The ``content`` entries of a bundle as one re2 set; share freely, it is read-only."""

    def __init__(self, entries: Iterable[Entry]) -> None:
        self.entries = tuple(e for e in entries if e.kind is Kind.CONTENT)
        self._set = re2.Set.SearchSet(re2.Options())
        for entry in self.entries:
            self._set.Add(re2.escape(entry.value.encode()))
        self._set.Compile()
        self._overlap = max((len(e.value.encode()) for e in self.entries), default=1) - 1

    def scan(self, read: Callable[[int, int], bytes], limit: int = LIMIT) -> ContentVerdict:
        """Scan what ``read(offset, size)`` returns from offset 0 up to ``limit`` bytes.

        Chunks overlap by the longest entry less one byte, so a string across a chunk
        boundary is still found. Stops early once every entry has been seen.
        """
        found: set[int] = set()
        offset = 0
        tail = b""
        while offset < limit and len(found) < len(self.entries):
            data = read(offset, min(CHUNK, limit - offset))
            if not data:
                break
            found.update(self._set.Match(tail + data) or ())
            tail = data[-self._overlap :] if self._overlap else b""
            offset += len(data)
        return ContentVerdict(tuple(self.entries[i] for i in sorted(found)))


@functools.cache
def builtin_scanner() -> ContentScanner:
    """The scanner for the built-in bundle (content entries are not per policy)."""
    return ContentScanner(bundle.builtin().signatures)
