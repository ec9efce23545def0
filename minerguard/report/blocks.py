"""The vocabulary of a report: rows, items and sections, and :func:`inert` for their values.

Every string of a detection is attacker-influenced. :func:`inert` bounds its length and shows
control characters (terminal escapes, carriage returns that fake report lines), bidi and other
format characters (which reorder what a reader sees) and lone surrogates (which cannot be
encoded) as visible escapes; every value a block holds has been through it, so the renderers
need only their own format's escaping. Lists are bounded too, and a cut is always said.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, TypeVar

MAX_VALUE = 2000
"""Characters of one value shown; the rest is said as a count (a command line may be huge)."""
MAX_ITEMS = 100
"""Entries of one list shown (the API bounds its lists to 50; a hostile object may not)."""
_ESCAPED_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Zl", "Zp"})

Tone = Literal["bad", "warn", "good", "plain"]
_T = TypeVar("_T")


def inert(value: object, limit: int = MAX_VALUE) -> str:
    """``value`` as text safe to show anywhere: bounded, controls and bidi shown as escapes."""
    text = "" if value is None else str(value)
    more = len(text) - limit
    if more > 0:
        text = text[:limit]
    shown = "".join(
        _escape(char) if unicodedata.category(char) in _ESCAPED_CATEGORIES else char
        for char in text
    )
    return f"{shown}… [{more} more characters]" if more > 0 else shown


def _escape(char: str) -> str:
    code = ord(char)
    if code < 0x100:
        return f"\\x{code:02x}"
    return f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}"


@dataclass(frozen=True, slots=True)
class Row:
    """A labelled value; ``code`` for what is typed or compared (commands, digests)."""

    label: str
    value: str
    code: bool = False


@dataclass(frozen=True, slots=True)
class Item:
    """One entry of a list: a restart path, an entry point, a checklist item, a history step."""

    title: str
    state: str | None = None
    tone: Tone = "plain"
    rows: tuple[Row, ...] = ()
    flagged: bool = False
    """Singled out: the history step that added what was detected."""


@dataclass(frozen=True, slots=True)
class Section:
    """One part of the report; ``key`` is fixed by this module, never taken from the data."""

    key: str
    title: str
    paragraph: str | None = None
    rows: tuple[Row, ...] = ()
    items: tuple[Item, ...] = ()
    bullets: tuple[str, ...] = ()
    empty: str | None = None
    """Said when the section has nothing else: "none found" differs from "could not see"."""


def row(label: str, value: object, *, code: bool = False) -> Row | None:
    """A labelled row, or None for a missing value; label and value made inert."""
    if value is None or value in ("", []):
        return None
    return Row(inert(label, 256), inert(value), code)


def rows(*rows: Row | None) -> tuple[Row, ...]:
    """The rows that are there."""
    return tuple(row for row in rows if row is not None)


def bounded(values: Sequence[_T]) -> Sequence[_T]:
    """The first :data:`MAX_ITEMS` values."""
    return values[:MAX_ITEMS]


def joined(values: Sequence[str]) -> str:
    """Values joined with commas, bounded, the cut said."""
    more = len(values) - MAX_ITEMS
    return ", ".join(values[:MAX_ITEMS]) + (f", … {more} more" if more > 0 else "")


def more_row(values: Sequence[object], what: str) -> Row | None:
    """A row saying how many values a bounded list left out; None when none."""
    more = len(values) - MAX_ITEMS
    return Row("Not shown", f"{more} more {what}") if more > 0 else None


def more_items(values: Sequence[object]) -> tuple[Item, ...]:
    """An item saying how many entries a bounded list left out; none when none."""
    more = len(values) - MAX_ITEMS
    return (Item(title=f"… {more} more not shown"),) if more > 0 else ()
