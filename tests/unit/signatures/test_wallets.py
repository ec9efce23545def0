"""Wallet checksums: real published addresses pass, their one-character twins fail.

Every address here is public: documentation examples, donation addresses and chain
parameters (each with where it is published). A "twin" changes one character to another of
the same alphabet, so it still matches the wallet's regular expression; only the checksum
tells the two apart, which is what keeps random tokens of the right shape from counting as
someone to be paid.
"""

import pytest

from minerguard.signatures import bundle, engine, wallets
from minerguard.signatures.engine import Subject

REAL: list[tuple[str, str, str]] = [
    # (format, address, where it is published)
    (
        "monero",
        "4AdUndXHHZ6cfufTMvppY6JwXNouMBzSkbLYfpAV5Usx3skxNgYeYTRj5UzqtReoS44qo9mtmXCqY45DJ852K5Jv2684Rge",
        "docs.getmonero.org/public-address/standard-address (standard address example)",
    ),
    (
        "monero",
        "4LL9oSLmtpccfufTMvppY6JwXNouMBzSkbLYfpAV5Usx3skxNgYeYTRj5UzqtReoS44qo9mtmXCqY45DJ852K5Jv2bYXZKKQePHES9khPK",
        "docs.getmonero.org/public-address/integrated-address (integrated address example)",
    ),
    (
        "monero",
        "888tNkZrPN6JsEgekjMnABU4TBzc2Dt29EPAvkRxbANsAnjyPbb3iQ1YBRk1UXcdRsiKc9dhwMVgN5S9cQUiyoogDavup3H",
        "getmonero.org/get-started/contributing (Monero General Fund, a subaddress)",
    ),
    (
        "monero",
        "87XWTP9tBECHXCwbyMK1KENoy4GeXkRviNzmhNc5Pvo5ExZ1QXjtRRyFeXPuHf7fNiS7KzBZNJeGweJhMbFB647171y66id",
        "monero-python test suite (official subaddress example)",
    ),
    ("bitcoin", "1A1zP1eP5QGefi2DMPTfTL5SLmv7DivfNa", "the genesis block's coinbase address"),
    ("bitcoin", "3J98t1WpEZ73CNmQviecrnyiWrnqRhWNLy", "en.bitcoin.it/wiki/Invoice_address (P2SH)"),
    (
        "bitcoin-bech32",
        "bc1qw508d6qejxtdg4y5r3zarvary0c5xw7kv8f3t4",
        "BIP-173 test vectors (P2WPKH, bech32)",
    ),
    (
        "bitcoin-bech32",
        "bc1p0xlxvlhemja6c4dqv22uapctqupfhlxm9h8z3k2e72q4k9hcz7vqzk5jj0",
        "BIP-350 test vectors (taproot, bech32m)",
    ),
    ("ethereum", "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed", "EIP-55 test vectors"),
    ("ethereum", "0xfB6916095ca1df60bB79Ce92cE3Ea74c37c5d359", "EIP-55 test vectors"),
    ("ethereum", "0xdbF03B407c01E7cD3CBea99509d93f8DDDC8C6FB", "EIP-55 test vectors"),
    (
        "ravencoin",
        "RXissueAssetXXXXXXXXXXXXXXXXXhhZGt",
        "RavenProject/Ravencoin src/chainparams.cpp (asset issue burn address)",
    ),
    (
        "ravencoin",
        "RXReissueAssetXXXXXXXXXXXXXXVEFAWu",
        "RavenProject/Ravencoin src/chainparams.cpp (asset reissue burn address)",
    ),
    (
        "dero",
        "dero1qyhdlj6vz8ryudhcwlrmauhd9y25kwkw0artpmlp976c3dchsc3mqqgl0hr24",
        "published astrominer/derohe example command lines",
    ),
    (
        "dero",
        "dero1qy2lgwd6px5d5jheyumav7dd2nmdwwlae8pmnu27jpezekyyk62mgqqjyazs8",
        "dero-am/astrobwt-miner start script (example wallet)",
    ),
    ("litecoin", "LY1L6M6yG26b4sRkLv4BbkmHhPn8GR5fFm", "coinwidget.com README (donations)"),
    ("litecoin", "MAtV7sbBnmuf2bxVUPgCprpmJ5xX6euBwe", "a published Litecoin donation address"),
    (
        "litecoin-bech32",
        "ltc1qfz2936a04m2h7t0srxftygjrq759auav7ndfd3",
        "a published Litecoin donation address (bech32)",
    ),
    ("dogecoin", "DJgqgx1HcAu7Fk7aZNLRaSjFyzQQ1o2tXj", "dogecache README (donations)"),
    ("zcash", "t1NEaED2QeEYckpc3WGdQrn2yPV9ujwk5gr", "a published Zcash donation address"),
    (
        "bitcoin-cashaddr",
        "bitcoincash:qpm2qsznhks23z7629mms6s4cwef74vcwvy22gdx6a",
        "the CashAddr specification's example (1BpEi6DfDAUFd7GtittLSdBeYJvcoaVggu)",
    ),
    (
        "kaspa",
        "kaspa:qqdwrqfn6n0hf0gsycrqqmv8z7x6s0wgh4x6kat6nzgyksf525w0ups70mrz0",
        "a published Kaspa donation address",
    ),
]

ALPHABETS = {
    "bech32": "qpzry9x8gf2tvdw0s3jn54khce6mua7l",
    "hex": "0123456789abcdef",
    "base58": "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz",
}


def twin(checksum: str, address: str) -> str:
    """The address with one character in its middle changed to another of its alphabet."""
    if checksum in {"bitcoin-bech32", "litecoin-bech32", "dero", "bitcoin-cashaddr", "kaspa"}:
        alphabet = ALPHABETS["bech32"]
    elif checksum == "ethereum":
        alphabet = ALPHABETS["hex"]
    else:
        alphabet = ALPHABETS["base58"]
    middle = len(address) // 2
    old = address[middle]
    lowered = old.lower() if checksum == "ethereum" else old
    new = alphabet[(alphabet.index(lowered) + 1) % len(alphabet)]
    if checksum == "ethereum" and old.isupper():
        new = new.upper()
    return address[:middle] + new + address[middle + 1 :]


@pytest.mark.parametrize(("checksum", "address", "where"), REAL, ids=lambda v: str(v)[:16])
def test_a_real_published_address_passes_its_checksum(
    checksum: str, address: str, where: str
) -> None:
    assert wallets.valid(checksum, address), where


@pytest.mark.parametrize(("checksum", "address", "where"), REAL, ids=lambda v: str(v)[:16])
def test_its_one_character_twin_fails_the_checksum(checksum: str, address: str, where: str) -> None:
    mutated = twin(checksum, address)
    assert mutated != address
    assert len(mutated) == len(address)
    assert not wallets.valid(checksum, mutated)


def test_keccak_is_the_original_keccak_not_sha3() -> None:
    # Keccak-256("") as Ethereum and Monero use it; SHA3-256("") is a7ffc6f8...
    assert wallets.keccak256(b"").hex() == (
        "c5d2460186f7233c927e7db2dcc703c0e500b653ca82273b7bfad8045d85a470"
    )


def test_an_ethereum_address_with_its_case_flipped_fails_eip55() -> None:
    address = "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed"
    assert not wallets.valid("ethereum", address[:-1] + "D")
    assert wallets.valid("ethereum", address.lower())  # all lower case carries no checksum
    assert wallets.valid("ethereum", "0x52908400098527886E0F7030069857D2E4169EE7")  # EIP-55, caps


@pytest.mark.parametrize(
    "token",
    [f"xmr:{REAL[0][1]}", f" {REAL[0][1]}.rig1", f"={REAL[0][1]}+50000 "],
)
def test_a_coin_prefix_or_a_worker_suffix_is_not_part_of_the_address(token: str) -> None:
    assert wallets.valid("monero", token)


@pytest.mark.parametrize(
    "token",
    [
        "",
        "4",
        "4" * 95,
        "R" * 34,
        "dero1" + "q" * 61,
        "0x" + "g" * 40,
        "bc1" + "1" * 40,
        "4" * 10000,
    ],
)
def test_malformed_or_huge_tokens_are_refused_without_raising(token: str) -> None:
    for checksum in wallets.VALIDATORS:
        assert not wallets.valid(checksum, token)


def test_every_builtin_wallet_format_names_a_validator() -> None:
    checksums = {e.checksum for e in bundle.builtin().signatures if e.checksum}
    assert checksums <= set(wallets.VALIDATORS)
    assert {"monero", "bitcoin", "bitcoin-bech32", "ethereum", "ravencoin", "dero"} <= checksums


@pytest.fixture(scope="module")
def builtin() -> engine.Engine:
    return engine.compile_entries(bundle.builtin().signatures)


@pytest.mark.parametrize(("checksum", "address", "where"), REAL, ids=lambda v: str(v)[:16])
def test_the_engine_counts_a_valid_address_as_a_wallet_and_its_twin_as_wallet_shaped(
    builtin: engine.Engine, checksum: str, address: str, where: str
) -> None:
    real = builtin.evaluate(Subject(argv=("app", "--user", address)))
    assert "wallet" in {s.name for s in real.signals}, where
    fake = builtin.evaluate(Subject(argv=("app", "--user", twin(checksum, address))))
    names = {s.name for s in fake.signals}
    assert "wallet" not in names
    assert "wallet-shaped" in names
    assert fake.score <= bundle.builtin().scoring.cap("wallet-shaped")


def test_random_tokens_of_a_wallets_shape_are_not_wallets(builtin: engine.Engine) -> None:
    """Session ids, hashes and keys in base58 look like addresses; their checksums do not hold."""
    import random

    rng = random.Random(12)
    alphabet = ALPHABETS["base58"]
    for length, first in ((95, "4"), (95, "8"), (34, "R"), (34, "1"), (34, "3")):
        for _ in range(50):
            token = first + "".join(rng.choice(alphabet) for _ in range(length - 1))
            verdict = builtin.evaluate(Subject(argv=("app", "--token", token)))
            assert "wallet" not in {s.name for s in verdict.signals}, token
            assert verdict.score <= 0.1


def test_a_valid_wallet_later_in_the_command_is_found_after_shaped_ones(
    builtin: engine.Engine,
) -> None:
    real = REAL[0][1]
    shaped = [twin("monero", real)] * 3
    verdict = builtin.evaluate(Subject(argv=("app", *shaped, "-u", real)))
    assert "wallet" in {s.name for s in verdict.signals}


def test_padding_with_invalid_twins_cannot_hide_a_real_wallet(builtin: engine.Engine) -> None:
    """Past the checked budget the entry counts as a wallet: padding is no way around it."""
    real = REAL[0][1]
    padding = [real[:-4] + suffix for suffix in (f"{i:04d}".replace("0", "a") for i in range(100))]
    verdict = builtin.evaluate(Subject(argv=("app", *padding, "-u", real)))
    assert "wallet" in {s.name for s in verdict.signals}
