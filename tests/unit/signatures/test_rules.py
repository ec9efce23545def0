"""Combination rules and caps are bundle data; the engine only sums.

A rule fires when all of ``all_of`` and (if given) at least one of ``any_of`` are present,
names being signal names or entry ids; it adds its weight once, after the capped per-signal
sum, and shows as a signal of its own so a reason says which combination decided.
"""

from pathlib import Path

import pytest

from minerguard import cli
from minerguard.errors import BundleError
from minerguard.signatures import bundle, engine
from minerguard.signatures.bundle import Entry, Kind, Rule, Scoring, SignalCap
from minerguard.signatures.engine import Subject

README = Path(__file__).resolve().parents[3] / "README.md"


def entry(kind: Kind, value: str, weight: float, ident: str, signal: str | None = None) -> Entry:
    return Entry(id=ident, kind=kind, value=value, weight=weight, source="test", signal=signal)


SIGNALS = (
    SignalCap(name="miner-binary", cap=0.6, why="t"),
    SignalCap(name="pool-port", cap=0.4, why="t"),
    SignalCap(name="miner-env", cap=0.25, why="t"),
    SignalCap(name="dropper", cap=0.3, why="t"),
)


def compiled(*rules: Rule) -> engine.Engine:
    return engine.compile_entries(
        [
            entry(Kind.BINARY, "xmrig", 0.5, "binary/xmrig"),
            entry(Kind.POOL_PORT, "3333", 0.4, "pool_port/3333"),
            entry(Kind.ENV_NAME, "wallet", 0.25, "env/wallet"),
            entry(Kind.BINARY, "fetcher", 0.3, "dropper/fetcher", signal="dropper"),
        ],
        Scoring(signals=SIGNALS, rules=rules),
    )


def rule(
    ident: str, weight: float, all_of: tuple[str, ...] = (), any_of: tuple[str, ...] = ()
) -> Rule:
    return Rule(id=ident, all_of=all_of, any_of=any_of, weight=weight, why="w", source="s")


def run(eng: engine.Engine, *argv: str, env: tuple[tuple[str, str], ...] = ()) -> engine.Verdict:
    return eng.evaluate(Subject(argv=argv, env=env))


def test_without_rules_the_score_is_the_capped_sum() -> None:
    verdict = run(compiled(), "xmrig", "--listen", "10.0.0.1:3333")
    assert verdict.score == pytest.approx(0.9)
    assert not verdict.matched


def test_a_rule_adds_its_weight_when_all_of_its_signals_are_present() -> None:
    eng = compiled(rule("rule/binary-and-port", 0.2, all_of=("miner-binary", "pool-port")))
    verdict = run(eng, "xmrig", "--listen", "10.0.0.1:3333")
    assert verdict.score == pytest.approx(1.1)
    fired = [s for s in verdict.signals if s.name == "rule/binary-and-port"]
    assert len(fired) == 1
    assert fired[0].where == "combination"
    assert "miner-binary + pool-port" in fired[0].detail
    assert not run(eng, "xmrig").signals[0].name.startswith("rule/")


def test_any_of_needs_one_of_its_names_besides_all_of() -> None:
    eng = compiled(
        rule("rule/dropper-plus", 0.7, all_of=("dropper",), any_of=("pool-port", "miner-env"))
    )
    assert run(eng, "fetcher").score == pytest.approx(0.3)
    assert run(eng, "fetcher", "10.0.0.1:3333").matched
    assert run(eng, "fetcher", env=(("WALLET", "x"),)).matched


def test_a_rule_names_an_entry_id_as_well_as_a_signal() -> None:
    eng = compiled(rule("rule/that-binary", 0.5, all_of=("binary/xmrig", "pool-port")))
    assert run(eng, "xmrig", "10.0.0.1:3333").matched


def test_a_rule_adds_once_however_many_hits_its_signals_have() -> None:
    eng = compiled(rule("rule/port", 0.1, any_of=("pool-port",)))
    assert run(eng, "a", "10.0.0.1:3333", "10.0.0.2:3333").score == pytest.approx(0.5)


def test_a_later_rule_can_build_on_an_earlier_one() -> None:
    eng = compiled(
        rule("rule/first", 0.1, all_of=("miner-binary",)),
        rule("rule/second", 0.5, all_of=("rule/first", "pool-port")),
    )
    assert run(eng, "xmrig", "10.0.0.1:3333").score == pytest.approx(1.5)


BASE = """
version: "1"
signatures:
  - {id: b, kind: binary, value: x, weight: 0.5, source: s}
scoring:
  signals:
    - {name: miner-binary, cap: 0.6, why: w}
"""


@pytest.mark.parametrize(
    ("extra", "error"),
    [
        (
            "  rules:\n    - {id: rule/a, all_of: [nosuch], weight: 0.5, why: w, source: s}\n",
            "nosuch",
        ),
        ("  rules:\n    - {id: rule/a, weight: 0.5, why: w, source: s}\n", "all_of or any_of"),
        ("  rules:\n    - {id: a, all_of: [b], weight: 0.5, why: w, source: s}\n", "rule/"),
        ("  rules:\n    - {id: rule/a, all_of: [b], weight: 2, why: w, source: s}\n", "less than"),
    ],
)
def test_a_malformed_rule_is_refused_when_the_bundle_loads(extra: str, error: str) -> None:
    with pytest.raises(BundleError, match=error):
        bundle.parse(BASE + extra, "test.yaml")


def test_an_entry_naming_a_signal_the_table_lacks_is_refused() -> None:
    text = BASE.replace("source: s}", "source: s, signal: nosuch}")
    with pytest.raises(BundleError, match="nosuch"):
        bundle.parse(text, "test.yaml")


def test_the_builtin_rules_parse_and_name_known_signals() -> None:
    loaded = bundle.builtin()
    assert any(r.id == "rule/classic-shape" for r in loaded.scoring.rules)
    assert all(r.source.strip() and r.why.strip() for r in loaded.scoring.rules)


def test_the_scoring_table_has_a_row_for_every_signal_and_rule() -> None:
    loaded = bundle.builtin()
    table = bundle.scoring_table(loaded)
    for signal in loaded.scoring.signals:
        assert f"| `{signal.name}` |" in table
    for each in loaded.scoring.rules:
        assert f"| `{each.id}`" in table


def test_minerguard_signatures_prints_the_table(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["signatures", "--table"]) == 0
    assert bundle.scoring_table(bundle.builtin()) in capsys.readouterr().out


def test_the_readme_scoring_table_is_the_bundles() -> None:
    """The README shows ``minerguard signatures --table`` between its two markers."""
    text = README.read_text()
    begin, end = "<!-- scoring-table:begin -->\n", "<!-- scoring-table:end -->"
    assert begin in text, "README lacks the scoring table markers"
    assert end in text, "README lacks the scoring table markers"
    shown = text.split(begin, 1)[1].split(end, 1)[0]
    assert shown.strip() == bundle.scoring_table(bundle.builtin()).strip(), (
        "README's scoring table drifted from the bundle: paste `minerguard signatures --table`"
    )
