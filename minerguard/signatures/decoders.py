"""Bounded decoders for what shell scripts and one-liners use to hide a command line.

Each takes the bytes to decode and a cap on the bytes it may produce, and returns what it
produced and whether it stopped at the cap (``cut``): a payload that decodes to more than the
cap is not decoded further, and the caller decides what a cut decoding means. None of them
raises on malformed input (undecodable input yields nothing), and each runs in time linear
in its input plus the cap: decompressors are driven with ``max_length`` so a zip bomb costs
no more than the cap.
"""

from __future__ import annotations

import base64
import binascii
import bz2
import lzma
import re
import zlib

LZMA_MEMLIMIT = 64 << 20
"""Most memory an xz/lzma stream may ask for (its dictionary): a crafted header cannot
make the decoder allocate more."""

_NOT_BASE64 = re.compile(rb"[^A-Za-z0-9+/_-]++")
_NOT_HEX = re.compile(rb"[^0-9A-Fa-f]++")
_ESCAPE = re.compile(
    rb"\\(x[0-9A-Fa-f]{1,2}|u[0-9A-Fa-f]{1,4}|U[0-9A-Fa-f]{1,8}|[0-7]{1,3}|.)", re.DOTALL
)
_ALL_HEX = re.compile(rb"(?:\\x[0-9A-Fa-f]{2})++")
_SIMPLE = {
    b"a": b"\a", b"b": b"\b", b"e": b"\x1b", b"E": b"\x1b", b"f": b"\f", b"n": b"\n",
    b"r": b"\r", b"t": b"\t", b"v": b"\v", b"\\": b"\\", b"'": b"'", b'"': b'"', b"?": b"?",
}  # fmt: skip
_ROT13 = bytes.maketrans(
    b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz",
    b"NOPQRSTUVWXYZABCDEFGHIJKLMnopqrstuvwxyzabcdefghijklm",
)

Decoded = tuple[bytes, bool]
"""What a decoder produced, and whether it stopped at its cap."""


def base64_decode(data: bytes, cap: int) -> Decoded:
    """Base64 (standard or URL-safe alphabet, padding optional, junk between ignored)."""
    blob = _NOT_BASE64.sub(b"", data)
    keep = (max(cap, 0) // 3 + 1) * 4
    cut = len(blob) > keep
    blob = blob[:keep]
    blob = blob[: len(blob) - (len(blob) % 4 == 1)]
    blob += b"=" * (-len(blob) % 4)
    try:
        out = base64.b64decode(blob.replace(b"-", b"+").replace(b"_", b"/"))
    except (binascii.Error, ValueError):
        return b"", False
    return out[:cap], cut or len(out) > cap


def base32_decode(data: bytes, cap: int) -> Decoded:
    """Base32 (``base32 -d``)."""
    blob = re.sub(rb"[^A-Z2-7]++", b"", data.upper())
    keep = (max(cap, 0) // 5 + 1) * 8
    cut = len(blob) > keep
    blob = blob[:keep]
    blob = blob[: len(blob) - len(blob) % 8]
    try:
        out = base64.b32decode(blob)
    except (binascii.Error, ValueError):
        return b"", False
    return out[:cap], cut or len(out) > cap


def hex_decode(data: bytes, cap: int) -> Decoded:
    """Plain hex (``xxd -r -p``, ``bytes.fromhex``): non-hex characters are skipped."""
    blob = _NOT_HEX.sub(b"", data)
    keep = max(cap, 0) * 2
    cut = len(blob) > keep
    blob = blob[:keep]
    return binascii.unhexlify(blob[: len(blob) - len(blob) % 2]), cut


def escapes(data: bytes, cap: int) -> Decoded:
    r"""Backslash escapes as ``printf``, ``echo -e`` and ``$'...'`` read them.

    ``\xHH`` hex, ``\NNN`` octal (``\0NNN`` too), ``\uHHHH``, and the single-letter ones.
    """
    if b"\\" not in data:
        return data[:cap], len(data) > cap
    data = data[: max(cap, 0) * 10 + 10]  # no escape is longer than 10 bytes
    if _ALL_HEX.fullmatch(data):  # the usual payload: \x.. only, decoded without a callback
        out = binascii.unhexlify(data.replace(b"\\x", b""))
        return out[:cap], len(out) > cap

    def repl(match: re.Match[bytes]) -> bytes:
        code = match.group(1)
        lead = code[:1]
        if lead == b"x" and len(code) > 1:
            return bytes((int(code[1:], 16),))
        if lead in (b"u", b"U") and len(code) > 1:
            value = int(code[1:], 16)
            return chr(value).encode("utf-8", "replace") if value <= 0x10FFFF else b""
        if lead.isdigit() and lead < b"8":
            return bytes((int(code, 8) & 0xFF,))
        return _SIMPLE.get(code, b"\\" + code)

    out = _ESCAPE.sub(repl, data)
    return out[:cap], len(out) > cap


def rot13(data: bytes, cap: int) -> Decoded:
    """ROT13 (``codecs.decode(s, 'rot13')``, ``str_rot13``)."""
    return data[:cap].translate(_ROT13), len(data) > cap


def gunzip(data: bytes, cap: int) -> Decoded:
    """Gunzip: gzip or zlib, at most ``cap`` bytes (``gunzip``, ``zcat``, ``zlib.decompress``)."""
    try:
        inflater = zlib.decompressobj(wbits=47)
        out = inflater.decompress(data, max(cap, 1))
    except zlib.error:
        return b"", False
    return out[:cap], bool(inflater.unconsumed_tail) or len(out) > cap


def unxz(data: bytes, cap: int) -> Decoded:
    """Unxz: xz or lzma (``xz -d``, ``unxz``, ``lzma.decompress``), memory-limited, capped."""
    try:
        inflater = lzma.LZMADecompressor(memlimit=LZMA_MEMLIMIT)
        out = inflater.decompress(data, max_length=max(cap, 1))
    except lzma.LZMAError:
        return b"", False
    return out[:cap], (not inflater.eof and not inflater.needs_input) or len(out) > cap


def bunzip2(data: bytes, cap: int) -> Decoded:
    """bzip2 (``bzip2 -d``, ``bzcat``), capped."""
    try:
        inflater = bz2.BZ2Decompressor()
        out = inflater.decompress(data, max_length=max(cap, 1))
    except (OSError, ValueError):
        return b"", False
    return out[:cap], (not inflater.eof and not inflater.needs_input) or len(out) > cap


_CLASSES = {
    "[:lower:]": "abcdefghijklmnopqrstuvwxyz",
    "[:upper:]": "ABCDEFGHIJKLMNOPQRSTUVWXYZ",
    "[:digit:]": "0123456789",
    "[:alpha:]": "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz",
    "[:alnum:]": "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz",
    "[:space:]": " \t\n\r\f\v",
}
MAX_TR_SET = 1024


def tr_set(spec: str) -> bytes:
    """A ``tr`` set: ranges (``a-z``), classes (``[:upper:]``), escapes; at most 1,024."""
    raw, _ = escapes(spec.encode("utf-8", "replace"), MAX_TR_SET * 4)
    text = raw.decode("latin-1")
    out: list[str] = []
    i, size = 0, 0
    while i < len(text) and size < MAX_TR_SET:
        for name, members in _CLASSES.items():
            if text.startswith(name, i):
                out.append(members)
                size += len(members)
                i += len(name)
                break
        else:
            if i + 2 < len(text) and text[i + 1] == "-" and text[i] <= text[i + 2]:
                span = "".join(map(chr, range(ord(text[i]), ord(text[i + 2]) + 1)))
                out.append(span[: MAX_TR_SET - size])
                size += len(span)
                i += 3
            else:
                out.append(text[i])
                size += 1
                i += 1
    return "".join(out)[:MAX_TR_SET].encode("latin-1", "replace")


def tr(data: bytes, set1: str, set2: str | None, cap: int) -> Decoded:
    """``tr SET1 SET2`` (translate) or, with ``set2`` None, ``tr -d SET1`` (delete)."""
    source = tr_set(set1)
    if set2 is None:
        out = data[: cap * 2].translate(None, source)
        return out[:cap], len(data) > cap * 2 or len(out) > cap
    target = tr_set(set2)
    if not source or not target:
        return data[:cap], len(data) > cap
    target = (target + target[-1:] * len(source))[: len(source)]
    mapping = bytearray(range(256))
    for old, new in zip(source, target, strict=True):
        mapping[old] = new
    return data[:cap].translate(bytes(mapping)), len(data) > cap


def reverse_lines(data: bytes, cap: int) -> Decoded:
    """``rev``: every line reversed, character by character."""
    text = data[:cap].decode("utf-8", "replace")
    out = "\n".join(line[::-1] for line in text.split("\n")).encode("utf-8", "replace")
    return out[:cap], len(data) > cap
