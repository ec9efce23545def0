import base64

import pytest

from minerguard.signatures import engine
from minerguard.signatures.bundle import Entry, Kind
from minerguard.signatures.engine import Subject

WALLET = "4" + "A" + "1" * 93  # Monero-shaped: 95 base58 characters starting 4[0-9AB]


def entry(kind: Kind, value: str, weight: float, ident: str | None = None) -> Entry:
    return Entry(
        id=ident or f"{kind}/{value}", kind=kind, value=value, weight=weight, source="test"
    )


@pytest.fixture(scope="module")
def eng() -> engine.Engine:
    return engine.compile_entries(
        [
            entry(Kind.BINARY, "xmrig", 0.6),
            entry(Kind.OPTION, "--donate-level", 0.5),
            entry(Kind.OPTION, "--randomx-mode", 0.5),
            entry(Kind.URL_SCHEME, "stratum+tcp", 1.0),
            entry(Kind.POOL_HOST, "supportxmr.com", 0.6),
            entry(Kind.POOL_PORT, "3333", 0.4),
            entry(Kind.WALLET, r"4[0-9AB][1-9A-HJ-NP-Za-km-z]{93}", 0.5),
            entry(Kind.ALGORITHM, "rx/0", 0.5),
            entry(Kind.ENV_NAME, "wallet", 0.25),
            entry(Kind.IMAGE, "docker.io/metal3d/xmrig", 1.0),
            entry(Kind.USER_AGENT, "xmrig/", 0.5),
            entry(Kind.TEXT, '"donate-level"', 0.5),
        ]
    )


def score(eng: engine.Engine, *argv: str, **kw: object) -> engine.Verdict:
    return eng.evaluate(Subject(argv=argv, **kw))  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "argv",
    [
        ("xmrig",),
        ("app", WALLET),
        ("app", "--listen", "10.0.0.1:3333"),
        ("php-fpm:", "pool", "www"),
        ("curl", "https://supportxmr.com/api/miner/stats"),
        ("grep", "-r", "xmrig", "/var/log"),
    ],
)
def test_a_single_weak_signal_never_reaches_the_threshold(
    eng: engine.Engine, argv: tuple[str, ...]
) -> None:
    assert not score(eng, *argv).matched


def test_a_stratum_url_alone_decides(eng: engine.Engine) -> None:
    verdict = score(eng, "worker", "-o", "stratum+tcp://10.1.2.3:1")
    assert verdict.matched
    assert [s.name for s in verdict.signals] == ["pool-url"]


def test_a_pool_host_with_a_pool_port_decides(eng: engine.Engine) -> None:
    assert score(eng, "app", "--upstream", "gulf.pool.supportxmr.com:3333").matched
    assert not score(eng, "app", "--upstream", "gulf.pool.supportxmr.com:443").matched


def test_a_miner_binary_with_a_wallet_decides(eng: engine.Engine) -> None:
    verdict = score(eng, "/opt/xmrig", "-u", WALLET)
    assert verdict.matched
    assert {s.name for s in verdict.signals} == {"miner-binary", "wallet"}


def test_two_miner_options_decide_even_when_the_binary_is_renamed(eng: engine.Engine) -> None:
    assert score(eng, "./kworkerd", "--donate-level=1", "--randomx-mode", "fast").matched


def test_a_known_miner_image_decides(eng: engine.Engine) -> None:
    assert eng.evaluate(Subject(argv=(), image="metal3d/xmrig:latest")).matched


def test_evidence_of_one_kind_is_capped(eng: engine.Engine) -> None:
    # Many wallets are still only wallet evidence.
    verdict = score(eng, "app", WALLET, WALLET[:-1] + "2", WALLET[:-1] + "3")
    assert verdict.score == 0.5


@pytest.mark.parametrize(
    "argv",
    [
        ("xmrіg", "-u", WALLET),  # Cyrillic i
        ("ＸＭＲＩＧ", "-u", WALLET),  # fullwidth
        ("XmRiG", "-u", WALLET),
        ("x\u200bmrig", "-u", WALLET),  # zero-width space
        ("nohup", "nice", "-n", "19", "timeout", "600", "xmrig", "-u", WALLET),
        ("sh", "-c", f"cd /tmp && ./xmrig -u '{WALLET}' >/dev/null 2>&1 &"),
        ("bash", "-lc", f'exec "/tmp/.x/xmrig" -u "{WALLET}"'),
    ],
)
def test_evasions_are_normalised_away(eng: engine.Engine, argv: tuple[str, ...]) -> None:
    assert score(eng, *argv).matched


def test_base64_encoded_commands_are_decoded(eng: engine.Engine) -> None:
    payload = base64.b64encode(b"./x -o stratum+tcp://h.example:1 --donate-level 1").decode()
    verdict = score(eng, "sh", "-c", f"echo {payload} | base64 -d | sh")
    assert verdict.matched
    assert {s.where for s in verdict.signals} == {"command (sh -c, base64)"}


def test_env_only_configuration_is_seen(eng: engine.Engine) -> None:
    verdict = score(eng, "/entrypoint", env=(("WALLET", WALLET), ("POOL", "supportxmr.com:3333")))
    assert verdict.matched
    found = {s.where for s in verdict.signals if not s.name.startswith("rule/")}
    assert found == {"env WALLET", "env POOL"}


def test_config_file_text_is_seen(eng: engine.Engine) -> None:
    config = '{"pools": [{"url": "stratum+tcp://x.example:1"}], "donate-level": 1}'
    assert score(eng, "/usr/bin/app", "-c", "/etc/app.json", texts=(config,)).matched


def test_algorithm_counts_only_as_the_value_of_an_algorithm_option(eng: engine.Engine) -> None:
    assert {s.name for s in score(eng, "m", "-a", "rx/0").signals} == {"mining-algorithm"}
    assert {s.name for s in score(eng, "m", "--algo=rx/0").signals} == {"mining-algorithm"}
    assert score(eng, "ls", "rx/0").signals == ()


def test_the_executable_path_counts_as_the_binary(eng: engine.Engine) -> None:
    verdict = eng.evaluate(Subject(argv=("kworker/0:1",), executable="/tmp/xmrig"))
    assert [s.where for s in verdict.signals] == ["executable"]


def test_signals_say_where_they_were_found_and_why(eng: engine.Engine) -> None:
    verdict = score(eng, "sh", "-c", "xmrig -o supportxmr.com:3333")
    lines = [s.describe() for s in verdict.signals]
    assert "mining pool host 'supportxmr.com' (in command (sh -c))" in lines
    assert verdict.summary() == "miner-binary, pool-host, pool-port"  # weight, then name


def test_user_argument_patterns_are_case_insensitive_and_linear() -> None:
    eng = engine.compile_entries([entry(Kind.ARGUMENT, "(a+)+$", 1.0, "p")])
    hostile = "a" * 100_000 + "!"
    assert not eng.evaluate(Subject(argv=("x", hostile))).matched
    assert eng.evaluate(Subject(argv=("x", "A" * 30))).matched


@pytest.mark.parametrize("pattern", ["(a", r"(a)\1", "(?=x)", "x" * 5000])
def test_patterns_re2_cannot_run_are_refused_naming_the_entry(pattern: str) -> None:
    with pytest.raises(engine.PatternError) as err:
        engine.compile_entries([entry(Kind.ARGUMENT, pattern[:2048], 1.0, "spec.x[3]")])
    assert err.value.entry_id == "spec.x[3]"


def test_ten_thousand_patterns_compile_into_one_set_that_still_matches() -> None:
    entries = [entry(Kind.ARGUMENT, f"--flag{i}=[0-9]+x", 1.0, f"p{i}") for i in range(10_000)]
    eng = engine.compile_entries(entries)
    verdict = eng.evaluate(Subject(argv=("tool", "--flag9999=42x")))
    assert [s.signature for s in verdict.signals] == ["p9999"]


def test_a_one_megabyte_argument_is_handled(eng: engine.Engine) -> None:
    big = "A" * (1 << 20)
    assert not score(eng, "app", big).matched
    assert score(eng, "xmrig", big, "-u", WALLET).matched
