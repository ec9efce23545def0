"""What each build step did, as an image config's ``history`` tells it: checked, judged, cut.

The ``history`` inside a config is free text its builder (or an attacker) wrote. It is kept
only where well formed and consistent with the manifest's layers; anything else lowers
:class:`~minerguard.api.investigation.Confidence` and is said in the notes. Each kept step's
command is judged by the built-in signature bundle (bounded: the newest steps until
:data:`MAX_JUDGED_CHARS`), and the steps naming the detected executable, or else judged a
miner, are marked suspect. OCI labels are kept bounded and cut.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import re2

from minerguard.api.investigation import (
    MAX_LIST,
    Confidence,
    HistoryStep,
)
from minerguard.oci import registry
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
OCI_LABEL_PREFIX = "org.opencontainers.image."
# RE2 for what a registry writes: linear in the text, whatever it holds ("<<<<..." in a Link
# header costs Python's backtracking engine quadratic time).
_SHELL = re2.compile(r"/bin/(?:ba|da|a)?sh\s+-c\s+")
_EXEC_FORM = re2.compile(r"(?s)(?:RUN|CMD|ENTRYPOINT)\s+\[(.*)\]")
_QUOTED = re2.compile(r'"((?:[^"\\]|\\.)*)"')
GENERIC_EXECUTABLES = frozenset(
    {"sh", "bash", "dash", "ash", "busybox", "env", "python", "python3", "perl", "node", "ruby"}
)
"""Executables every build step names: naming one says nothing, so the engine judges instead."""


@dataclass(frozen=True, slots=True)
class Step:
    """A well-formed history entry, with the engine's verdict on its command."""

    created: str | None
    created_by: str | None
    empty_layer: bool
    comment: str | None
    command: str
    """``created_by`` without its shell preamble, cut to :data:`MAX_CREATED_BY`."""
    miner: bool


@dataclass(frozen=True, slots=True)
class DigestPart:
    """The immutable part of one digest: read once, cached."""

    digest: str
    """The digest asked for (an index's, when the pod ran an index)."""
    manifests: frozenset[str]
    """That digest and the manifest whose config was read: what a tag must deliver."""
    created: str | None
    labels: Mapping[str, str]
    steps: tuple[Step, ...]
    confidence: Confidence
    notes: tuple[str, ...]


def parse_digest(
    top: registry.Fetched,
    manifest: registry.Fetched,
    config: Mapping[str, Any],
    confidence: Confidence,
    notes: list[str],
) -> DigestPart:
    """The digest part of a manifest and its config: history checked and judged, labels cut."""
    layers = _layers(manifest.document, notes)
    steps, trust = _steps(config.get("history"), layers, notes)
    return DigestPart(
        digest=top.digest,
        manifests=frozenset({top.digest, manifest.digest}),
        created=_text(config.get("created"), MAX_SHORT),
        labels=_labels(config.get("config"), notes),
        steps=steps,
        confidence=weaker(confidence, trust),
        notes=tuple(notes),
    )


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
) -> tuple[tuple[Step, ...], Confidence]:
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
    kept: list[Step] = []
    junk = 0
    for raw in history[-MAX_HISTORY:]:
        step = _step(raw)
        if step is None:
            junk += 1
        else:
            kept.append(step)
    if junk:
        notes.append(f"{junk} of {len(history)} history entries are malformed (dropped)")
        trust = weaker(trust, Confidence.LIKELY)
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


def _step(raw: object) -> Step | None:
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
    return Step(
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


def _judge(step: Step) -> Step:
    if not step.command:
        return step
    verdict = _engine().evaluate(engine.Subject(argv=_argv(step.command)))
    if not verdict.matched:
        return step
    return Step(
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


def history_steps(
    part: DigestPart, executable: str | None, unknowns: list[str]
) -> list[HistoryStep]:
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


def weaker(a: Confidence, b: Confidence) -> Confidence:
    """The less sure of two confidences."""
    return a if _ORDER.index(a) >= _ORDER.index(b) else b
