"""Normalisation: turn what a container will run into the tokens signatures match on.

Evasions this undoes before matching: Unicode compatibility forms and confusables (a Cyrillic
``i`` in ``xmrig``), case, zero-width characters, shell quoting and ``sh -c`` strings, command
wrappers (``nohup``, ``env``, ``timeout``...), ``--opt=value`` forms and base64 blobs.

Everything here runs in time linear in its input: the tokenising regexes use possessive
quantifiers, and base64 decoding is bounded in count, size and depth. Tokenisers take an
optional word limit (``max_words``) so a caller with a per-review budget
(:class:`minerguard.signatures.engine.Budget`) stops paying for words it will not examine.
"""

from __future__ import annotations

import base64
import binascii
import functools
import itertools
import json
import re
import unicodedata
from collections.abc import Iterator
from dataclasses import dataclass
from importlib import resources

MAX_FIELD_CHARS = 1 << 20
"""Longest string looked at; the rest of a longer one is cut (and says so)."""
MAX_DECODED_BYTES = 256 << 10
MAX_BASE64_CANDIDATES = 64
MAX_DEPTH = 3
MIN_BASE64_CHARS = 16

_ZERO_WIDTH: dict[int, str] = dict.fromkeys(
    (0x200B, 0x200C, 0x200D, 0x2060, 0xFEFF, 0x00AD, 0x180E), ""
)

SHELLS = frozenset({"sh", "bash", "dash", "ash", "zsh", "ksh", "mksh", "busybox"})
WRAPPERS = frozenset(
    {
        "env", "nohup", "exec", "nice", "ionice", "timeout", "setsid", "taskset", "stdbuf",
        "sudo", "chroot", "command", "time", "xargs", "doas", "chrt", "cpulimit", "runuser",
        "tini", "dumb-init", "su-exec", "gosu", "flock", "watch",
    }
)  # fmt: skip
_WRAPPER_OPERAND = frozenset({"chroot", "gosu", "su-exec", "flock"})
_WRAPPER_VALUE = re.compile(r"[0-9.]++[smhd]?|0x[0-9a-f]++|[0-9,-]++")

_SHELL_TOKEN = re.compile(
    r"""(?P<op>&&|\|\||[;|&\n()`<>])
      |(?P<word>(?:[^\s'"\\;|&()`<>]++|'[^']*+'|"(?:[^"\\]++|\\.)*+"|\\.)++)""",
    re.VERBOSE | re.DOTALL,
)
_QUOTED = re.compile(r"""'([^']*+)'|"((?:[^"\\]++|\\.)*+)"|\\(.)""", re.DOTALL)
_BACKSLASH = re.compile(r"\\(.)", re.DOTALL)
_BASE64 = re.compile(r"[A-Za-z0-9+/_-]{16,}+={0,2}")
_TEXT_TOKEN = re.compile(r"""[^\s"'{}\[\],;=<>()`|]++""")


@functools.cache
def _confusables() -> dict[int, str]:
    """Map every non-ASCII character that looks like an ASCII letter or digit to it (UTS #39)."""
    data = json.loads(
        resources.files("confusable_homoglyphs").joinpath("confusables.json").read_text("utf-8")
    )
    table: dict[int, str] = {}
    for char, homoglyphs in data.items():
        if len(char) != 1 or char.isascii():
            continue
        ascii_forms = [h["c"] for h in homoglyphs if len(h["c"]) == 1 and h["c"].isascii()]
        alnum = [c for c in ascii_forms if c.isalnum()] or ascii_forms
        if alnum:
            table[ord(char)] = alnum[0]
    return table | _ZERO_WIDTH


def plain(text: str) -> str:
    """Case-preserving skeleton: NFKC, confusables folded to ASCII, zero-width removed."""
    if text.isascii():
        return text
    return unicodedata.normalize("NFKC", text).translate(_confusables())


def fold(text: str) -> str:
    """Case-insensitive skeleton of ``text``."""
    if text.isascii():
        return text.lower()
    return plain(text).casefold()


def _unquote(word: str) -> str:
    if "'" not in word and '"' not in word and "\\" not in word:
        return word

    def repl(match: re.Match[str]) -> str:
        single, double, escaped = match.groups()
        if single is not None:
            return single
        if double is not None:
            return _BACKSLASH.sub(r"\1", double)
        return escaped

    return _QUOTED.sub(repl, word)


def shell_commands(script: str, max_words: int | None = None) -> list[list[str]]:
    """Split a shell script into simple commands (lists of unquoted words).

    Tolerant by design: unbalanced quotes, here-docs and syntax errors still yield the words
    that are there, because an attacker controls this text. With ``max_words``, stops after
    that many words (the caller sees the count and knows it was cut).
    """
    commands: list[list[str]] = []
    current: list[str] = []
    left = -1 if max_words is None else max_words
    for match in _SHELL_TOKEN.finditer(script):
        word = match.group("word")
        if word is None:
            if current:
                commands.append(current)
                current = []
            continue
        if left == 0:
            break
        left -= 1
        current.append(_unquote(word))
    if current:
        commands.append(current)
    return commands


def basename(path: str) -> str:
    """Last path component, folded; ``./xmrig`` and ``/tmp/.x/XMRig`` both give ``xmrig``."""
    return fold(path.rstrip("/").rsplit("/", 1)[-1])


def unwrap(argv: list[str]) -> list[str]:
    """Drop launchers such as ``nohup``, ``env A=b``, ``timeout 10``, ``nice -n 19``.

    ``chroot DIR``, ``gosu USER``, ``su-exec USER`` and ``flock FILE`` take one operand first.
    """
    start = 0
    while start < len(argv) and basename(argv[start]) in WRAPPERS:
        operand = basename(argv[start]) in _WRAPPER_OPERAND
        start += 1
        while start < len(argv):
            if operand and not argv[start].startswith("-"):
                operand = False
                start += 1
                continue
            word = argv[start]
            if word.startswith("-") or "=" in word or _WRAPPER_VALUE.fullmatch(word):
                start += 1
            else:
                break
    return argv[start:]


def shell_script(argv: list[str]) -> str | None:
    """The script of ``sh -c SCRIPT`` (also ``bash -lc``, ``busybox sh -c``), else None."""
    if not argv or basename(argv[0]) not in SHELLS:
        return None
    for index, word in enumerate(argv[1:], start=1):
        if word.startswith("-") and not word.startswith("--") and "c" in word[1:]:
            return argv[index + 1] if index + 1 < len(argv) else None
    return None


def text_tokens(text: str, max_words: int | None = None) -> list[str]:
    """Tokens of free text (config files, env values): keeps ``host:port`` and URLs whole.

    With ``max_words``, at most that many (the first ones).
    """
    if max_words is None:
        return _TEXT_TOKEN.findall(text)
    return [m.group(0) for m in itertools.islice(_TEXT_TOKEN.finditer(text), max_words)]


@dataclass(frozen=True, slots=True)
class Piece:
    """A piece of text and where it came from, for the evidence."""

    text: str
    where: str


def base64_payloads(tokens: Iterator[str] | list[str], budget: list[int]) -> Iterator[str]:
    """Decode tokens that are base64 of printable text, within a shared byte budget."""
    candidates = 0
    for token in tokens:
        if len(token) < MIN_BASE64_CHARS or not _BASE64.fullmatch(token):
            continue
        candidates += 1
        if candidates > MAX_BASE64_CANDIDATES or budget[0] <= 0:
            return
        blob = token[: budget[0] * 4 // 3 + 4].rstrip("=")
        blob += "=" * (-len(blob) % 4)
        try:
            decoded = base64.b64decode(blob.replace("-", "+").replace("_", "/"), validate=True)
        except (binascii.Error, ValueError):
            continue
        try:
            text = decoded.decode("utf-8")
        except UnicodeDecodeError:
            continue
        printable = sum(1 for c in text if c.isprintable() or c in "\n\t\r")
        if len(text) >= 8 and printable >= 0.95 * len(text):
            budget[0] -= len(decoded)
            yield text
