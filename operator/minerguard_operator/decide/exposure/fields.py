"""How the exposure decisions read API objects: every reader tolerates junk.

A field of the wrong type counts as absent (an empty mapping, list or None), so a malformed
object never stops an investigation; names shown in a finding are cut to :data:`MAX_NAMES`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

MAX_NAMES = 10
"""No detail lists more than this many hosts, ports, addresses or subjects."""


def as_map(value: object) -> Mapping[str, Any]:
    """The value if it is a mapping, else an empty one."""
    return value if isinstance(value, Mapping) else {}


def as_list(value: object) -> list[Any]:
    """The value as a list if it is a JSON array, else an empty one."""
    return list(value) if isinstance(value, list | tuple) else []


def as_str(value: object) -> str | None:
    """The value if it is a non-empty string, else None."""
    return value if isinstance(value, str) and value else None


def as_strs(value: object) -> list[str]:
    """The non-empty strings of a JSON array; anything else is left out."""
    return [item for item in as_list(value) if isinstance(item, str) and item]


def where_of(obj: Mapping[str, Any]) -> tuple[str | None, str]:
    """(namespace or None, name or ``?``) of an API object."""
    meta = as_map(obj.get("metadata"))
    return as_str(meta.get("namespace")), as_str(meta.get("name")) or "?"


def ref_of(obj: Mapping[str, Any]) -> str:
    """``namespace/name``, or ``name`` for a cluster-scoped object."""
    namespace, name = where_of(obj)
    return f"{namespace}/{name}" if namespace else name


def few(items: Sequence[str]) -> str:
    """The first :data:`MAX_NAMES` items joined, and how many more there are."""
    shown = ", ".join(items[:MAX_NAMES])
    return shown + (f" and {len(items) - MAX_NAMES} more" if len(items) > MAX_NAMES else "")
