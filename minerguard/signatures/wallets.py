"""Wallet addresses known by their checksums, not only by their shape.

A regular expression finds what looks like an address; most things that look like one are not
(a random token, a hash, an id of the right length and alphabet). Every address format miners
are paid to carries a checksum, so a token whose checksum holds is an address with odds of
about four billion to one, and one whose checksum fails is not. The engine counts the first as
a ``wallet`` and the second only as ``wallet-shaped``.

Formats: CryptoNote base58 in 8-byte blocks with a Keccak-256 checksum (Monero standard,
integrated and subaddresses; also Wownero and Zephyr, the same encoding); base58check with
double SHA-256 (Bitcoin P2PKH/P2SH, Litecoin, Dogecoin, Ravencoin, Zcash transparent, Bitcoin
Cash legacy); bech32/bech32m (BIP-173/BIP-350: Bitcoin, Litecoin segwit, Dero); CashAddr
(Bitcoin Cash ``bitcoincash:q...``, Kaspa ``kaspa:q...``); Ethereum and
Ethereum Classic (EIP-55 mixed-case checksum where the case is mixed: an all-lower or
all-upper address carries no checksum, and is taken as written).

Keccak-256 here is the original Keccak submission (what Monero and Ethereum use), not the
SHA3-256 standard, which pads differently: pycryptodome's ``Crypto.Hash.keccak``.

Every function takes a token already cut to at most :data:`MAX_CHARS` characters and runs in
time linear in it; nothing here raises on any input.
"""

from __future__ import annotations

import functools
import hashlib
import re
from collections.abc import Callable

from Crypto.Hash import keccak

MAX_CHARS = 256
"""Longest token validated; no address format is longer."""

_B58 = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"
_B58_INDEX = {c: i for i, c in enumerate(_B58)}
_CN_BLOCK_SIZES = (0, 2, 3, 5, 6, 7, 9, 10, 11)
"""CryptoNote base58: characters that encode 0..8 bytes of a block."""

_BECH32 = "qpzry9x8gf2tvdw0s3jn54khce6mua7l"
_BECH32_INDEX = {c: i for i, c in enumerate(_BECH32)}
_BECH32_CONSTANTS = (1, 0x2BC830A3)  # BIP-173 bech32, BIP-350 bech32m

_PREFIX = re.compile(r"^[A-Za-z]{2,12}:(?!//)")
_CASHADDR_PREFIXES = ("bitcoincash:", "kaspa:")
"""Prefixes that are part of the address (its checksum covers them), not a coin label."""
_SUFFIX = re.compile(r"[.+#/?&]")


def keccak256(data: bytes) -> bytes:
    """Keccak-256 (the original, as Monero and Ethereum use it)."""
    digest = keccak.new(digest_bits=256)
    digest.update(data)
    return digest.digest()


def _b58_number(text: str) -> int | None:
    number = 0
    for char in text:
        value = _B58_INDEX.get(char)
        if value is None:
            return None
        number = number * 58 + value
    return number


def cryptonote_decode(text: str) -> bytes | None:
    """CryptoNote base58: 11-character blocks of 8 bytes, a shorter last block; None if not."""
    if not text or len(text) > MAX_CHARS:
        return None
    full, rest = divmod(len(text), 11)
    if rest not in _CN_BLOCK_SIZES:
        return None
    out = bytearray()
    for index in range(full + (1 if rest else 0)):
        block = text[index * 11 : index * 11 + 11]
        size = 8 if len(block) == 11 else _CN_BLOCK_SIZES.index(len(block))
        number = _b58_number(block)
        if number is None or number >= 1 << (8 * size):
            return None
        out += number.to_bytes(size, "big")
    return bytes(out)


def is_cryptonote(text: str) -> bool:
    """A CryptoNote address (Monero, Wownero, Zephyr...): Keccak-256 checksum of the payload."""
    data = cryptonote_decode(text)
    if data is None or len(data) < 69:  # varint prefix + spend key + view key + checksum
        return False
    return keccak256(data[:-4])[:4] == data[-4:]


def base58check_decode(text: str) -> bytes | None:
    """The payload of a base58check string whose double-SHA-256 checksum holds, else None."""
    if not text or len(text) > MAX_CHARS:
        return None
    number = _b58_number(text)
    if number is None:
        return None
    zeros = len(text) - len(text.lstrip("1"))
    body = number.to_bytes((number.bit_length() + 7) // 8, "big") if number else b""
    data = b"\0" * zeros + body
    if len(data) < 5:
        return None
    payload, check = data[:-4], data[-4:]
    if hashlib.sha256(hashlib.sha256(payload).digest()).digest()[:4] != check:
        return None
    return payload


_BASE58CHECK_VERSIONS: dict[str, frozenset[bytes]] = {
    "bitcoin": frozenset({b"\x00", b"\x05"}),  # P2PKH 1..., P2SH 3...
    "bitcoin-cash": frozenset({b"\x00", b"\x05"}),  # legacy format
    "litecoin": frozenset({b"\x30", b"\x32", b"\x05"}),  # L..., M..., 3...
    "dogecoin": frozenset({b"\x1e", b"\x16"}),  # D..., 9/A...
    "ravencoin": frozenset({b"\x3c", b"\x7a"}),  # R..., r...
    "zcash": frozenset({b"\x1c\xb8", b"\x1c\xbd"}),  # t1..., t3...
}


def _base58check(coin: str) -> Callable[[str], bool]:
    versions = _BASE58CHECK_VERSIONS[coin]

    def valid(text: str) -> bool:
        payload = base58check_decode(text)
        if payload is None:
            return False
        return any(payload.startswith(v) and len(payload) == len(v) + 20 for v in versions)

    valid.__doc__ = f"A {coin} base58check address of a known version."
    return valid


_GENERATOR = (0x3B6A57B2, 0x26508E6D, 0x1EA119FA, 0x3D4233DD, 0x2A1462B3)
_POLYMOD_TABLE = tuple(
    functools.reduce(lambda acc, bit: acc ^ (_GENERATOR[bit] if top >> bit & 1 else 0), range(5), 0)
    for top in range(32)
)
"""BIP-173's generator XORs for each value of the checksum's top five bits, precomputed."""


def _polymod(values: list[int]) -> int:
    check = 1
    for value in values:
        check = (check & 0x1FFFFFF) << 5 ^ value ^ _POLYMOD_TABLE[check >> 25]
    return check


def bech32_hrp(text: str) -> str | None:
    """The human-readable part of a bech32 or bech32m string whose checksum holds, else None.

    Case-insensitive as BIP-173 says, but never mixed case.
    """
    if len(text) > MAX_CHARS or (text.lower() != text and text.upper() != text):
        return None
    text = text.lower()
    hrp, sep, data = text.rpartition("1")
    if not sep or not hrp or len(data) < 6 or any(ord(c) < 33 or ord(c) > 126 for c in hrp):
        return None
    values = [_BECH32_INDEX.get(c, -1) for c in data]
    if -1 in values:
        return None
    expanded = [ord(c) >> 5 for c in hrp] + [0] + [ord(c) & 31 for c in hrp]
    return hrp if _polymod(expanded + values) in _BECH32_CONSTANTS else None


def _bech32(*hrps: str) -> Callable[[str], bool]:
    def valid(text: str) -> bool:
        return bech32_hrp(text) in hrps

    valid.__doc__ = f"A bech32/bech32m address with prefix {' or '.join(hrps)}."
    return valid


_CASHADDR_GENERATOR = (0x98F2BC8E61, 0x79B76D99E2, 0xF33E5FB3C4, 0xAE2EABE2A8, 0x1E4F43E470)


def cashaddr_prefix(text: str) -> str | None:
    """The prefix of a CashAddr string (``bitcoincash:``, ``kaspa:``) whose checksum holds.

    CashAddr is bech32's alphabet with a 40-bit checksum over the prefix's low five bits;
    Bitcoin Cash and Kaspa both use it. Never mixed case.
    """
    if len(text) > MAX_CHARS or (text.lower() != text and text.upper() != text):
        return None
    prefix, sep, data = text.lower().partition(":")
    if not sep or not prefix or len(data) < 8:
        return None
    values = [_BECH32_INDEX.get(c, -1) for c in data]
    if -1 in values:
        return None
    check = 1
    for value in [ord(c) & 31 for c in prefix] + [0] + values:
        top = check >> 35
        check = ((check & 0x07FFFFFFFF) << 5) ^ value
        for bit in range(5):
            if top >> bit & 1:
                check ^= _CASHADDR_GENERATOR[bit]
    return prefix if check == 1 else None


def _cashaddr(prefix: str) -> Callable[[str], bool]:
    def valid(text: str) -> bool:
        return cashaddr_prefix(text if ":" in text else f"{prefix}:{text}") == prefix

    valid.__doc__ = f"A CashAddr address with prefix {prefix}: (the prefix may be left out)."
    return valid


def is_ethereum(text: str) -> bool:
    """``0x`` + 40 hex digits; if the case is mixed, the EIP-55 checksum must hold."""
    if len(text) != 42 or text[:2] not in {"0x", "0X"}:
        return False
    digits = text[2:]
    if any(c not in "0123456789abcdefABCDEF" for c in digits):
        return False
    if digits == digits.lower() or digits == digits.upper():
        return True  # no checksum carried
    nibbles = keccak256(digits.lower().encode()).hex()
    return all(
        c.isdigit() or (c.isupper() == (int(n, 16) >= 8))
        for c, n in zip(digits, nibbles, strict=False)
    )


VALIDATORS: dict[str, Callable[[str], bool]] = {
    "monero": is_cryptonote,
    "bitcoin": _base58check("bitcoin"),
    "bitcoin-cash": _base58check("bitcoin-cash"),
    "litecoin": _base58check("litecoin"),
    "dogecoin": _base58check("dogecoin"),
    "ravencoin": _base58check("ravencoin"),
    "zcash": _base58check("zcash"),
    "bitcoin-bech32": _bech32("bc"),
    "litecoin-bech32": _bech32("ltc"),
    "dero": _bech32("dero", "deto", "deroi", "detoi"),
    "ethereum": is_ethereum,
    "bitcoin-cashaddr": _cashaddr("bitcoincash"),
    "kaspa": _cashaddr("kaspa"),
}
"""Address format (``Entry.checksum``) to its validator."""


def address(token: str) -> str:
    """The address in a miner's user field: ``xmr:ADDR.worker``, ``ADDR+diff``, ``ADDR/id``.

    Strips a coin prefix (``xmr:``, ``ethereum:``) and a worker, difficulty or payment-id
    suffix, and the delimiters a regular expression match may carry around it.
    """
    token = token[: MAX_CHARS * 2].strip(" \t\r\n\"'=,;:()[]{}<>")
    if not token.lower().startswith(_CASHADDR_PREFIXES):
        token = _PREFIX.sub("", token, count=1)
    return _SUFFIX.split(token, maxsplit=1)[0]


@functools.lru_cache(maxsize=4096)
def valid(checksum: str, token: str) -> bool:
    """Whether ``token`` (as matched, with prefix and suffix) is a valid ``checksum`` address.

    Remembered: the same wallet recurs across a workload's pods and reviews, and each check
    costs a hash and a base conversion.
    """
    check = VALIDATORS.get(checksum)
    if check is None:
        return False
    core = address(token)
    return bool(core) and len(core) <= MAX_CHARS and check(core)
