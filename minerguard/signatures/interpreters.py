"""Interpreter one-liners: the string literals of ``python -c``, ``perl -e``, ``node -e``...

A miner started from a one-liner hides its command line in the language's literals:
``subprocess.call(["./x", "-o", "pool:3333"])``, ``"xm" + "rig"``, ``bytes.fromhex("...")``,
``codecs.decode("...", "rot13")``. Word matching sees ``["./x",`` and misses it. This module
tokenises the code's literals the way a shell command is tokenised: strings (single, double,
triple quotes, byte/raw prefixes, backticks), concatenation of literals (``+``, ``.``,
adjacency), list literals (which become an argv), ``"".join([...])``, and decoder calls whose
argument is a literal (hex, base64, rot13, zlib/gzip/lzma), so the engine's pool, wallet and
option signals see them exactly as in a shell command. It also says whether the code fetches
a URL and runs something (a dropper written in the language).

One pass over the code plus a reducing stack: linear in the code's length; decoded bytes are
capped by the caller's budget.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from minerguard.signatures import decoders, normalise

_NAME = re.compile(r"(python|perl|ruby|node|nodejs|php)[0-9.]*+")
_FLAGS: dict[str, str] = {"python": "c", "perl": "eE", "ruby": "e", "node": "ep", "php": "r"}
_VALUED: dict[str, frozenset[str]] = {
    "python": frozenset("WX"),
    "perl": frozenset("MmIx"),
    "ruby": frozenset("rIC"),
    "node": frozenset("r"),
    "php": frozenset("dcz"),
}
_LONG = {"--eval": "node", "--print": "node"}

_TOKEN = re.compile(
    r"""(?P<s>(?P<pre>[rRbBuUfF]{1,2}(?=['"]))?
          (?:\"\"\"(?:[^"\\]++|\\.|"(?!""))*+(?:\"\"\"|\Z)
            |'''(?:[^'\\]++|\\.|'(?!''))*+(?:'''|\Z)
            |"(?:[^"\\]++|\\.)*+(?:"|\Z)
            |'(?:[^'\\]++|\\.)*+(?:'|\Z)
            |`(?:[^`\\]++|\\.)*+(?:`|\Z)))
      |(?P<n>[A-Za-z_$][\w$]*+(?:[ \t]*+(?:\.|::|->)[ \t]*+[A-Za-z_$][\w$]*+)*+)
      |(?P<p>[\[\](),+.])
      |(?P<o>[^\s\w'"`\[\](),+.]++|\d++)""",
    re.VERBOSE | re.DOTALL,
)
_FETCH = re.compile(
    r"urlopen|urlretrieve|urllib|requests\.get|http\.client|LWP|HTTP::Tiny|getstore|"
    r"Net::HTTP|open-uri|URI\.open|https?\.get|fetch\(|file_get_contents|curl_exec|wget|curl",
    re.IGNORECASE,
)
_RUN = re.compile(
    r"\b(?:exec|system|popen|subprocess|spawn|execSync|execFile|eval|shell_exec|passthru|"
    r"proc_open|chmod|Popen|call|run)\b|`",
)
_URL = re.compile(r"\b(?:https?|ftp)://[^\s'\"`<>]++", re.IGNORECASE)

Decode = Callable[[bytes, int], decoders.Decoded]
_DECODERS: dict[str, tuple[str, Decode]] = {
    "fromhex": ("hex", decoders.hex_decode),
    "unhexlify": ("hex", decoders.hex_decode),
    "a2b_hex": ("hex", decoders.hex_decode),
    "hex2bin": ("hex", decoders.hex_decode),
    "b64decode": ("base64", decoders.base64_decode),
    "standard_b64decode": ("base64", decoders.base64_decode),
    "urlsafe_b64decode": ("base64", decoders.base64_decode),
    "decodebytes": ("base64", decoders.base64_decode),
    "decodestring": ("base64", decoders.base64_decode),
    "a2b_base64": ("base64", decoders.base64_decode),
    "decode_base64": ("base64", decoders.base64_decode),
    "base64_decode": ("base64", decoders.base64_decode),
    "decode64": ("base64", decoders.base64_decode),
    "atob": ("base64", decoders.base64_decode),
    "str_rot13": ("rot13", decoders.rot13),
    "decompress": ("gzip", decoders.gunzip),
    "gzdecode": ("gzip", decoders.gunzip),
    "gzinflate": ("gzip", decoders.gunzip),
    "gzuncompress": ("gzip", decoders.gunzip),
}
_ENCODING_ARG: dict[str, tuple[str, Decode]] = {
    "rot13": ("rot13", decoders.rot13),
    "rot_13": ("rot13", decoders.rot13),
    "base64": ("base64", decoders.base64_decode),
    "hex": ("hex", decoders.hex_decode),
}
_TWO_ARG = frozenset({"decode", "from"})
"""Calls whose second argument names the encoding (``codecs.decode(s, "rot13")``,
``Buffer.from(s, "base64")``)."""
MAX_LIST = 256
"""Most tokens a list literal may have to be read as an argv."""
_NO_ESCAPES = frozenset({"perl", "ruby", "php"})
"""Languages whose single-quoted strings keep backslashes (only ``\\'`` and ``\\\\``)."""


@dataclass(frozen=True, slots=True)
class OneLiner:
    """The code of an interpreter invocation: language, flag, and where the code is."""

    language: str
    flag: str
    code: str
    index: int
    """Index in argv of the word holding the code."""


@dataclass(frozen=True, slots=True)
class Literals:
    """What the code's literals say, after concatenation and decoding."""

    lists: tuple[tuple[str, ...], ...]
    strings: tuple[str, ...]
    how: tuple[str, ...]
    fetches: tuple[str, ...]
    """URLs the code fetches, when it both fetches and runs something (a dropper)."""
    cut: bool


def one_liner(argv: list[str]) -> OneLiner | None:
    """The code of ``python -c CODE``, ``perl -e CODE``, ``node -e``, ``ruby -e``, ``php -r``."""
    if not argv:
        return None
    match = _NAME.fullmatch(normalise.basename(argv[0]))
    if match is None:
        return None
    language = "node" if match.group(1) == "nodejs" else match.group(1)
    flags, valued = _FLAGS[language], _VALUED[language]
    index = 1
    while index < len(argv):
        word = argv[index]
        if word in _LONG and _LONG[word] == language:
            return _code(argv, language, word, index + 1)
        if word == "--" or not word.startswith("-") or word.startswith("--") or len(word) < 2:
            return None
        for pos in range(1, len(word)):
            letter = word[pos]
            if letter in flags:
                rest = word[pos + 1 :]
                if rest:
                    return OneLiner(language, f"-{letter}", rest, index)
                return _code(argv, language, f"-{letter}", index + 1)
            if letter in valued:
                if pos == len(word) - 1:
                    index += 1  # the option's value is the next word
                break
        index += 1
    return None


def _code(argv: list[str], language: str, flag: str, index: int) -> OneLiner | None:
    return OneLiner(language, flag, argv[index], index) if index < len(argv) else None


def _unescape(body: str, escapes: bool, cap: int) -> bytes:
    raw = body.encode("utf-8", "replace")
    if not escapes:
        return raw.replace(b"\\'", b"'").replace(b"\\\\", b"\\")
    return decoders.escapes(raw, cap)[0]


def _string(token: str, language: str, cap: int) -> bytes:
    prefix = ""
    while token and token[0] in "rRbBuUfF":
        prefix, token = prefix + token[0], token[1:]
    quote = token[:3] if token[:3] in ('"""', "'''") else token[:1]
    body = token[len(quote) :]
    if body.endswith(quote):
        body = body[: -len(quote)]
    raw = "r" in prefix.lower()
    escapes = not raw and not (quote == "'" and language in _NO_ESCAPES)
    return _unescape(body, escapes, cap)


Item = tuple[str, object]
"""A token on the reducing stack: ("s", bytes), ("l", list of bytes), ("n", name), ("p", ch)."""


def literals(code: str, language: str, cap: int) -> Literals:
    """The literals of ``code``: list literals, other strings, how decoded, what it fetches.

    ``cap`` bounds the bytes decoders may produce in all (a caller's shared budget).
    """
    stack: list[Item] = []
    how: list[str] = []
    left = [max(cap, 0)]
    cut = False
    for match in _TOKEN.finditer(code):
        kind = match.lastgroup
        if kind == "s":
            value = _string(match.group(), language, left[0] + 4)
            left[0] = max(left[0] - len(value), 0)
            _push_string(stack, value)
        elif kind == "n":
            stack.append(("n", re.sub(r"\s++", "", match.group())))
        elif kind == "p":
            char = match.group()
            if char == "]":
                _reduce_list(stack)
            elif char == ")":
                cut = _reduce_call(stack, how, left) or cut
            else:
                stack.append(("p", char))
        else:
            stack.append(("o", match.group()))
    lists: list[tuple[str, ...]] = []
    strings: list[str] = []
    for kind, item in stack:
        if kind == "s":
            strings.append(_text(item))
        elif kind == "l" and isinstance(item, list):
            lists.append(tuple(_text(v) for v in item))
    fetches: tuple[str, ...] = ()
    if _FETCH.search(code) and _RUN.search(code):
        seen = " ".join(strings + [w for item in lists for w in item])
        fetches = tuple(dict.fromkeys(_URL.findall(seen)))[:8]
    return Literals(tuple(lists), tuple(strings), tuple(dict.fromkeys(how)), fetches, cut)


def _text(value: object) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, (bytes, bytearray)) else str(value)


def _push_string(stack: list[Item], value: bytes) -> None:
    """Push a string, joined to a literal before it (``"a" + "b"``, ``"a" . "b"``, ``"a" "b"``).

    Joined in place (a bytearray), so a long chain of ``+`` costs its length, not its square.
    """
    if len(stack) >= 2 and stack[-1] in (("p", "+"), ("p", ".")) and stack[-2][0] == "s":
        stack.pop()
    if stack and stack[-1][0] == "s" and isinstance(stack[-1][1], bytearray):
        stack[-1][1].extend(value)
    else:
        stack.append(("s", bytearray(value)))


def _reduce_list(stack: list[Item]) -> None:
    """``[ "a", "b" ]`` on top of the stack becomes one list token; anything else stays."""
    items: list[bytes] = []
    pos = len(stack) - 1
    floor = max(pos - MAX_LIST, -1)  # longer lists are no argv; bounded, so "]]]..." stays linear
    while pos > floor:
        kind, value = stack[pos]
        if kind == "s":
            items.append(value)  # type: ignore[arg-type]
        elif (kind, value) != ("p", ","):
            break  # the opening "[", or something no argv list holds
        pos -= 1
    if pos <= floor or stack[pos] != ("p", "["):
        stack.append(("p", "]"))  # not a list: the next "]" stops here, not at the bottom
        return
    del stack[pos:]
    stack.append(("l", items[::-1]))


def _reduce_call(stack: list[Item], how: list[str], left: list[int]) -> bool:
    """``NAME ( STR [, STR] )`` of a decoder becomes the decoded string; ``SEP.join([..])`` too.

    Returns whether a decoding stopped at the budget.
    """
    args: list[Item] = []
    pos = len(stack) - 1
    while pos >= 0 and (stack[pos][0] != "p" or stack[pos][1] != "("):
        if len(args) > 8:
            return False
        args.append(stack[pos])
        pos -= 1
    if pos < 1 or stack[pos - 1][0] != "n":
        return False
    name = str(stack[pos - 1][1])
    last = name.replace("::", ".").replace("->", ".").rsplit(".", 1)[-1]
    values = [v for k, v in args[::-1] if k in ("s", "l")]
    if last == "join" and len(values) == 1 and isinstance(values[0], list):
        sep = stack[pos - 3][1] if pos >= 3 and stack[pos - 2] == ("p", ".") else b""
        if pos >= 3 and stack[pos - 2] == ("p", ".") and stack[pos - 3][0] == "s":
            del stack[pos - 3 :]
        else:
            del stack[pos - 1 :]
        _push_string(
            stack, (bytes(sep) if isinstance(sep, (bytes, bytearray)) else b"").join(values[0])
        )
        return False
    if not values or not isinstance(values[0], (bytes, bytearray)):
        return False
    decoder = _DECODERS.get(last)
    if (
        decoder is None
        and len(values) > 1
        and isinstance(values[1], (bytes, bytearray))
        and last in _TWO_ARG
    ):
        decoder = _ENCODING_ARG.get(values[1].decode("latin-1").lower())
    if decoder is None:
        return False
    label, decode = decoder
    out, cut = decode(bytes(values[0]), left[0])
    left[0] = max(left[0] - len(out), 0)
    how.append(label)
    del stack[pos - 1 :]
    _push_string(stack, out)
    return cut
