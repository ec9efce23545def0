"""What an image's name gives away: a miner's name, or a well-known publisher's, misspelt.

Two heuristics, both driven by the bundle's ``images`` section and measured for false
positives on a list of popular real images (``tests/data/popular_images.txt``):

- **miner name**: the repository's last segment is a miner's name (the bundle's ``binary``
  entries), alone or with packaging words around it (``xmrig``, ``xmrig-docker``,
  ``cpuminer-opt``, ``srbminer-multi-cuda``). A segment that adds any other word
  (``xmrig-exporter``, ``xmrig-dashboard``) is not taken: tools about miners are not miners.
- **typosquat**: on a registry where anyone may claim a namespace (Docker Hub, quay.io,
  ghcr.io...; a private registry's namespaces are its owner's, and mirrors there flatten
  upstream names), the namespace (first path segment) is not a protected one
  but is one edit from it (two for names of eight characters or more), a look-alike of it
  (``0``/``o``, ``1``/``l``, ``rn``/``m``, Unicode confusables folded before parsing), or it
  only with punctuation added (``bit-nami``). Names of four characters or fewer are matched
  only as look-alikes or with a doubled character: one edit from ``k8s`` or ``prom`` is
  another real word too often. Real namespaces that sit close to a protected one are listed
  as allowed, each with its reason.

Every input is cut to :data:`MAX_CHARS`; the distance is computed only between names whose
lengths differ by at most the allowed edits, in time proportional to their product.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field

MAX_CHARS = 128
"""Longest namespace or segment looked at (Docker Hub allows 30 and 255 characters)."""

MAX_REMEMBERED = 4096
"""Namespaces whose typosquat verdict is remembered (the memory is cleared when full)."""
MAX_WORDS = 8
"""Words of a repository name looked at for a miner's name (``a-b-c-xmrig-docker``)."""

_WORDS = re.compile(r"[a-z0-9]++")
_NOT_ALNUM = re.compile(r"[^a-z0-9]++")
_LOOKALIKE = str.maketrans({"0": "o", "1": "l", "i": "l", "5": "s", "|": "l"})


def squash(name: str) -> str:
    """Lower case, punctuation removed: ``K8s.gcr.io`` and ``k8s-gcr-io`` both ``k8sgcrio``."""
    return _NOT_ALNUM.sub("", name[:MAX_CHARS].lower())


def lookalike(name: str) -> str:
    """``name`` with characters that read alike folded together (``bltnarni`` -> ``bltnaml``)."""
    return squash(name).replace("rn", "m").replace("vv", "w").translate(_LOOKALIKE)


def distance(left: str, right: str, limit: int) -> int:
    """Optimal string alignment distance (a transposition is one edit), or ``limit + 1``.

    Only the band of cells within ``limit`` of the diagonal is computed: time is proportional
    to the shorter name times ``limit``.
    """
    if abs(len(left) - len(right)) > limit:
        return limit + 1
    over = limit + 1
    width = len(right)
    before: dict[int, int] = {}
    previous = {j: j for j in range(min(width, limit) + 1)}
    for i in range(1, len(left) + 1):
        a = left[i - 1]
        current: dict[int, int] = {}
        low, high = max(0, i - limit), min(width, i + limit)
        if low == 0:
            current[0] = i
        for j in range(max(1, low), high + 1):
            b = right[j - 1]
            best = min(
                previous.get(j, over) + 1,
                current.get(j - 1, over) + 1,
                previous.get(j - 1, over) + (a != b),
            )
            if i > 1 and j > 1 and a == right[j - 2] and left[i - 2] == b:
                best = min(best, before.get(j - 2, over) + 1)
            current[j] = best
        if min(current.values(), default=over) > limit:
            return over
        before, previous = previous, current
    return min(previous.get(width, over), over)


def _doubled(name: str, protected: str) -> bool:
    """``name`` is ``protected`` with one of its characters written twice (``k8ss``)."""
    return len(name) == len(protected) + 1 and any(
        name[:i] + name[i + 1 :] == protected and name[i] == name[i - 1]
        for i in range(1, len(name))
    )


@dataclass(frozen=True, slots=True)
class Heuristics:
    """The bundle's image heuristics, compiled for lookups."""

    miner_names: frozenset[str]
    packaging: frozenset[str]
    protected: tuple[tuple[str, str, str], ...]
    """(squashed, look-alike folded, as written) for each protected namespace or registry."""
    exact: dict[str, str]
    """Each protected name as written (lower case), to itself."""
    allowed: frozenset[str]
    """Squashed real namespaces that sit close to a protected one."""
    registries: frozenset[str]
    """Registries where anyone may claim a namespace: the only ones typosquats live on."""
    seen: dict[tuple[str, str], str | None] = field(default_factory=dict, compare=False)
    """Namespaces already judged: a cluster runs few, and each costs a pass over the list."""

    @classmethod
    def build(
        cls,
        miner_names: Iterable[str],
        packaging: Iterable[str],
        protected: Iterable[str],
        allowed: Iterable[str],
        registries: Iterable[str],
    ) -> Heuristics:
        """Compile the name lists (lower-cased; protected and allowed names squashed)."""
        names = tuple(dict.fromkeys(n.lower() for n in protected))
        return cls(
            miner_names=frozenset(n.lower() for n in miner_names),
            packaging=frozenset(w.lower() for w in packaging),
            protected=tuple((squash(n), lookalike(n), n) for n in names),
            exact={n: n for n in names},
            allowed=frozenset(squash(n) for n in allowed),
            registries=frozenset(r.lower() for r in registries),
        )

    def miner_name(self, segment: str) -> str | None:
        """The miner ``segment`` (a repository's last path segment) is named after, if any."""
        segment = segment[:MAX_CHARS].lower()
        if segment in self.miner_names:
            return segment
        words = _WORDS.findall(segment)[:MAX_WORDS]
        for start in range(len(words)):
            for end in range(len(words), start, -1):
                name = "-".join(words[start:end])
                if name in self.miner_names:
                    rest = words[:start] + words[end:]
                    if all(w in self.packaging or w.isdigit() for w in rest):
                        return name
        return None

    def typosquat(self, namespace: str, written: str | None = None) -> str | None:
        """The protected name ``namespace`` imitates, if any (remembered per namespace).

        ``written``: the namespace as it was written before Unicode confusables were folded;
        a protected name reached only by folding them is a look-alike.
        """
        key = (namespace[:MAX_CHARS], (written or namespace)[:MAX_CHARS])
        if key in self.seen:
            return self.seen[key]
        if len(self.seen) >= MAX_REMEMBERED:
            self.seen.clear()
        found = self.seen[key] = self._typosquat(namespace, written)
        return found

    def _typosquat(self, namespace: str, written: str | None) -> str | None:
        lowered = namespace[:MAX_CHARS].lower()
        squashed = squash(lowered)
        if not squashed:
            return None
        if lowered in self.exact:
            changed = written is not None and written.lower() != lowered
            return self.exact[lowered] if changed else None  # a homoglyph, or the real one
        if squashed in self.allowed:
            return None
        folded, letters = lookalike(squashed), set(squashed)
        for protected, alike, shown in self.protected:
            if squashed == protected or folded == alike:
                return shown  # punctuation added or removed (k8s-gcr-io), or a look-alike
            if len(squashed) == len(protected) + 1 and _doubled(squashed, protected):
                return shown
            if len(protected) <= 4:
                continue
            limit = 1 if len(protected) < 8 else 2
            if abs(len(squashed) - len(protected)) > limit:
                continue
            # Each edit changes the set of letters by at most two: a cheap bound first.
            near = len(letters ^ set(protected)) <= 2 * limit
            if near and distance(squashed, protected, limit) <= limit:
                return shown
        return None
