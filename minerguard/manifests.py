"""Reading Kubernetes manifests from files or stdin: the one reader, with its checks.

``minerguard scan`` reads the manifests it judges through it, and every component reads its
policy files through it, so both get the same limits: at most :data:`MAX_INPUT_BYTES`, UTF-8
text without NUL bytes, YAML (multi-document) or JSON, and ``List`` kinds (``kubectl get -o
yaml``) expanded into their items. Problems raise :class:`~minerguard.errors.InputError`
naming the file and the document.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

from minerguard.errors import InputError

MAX_INPUT_BYTES = 32 << 20
MANIFEST_SUFFIXES = {".yaml", ".yml", ".json"}


def read(source: str) -> str:
    """The text of a file, or of stdin for ``-``, within the size limit."""
    if source == "-":
        text = sys.stdin.read(MAX_INPUT_BYTES + 1)
    else:
        try:
            with Path(source).open("rb") as handle:
                raw = handle.read(MAX_INPUT_BYTES + 1)
        except OSError as err:
            raise InputError(f"{source}: cannot read: {err.strerror or err}") from err
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as err:
            raise InputError(f"{source}: not UTF-8 text (byte {err.start})") from err
    if len(text) > MAX_INPUT_BYTES:
        raise InputError(f"{source}: larger than {MAX_INPUT_BYTES >> 20} MiB")
    return text


def documents(source: str) -> Iterator[tuple[str, Any]]:
    """(origin, document) for each YAML/JSON document in a file or stdin."""
    text = read(source)
    if "\x00" in text:
        raise InputError(f"{source}: binary data, not a manifest")
    try:
        if text.lstrip()[:1] in ("{", "["):
            yield f"{source}[0]", json.loads(text)
            return
        for index, doc in enumerate(yaml.safe_load_all(text)):
            if doc is not None:
                yield f"{source}[{index}]", doc
    except (yaml.YAMLError, json.JSONDecodeError, RecursionError) as err:
        problem = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise InputError(f"{source}: not valid YAML/JSON: {problem}") from err


def objects(origin: str, doc: Any) -> Iterator[tuple[str, Mapping[str, Any]]]:
    """Objects in a document, with ``List`` kinds (``kubectl get -o yaml``) expanded."""
    if not isinstance(doc, Mapping):
        raise InputError(f"{origin}: a {type(doc).__name__}, not a Kubernetes object")
    if isinstance(doc.get("kind"), str) and doc["kind"].endswith("List"):
        for index, item in enumerate(doc.get("items") or []):
            yield from objects(f"{origin}.items[{index}]", item)
        return
    yield origin, doc


def expand_paths(paths: Sequence[str]) -> Iterator[str]:
    """Files named, and manifest files under directories named, in a stable order."""
    for path in paths:
        if path != "-" and Path(path).is_dir():
            for found in sorted(Path(path).rglob("*")):
                if found.suffix in MANIFEST_SUFFIXES and found.is_file():
                    yield str(found)
        else:
            yield path
