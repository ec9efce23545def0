"""Calibration: no single weak signal denies; a loopback stratum endpoint needs a second one.

The scoring rules are data (the bundle's ``scoring`` section). These tests hold that data to
its promise in two ways: from the table itself (every signal's cap and every rule that a
single signal could fire), and by running every built-in entry alone through the engine.
"""

import pytest
import re2

from minerguard.signatures import bundle, engine
from minerguard.signatures.bundle import Entry, Kind
from minerguard.signatures.engine import Subject

CONCLUSIVE = {
    "pool-url",
    "miner-image",
    "image-name",
    "image-typosquat",
    "argument-pattern",
    "miner-json-config",
}
"""The signals documented as deciding alone: a stratum URL to a remote host; an image a public
report names as a miner, a repository named after a miner, or a namespace imitating a
well-known publisher (the last two measured at 0 hits on the popular images); a policy author's
own argument pattern (their weight, their call); an xmrig-style JSON config (pools with a url,
donate-level). Adding one is a decision: this set changes with it."""

REAL_WALLETS = [
    "4AdUndXHHZ6cfufTMvppY6JwXNouMBzSkbLYfpAV5Usx3skxNgYeYTRj5UzqtReoS44qo9mtmXCqY45DJ852K5Jv2684Rge",
    "4LL9oSLmtpccfufTMvppY6JwXNouMBzSkbLYfpAV5Usx3skxNgYeYTRj5UzqtReoS44qo9mtmXCqY45DJ852K5Jv2bYXZKKQePHES9khPK",
    "888tNkZrPN6JsEgekjMnABU4TBzc2Dt29EPAvkRxbANsAnjyPbb3iQ1YBRk1UXcdRsiKc9dhwMVgN5S9cQUiyoogDavup3H",
    "1A1zP1eP5QGefi2DMPTfTL5SLmv7DivfNa",
    "bc1qw508d6qejxtdg4y5r3zarvary0c5xw7kv8f3t4",
    "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed",
    "RXissueAssetXXXXXXXXXXXXXXXXXhhZGt",
    "dero1qyhdlj6vz8ryudhcwlrmauhd9y25kwkw0artpmlp976c3dchsc3mqqgl0hr24",
    "LY1L6M6yG26b4sRkLv4BbkmHhPn8GR5fFm",
    "ltc1qfz2936a04m2h7t0srxftygjrq759auav7ndfd3",
    "DJgqgx1HcAu7Fk7aZNLRaSjFyzQQ1o2tXj",
    "t1NEaED2QeEYckpc3WGdQrn2yPV9ujwk5gr",
    # shapes without a real sample here (their checksum is not what is tested)
    "deroi1" + "q" * 70,
    "ZEPH" + "2" * 95,
    "Wo" + "2" * 95,
    "kaspa:qqdwrqfn6n0hf0gsycrqqmv8z7x6s0wgh4x6kat6nzgyksf525w0ups70mrz0",
    "bitcoincash:qpm2qsznhks23z7629mms6s4cwef74vcwvy22gdx6a",
]
ARGUMENT_SAMPLES = {
    "argument/pool-endpoint-option": ("./app", "-o", "10.0.0.1:80"),
    "argument/masquerade-kernel-thread": ("/usr/sbin/bioset",),
    "argument/masquerade-daemon-in-writable-path": ("/dev/shm/sshd",),
    "argument/monerod-start-mining": ("monerod", "start_mining", "4"),
    "argument/executable-in-hidden-or-scratch-path": ("/tmp/.cache/app",),
}
MADE_UP_MONERO = (
    "4ALoCDhmXVcmkhzBuTo39uHk8mUaGNBnmhKHxaNSCbULiEkg2SF3zvY5F74N2SWGDYD"
    "jGzSNHsfLJ2vMNtPEtMWfAcQRtee"
)
"""Monero-shaped, checksum invalid (corpus case 02-cyrillic-xmrig's login)."""


def signal_of(entry: Entry) -> str:
    return entry.signal or bundle.KIND_SIGNALS[entry.kind]


def alone(entry: Entry) -> Subject | None:
    """A subject that carries ``entry``'s indicator and nothing else."""
    value = entry.value
    match entry.kind:
        case Kind.BINARY | Kind.CAMPAIGN_TOOL:
            return Subject(argv=(value,))
        case Kind.OPTION:
            return Subject(argv=("app", value))
        case Kind.ALGORITHM:
            return Subject(argv=("app", "--algo", value))
        case Kind.IMAGE:
            return Subject(argv=(), image=value)
        case Kind.POOL_HOST | Kind.CAMPAIGN_HOST:
            return Subject(argv=("app", "--host", value))
        case Kind.POOL_PORT:
            return Subject(argv=("app", "--listen", f"10.0.0.1:{value}"))
        case Kind.URL_SCHEME:
            return Subject(argv=("app", f"{value}://10.0.0.1:1"))
        case Kind.WALLET:
            pattern = re2.compile(f"^(?:{value})$")
            sample = next(w for w in REAL_WALLETS if pattern.search(w))
            return Subject(argv=("app", sample))
        case Kind.ENV_NAME:
            return Subject(argv=("app",), env=((value, "1"),))
        case Kind.USER_AGENT:
            return Subject(argv=("app", f"{value}6.21.0"))
        case Kind.TEXT:
            return Subject(argv=("app",), texts=(value,))
        case Kind.ARGUMENT:
            return Subject(argv=ARGUMENT_SAMPLES[entry.id])
    return None


@pytest.fixture(scope="module")
def builtin() -> engine.Engine:
    return engine.compile_entries(bundle.builtin().signatures)


def test_the_conclusive_signals_are_the_documented_ones() -> None:
    marked = {s.name for s in bundle.builtin().scoring.signals if s.conclusive}
    assert marked == CONCLUSIVE


def test_from_the_table_no_single_weak_signal_reaches_the_threshold() -> None:
    """A lone hit weighs its entry's weight (or the cap, for a heuristic), under the cap; a
    rule must never fire on one signal alone."""
    loaded = bundle.builtin()
    entries: dict[str, list[Entry]] = {}
    for entry in loaded.signatures:
        entries.setdefault(signal_of(entry), []).append(entry)
    for signal in loaded.scoring.signals:
        if signal.conclusive:
            continue
        hits = [(e.id, min(e.weight, signal.cap)) for e in entries.get(signal.name, [])]
        for ident, weight in hits or [(signal.name, signal.cap)]:
            present = {signal.name, ident}
            fired = sum(r.weight for r in loaded.scoring.rules if r.fires(present))
            assert weight + fired < engine.THRESHOLD, (signal.name, ident)


def test_every_signal_the_engine_emits_is_in_the_table(builtin: engine.Engine) -> None:
    table = {s.name for s in bundle.builtin().scoring.signals}
    emitted = {signal_of(e) for e in bundle.builtin().signatures}
    emitted |= {
        engine.WALLET_SHAPED,
        engine.POOL_URL_LOOPBACK,
        engine.IMAGE_NAME,
        engine.IMAGE_TYPOSQUAT,
    }
    assert emitted <= table


ENGINE_ENTRIES = [e for e in bundle.builtin().signatures if e.kind is not Kind.CONTENT]
"""Content entries are executables' bytes: the agent's content scanner judges those."""


@pytest.mark.parametrize("entry", ENGINE_ENTRIES, ids=lambda e: e.id)
def test_every_builtin_entry_alone_is_judged_as_its_signal_says(
    builtin: engine.Engine, entry: Entry
) -> None:
    subject = alone(entry)
    assert subject is not None
    verdict = builtin.evaluate(subject)
    conclusive = signal_of(entry) in CONCLUSIVE
    assert verdict.matched == conclusive, (verdict.score, verdict.summary())


@pytest.mark.parametrize(
    "argv",
    [
        ("pytest", "tests/", "--pool-url", "stratum+tcp://127.0.0.1:3333"),
        ("node", "test/stratum.js", "stratum+tcp://localhost:3333"),
        ("go", "test", "./...", "-args", "-o", "stratum+tcp://127.0.0.1:3333"),
        ("./pool-tests", "--upstream=stratum+ssl://[::1]:3334"),
        ("cargo", "test", "--", "--pool", "stratum+tcp://127.0.0.1:14444"),
    ],
)
def test_a_loopback_stratum_endpoint_alone_is_not_a_miner(
    builtin: engine.Engine, argv: tuple[str, ...]
) -> None:
    verdict = builtin.evaluate(Subject(argv=argv))
    assert "pool-url-loopback" in {s.name for s in verdict.signals}
    assert not verdict.matched, verdict.summary()


@pytest.mark.parametrize(
    "second",
    [
        ("-u", REAL_WALLETS[0]),
        ("--donate-level=1",),
        ("--algo", "rx/0"),
    ],
)
def test_a_loopback_stratum_endpoint_with_a_second_signal_is_a_miner(
    builtin: engine.Engine, second: tuple[str, ...]
) -> None:
    argv = ("./worker", "-o", "stratum+tcp://127.0.0.1:3333", *second)
    assert builtin.evaluate(Subject(argv=argv)).matched


def test_a_miner_binary_behind_a_local_proxy_is_still_a_miner(builtin: engine.Engine) -> None:
    assert builtin.evaluate(Subject(argv=("xmrig", "-o", "127.0.0.1:3333"))).score < 1
    assert builtin.evaluate(
        Subject(argv=("xmrig", "-o", "stratum+tcp://127.0.0.1:3333", "--donate-level", "0"))
    ).matched


def test_a_remote_stratum_url_still_decides_alone(builtin: engine.Engine) -> None:
    assert builtin.evaluate(Subject(argv=("app", "stratum+tcp://10.1.2.3:1"))).matched
    assert builtin.evaluate(Subject(argv=("app", "stratum+tcp://127.0.0.1.nip.io:1"))).matched


@pytest.mark.parametrize(
    ("argv", "denied"),
    [
        (("/root/.config/cron/perfcc", "-c", "/root/.config/cron/config.json"), True),
        (("/tmp/.x/xmrig", "--threads", "2"), True),
        (("/usr/bin/perfcc",), False),  # a campaign's name alone
        (("/tmp/build/run-tests", "--fast"), False),  # a build job's scratch directory
        (("/home/ci/.local/bin/poetry", "install"), False),
    ],
)
def test_a_known_name_run_from_a_hidden_or_scratch_path_is_two_pieces_of_evidence(
    builtin: engine.Engine, argv: tuple[str, ...], denied: bool
) -> None:
    verdict = builtin.evaluate(Subject(argv=argv))
    assert verdict.matched == denied, verdict.summary()


@pytest.mark.parametrize(
    ("argv", "denied"),
    [
        # xmrig renamed, a pool's domain, a Monero-shaped login whose checksum fails: the shape
        (
            (
                "/usr/local/bin/worker",
                "--url",
                "pool.hashvault.pro:443",
                "--user",
                MADE_UP_MONERO,
                "--tls",
            ),
            True,
        ),
        # a stats exporter reading the same pool's API: the URL, no login, no miner option
        (("/usr/bin/pool-exporter", "--url", "https://api.hashvault.pro:443/v3/stats"), False),
    ],
)
def test_the_classic_shape_pointed_at_a_known_pool_needs_a_login_beside_it(
    builtin: engine.Engine, argv: tuple[str, ...], denied: bool
) -> None:
    verdict = builtin.evaluate(Subject(argv=argv))
    assert verdict.matched == denied, (verdict.score, verdict.summary())
