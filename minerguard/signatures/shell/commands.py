"""What the commands the evaluator models do, as pure functions of their arguments.

Option parsing for decoders (``base64 -d``, ``xxd -r -p``, ``gzip -d``...), ``echo`` and
``printf`` output, ``tr`` sets, and where downloaders (``curl``, ``wget``) and ``tar`` put
what they fetch. Each is bounded by the byte cap it is given.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from minerguard.signatures import decoders, normalise

DOWNLOADERS = frozenset({"curl", "wget", "fetch", "lwp-download", "aria2c", "tftp"})
INTERPRETERS = re.compile(r"(?:python|perl|ruby|node|nodejs|php)[0-9.]*+")
DECODERS = frozenset(
    {
        "base64", "base32", "openssl", "xxd", "gunzip", "zcat", "gzip", "unxz", "xzcat",
        "unlzma", "lzcat", "xz", "lzma", "bunzip2", "bzcat", "bzip2", "rev", "tr",
    }
)  # fmt: skip
ARCHIVE = re.compile(r"\.(?:t[gx]z|tar(?:\.[gx]z|\.bz2)?|zip|gz|xz)$", re.IGNORECASE)
MAX_URLS = 8
_FORMAT = re.compile(r"([^%]*+)(%(?:%|[-+ #0]*+[0-9]*+(?:\.[0-9]++)?[a-zA-Z])|$)")
_URL = re.compile(
    r"(?:[a-z][a-z0-9+.-]*+://\S++|(?:[0-9]{1,3}\.){3}[0-9]{1,3}(?::[0-9]++)?(?:/\S*+)?"
    r"|[a-z0-9-]++(?:\.[a-z0-9-]++)*+\.[a-z]{2,}(?::[0-9]++)?/\S*+)",
    re.IGNORECASE,
)

Decoder = Callable[[bytes, int], decoders.Decoded]


def option_set(argv: list[str]) -> set[str]:
    """Short options as single letters (``-rp`` gives r, p) and long ones whole."""
    found: set[str] = set()
    for word in argv[1:]:
        if word.startswith("--"):
            found.add(word)
        elif word.startswith("-") and len(word) > 1:
            found.update(word[1:])
    return found


def operands(argv: list[str]) -> list[str]:
    """The arguments that are not options (``-`` counts: it names standard input)."""
    return [w for w in argv[1:] if not w.startswith("-") or w == "-"]


def script_operand(argv: list[str]) -> list[str]:
    """A shell's script file, if it names one: not with ``-s`` (stdin), not after ``--``."""
    for word in argv[1:]:
        if word == "--":
            return []
        if word.startswith("-") and len(word) > 1:
            if not word.startswith("--") and "s" in word[1:]:
                return []
            continue
        return [word]
    return []


def stdin_decoder(argv: list[str], name: str) -> tuple[str, Decoder] | None:
    """The decoder a command applies to its standard input, if it is one we model."""
    opts = option_set(argv)
    if name in {"base64", "openssl"}:
        if name == "openssl" and not {"base64", "enc"} & set(argv[1:2]):
            return None
        if opts & {"d", "D", "--decode"}:
            return "base64", decoders.base64_decode
    elif name == "base32" and opts & {"d", "--decode"}:
        return "base32", decoders.base32_decode
    elif name == "xxd" and "r" in opts and ("p" in opts or "-ps" in argv or "-plain" in argv):
        return "hex", decoders.hex_decode
    elif name in {"gunzip", "zcat"} or (name == "gzip" and opts & {"d", "--decompress"}):
        return "gzip", decoders.gunzip
    elif name in {"unxz", "xzcat", "unlzma", "lzcat"} or (
        name in {"xz", "lzma"} and opts & {"d", "--decompress"}
    ):
        return "xz", decoders.unxz
    elif name in {"bunzip2", "bzcat"} or (name == "bzip2" and opts & {"d", "--decompress"}):
        return "bzip2", decoders.bunzip2
    elif name == "rev":
        return "rev", decoders.reverse_lines
    return None


def basename(path: str) -> str:
    """A path's or URL path's last segment, folded, without query or fragment."""
    return normalise.basename(path.split("?", 1)[0].split("#", 1)[0])


def echo(argv: list[str], cap: int) -> tuple[bytes, tuple[str, ...], bool]:
    """``echo [-neE] ARGS``: its output, how it was decoded, whether it was cut."""
    args = argv[1:]
    newline, interpret = True, False
    while args and re.fullmatch(r"-[neE]++", args[0]):
        newline = newline and "n" not in args[0]
        interpret = interpret or "e" in args[0]
        args = args[1:]
    raw = " ".join(args).encode("utf-8", "replace") + (b"\n" if newline else b"")
    if interpret and b"\\" in raw:
        out, cut = decoders.escapes(raw, cap)
        return out, ("escapes",), cut
    return raw[:cap], (), len(raw) > cap


def printf(argv: list[str], cap: int) -> tuple[bytes, tuple[str, ...], bool]:
    """``printf FORMAT ARGS``: escapes, ``%s``/``%b``/``%c``/``%d``, the format reused.

    The format is parsed and its text decoded once; it is reused while arguments last and
    never past ``cap`` (so a long format times many arguments stays cheap).
    """
    args = argv[1:]
    if args[:1] == ["--"]:
        args = args[1:]
    if not args:
        return b"", (), False
    fmt, values = args[0], args[1:]
    labels: set[str] = set()
    if "\\" in fmt:
        labels.add("hex" if "\\x" in fmt else "octal")
    parsed = [
        (decoders.escapes(text.encode("utf-8", "replace"), cap)[0], spec)
        for text, spec in _FORMAT.findall(fmt)
    ]
    pieces: list[bytes] = []
    size, index, first = 0, 0, True
    while first or (index < len(values) and size <= cap):
        first = False
        for text, spec in parsed:
            pieces.append(text)
            size += len(text)
            if not spec:
                continue
            if spec == "%%":
                pieces.append(b"%")
                continue
            value = values[index] if index < len(values) else ""
            index += 1
            conv = spec[-1]
            if conv == "b":
                if "\\" in value:
                    labels.add("hex" if "\\x" in value else "octal")
                pieces.append(decoders.escapes(value.encode("utf-8", "replace"), cap)[0])
            elif conv == "c":
                pieces.append(value[:1].encode("utf-8", "replace"))
            elif conv in "di":
                pieces.append(value.encode() if value.lstrip("-").isdigit() else b"0")
            else:
                pieces.append(value.encode("utf-8", "replace"))
        if index == 0:
            break
    out = b"".join(pieces)
    return out[:cap], tuple(sorted(labels)), len(out) > cap


def translate(argv: list[str], data: bytes, cap: int) -> tuple[bytes, str, bool] | None:
    """``tr SET1 SET2`` or ``tr -d SET``: output, label (``rot13``/``tr``), cut; None if unknown."""
    opts = [a for a in argv[1:] if a.startswith("-") and len(a) > 1]
    sets = [a for a in argv[1:] if not (a.startswith("-") and len(a) > 1)]
    if any("c" in o or "C" in o for o in opts) or not sets:
        return None
    if any("d" in o for o in opts):
        out, cut = decoders.tr(data, sets[0], None, cap)
        return out, "tr", cut
    if len(sets) < 2:
        return data[:cap], "", len(data) > cap
    out, cut = decoders.tr(data, sets[0], sets[1], cap)
    label = "rot13" if {sets[0], sets[1]} >= {"A-Za-z", "N-ZA-Mn-za-m"} else "tr"
    return out, label, cut


@dataclass(frozen=True, slots=True)
class Download:
    """What a downloader fetches and where it puts it."""

    urls: tuple[str, ...]
    names: tuple[str, ...]
    """The fetched files' names (the URLs' last path segments)."""
    to_stdout: bool
    targets: tuple[str, ...]
    """Where it saves them, when not to standard output."""


_TAKES = {"curl": "oHdAuxXeEmwTrbcCKDFzYyQtEUP", "wget": "OoPetTUaiwQBY"}
"""Short options that take a value, per downloader (the value is no URL)."""


def download(argv: list[str], name: str) -> Download | None:
    """``curl``/``wget``/``busybox wget``...: the URLs and where they go; None without any."""
    urls: list[str] = []
    output: str | None = None
    remote_name = False
    takes = _TAKES.get(name, "o")
    index = 1
    while index < len(argv):
        word = argv[index]
        index += 1
        if word.startswith("--"):
            key, eq, value = word.partition("=")
            if key in {"--output", "--output-document"}:
                if not eq and index < len(argv):
                    value, index = argv[index], index + 1
                output = value
            elif key == "--remote-name":
                remote_name = True
            continue
        if word.startswith("-") and len(word) > 1:
            for pos, letter in enumerate(word[1:], start=1):
                if letter == "O" and name == "curl":
                    remote_name = True
                elif letter in takes:
                    value = word[pos + 1 :]
                    if not value and index < len(argv):
                        value, index = argv[index], index + 1
                    if letter in ("o", "O"):
                        output = value
                    break
            continue
        if _URL.fullmatch(word) and len(urls) < MAX_URLS:
            urls.append(word)
    if not urls:
        return None
    found = tuple(urls)
    paths = [u.split("://", 1)[-1].partition("/")[2] for u in found]
    names = tuple(n for n in (basename(p) for p in paths) if n)
    to_stdout = output == "-" if output is not None else name == "curl" and not remote_name
    targets = (output,) if output else tuple(p or "index.html" for p in paths)
    return Download(found, names, to_stdout, () if to_stdout else targets)


def extract_into(argv: list[str]) -> str:
    """Where ``tar``/``unzip`` extract to (``-C DIR``); "" for the working directory."""
    into = ""
    for index, word in enumerate(argv[1:], start=1):
        if word in {"-C", "--directory", "-d"} and index + 1 < len(argv):
            into = argv[index + 1].rstrip("/")
        elif word.startswith("--directory="):
            into = word.partition("=")[2].rstrip("/")
    return into
