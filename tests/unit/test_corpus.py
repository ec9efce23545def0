"""The labelled corpus: every malicious case denied, no benign case denied or warned.

The cases and their annotations are described in :mod:`tests.corpus`. Each case is decided as
``minerguard scan FILE`` decides it, under the embedded default policy and its system view over
``kube-system`` (:func:`tests.corpus.admission_policies`, as admission applies them).

The held-out part (``tests/data/corpus/heldout``) measures whether detection generalises, so
nobody tunes the engine on it, and a test cannot demand all of it: a miss there is fixed by a
mechanism found elsewhere, or stays a measured miss. Its benign side is asserted like the rest
(no false positive anywhere), its recall against a floor that only ever rises
(``HELDOUT_RECALL_FLOOR``); ``bench/detection.py`` reports it separately, misses by name.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests import corpus

CASES = corpus.cases()
MALICIOUS = [case for case in CASES if case.malicious]
BENIGN = [case for case in CASES if not case.malicious]
TUNED = [case for case in MALICIOUS if not case.heldout]
HELDOUT = [case for case in MALICIOUS if case.heldout]

HELDOUT_RECALL_FLOOR = 0.9
"""Held-out recall when the part was fixed: 33/36 (2026-12-02; the misses are two image-only
manifests whose images the offline decision cannot read and a pre-0.13 ``bitcoind -gen``).
Raise it as the engine improves; never lower it."""


_DECIDED: dict[Path, corpus.Outcome] = {}


def outcome(path: Path) -> corpus.Outcome:
    """Each file is decided once per run, however many tests ask."""
    if path not in _DECIDED:
        _DECIDED[path] = corpus.decide_file(path, corpus.admission_policies())
    return _DECIDED[path]


def test_the_corpus_is_big_enough_and_every_case_says_where_it_comes_from() -> None:
    assert len(MALICIOUS) >= 150
    assert len(BENIGN) >= 150
    for case in CASES:
        annotations = case.annotations
        assert annotations.get(corpus.PREFIX + "source", "").strip(), case.name
        assert annotations.get(corpus.PREFIX + "why", "").strip(), case.name


def test_every_case_names_a_known_technique_class_and_a_difficulty() -> None:
    unknown = [
        f"{case.name}: {case.technique}/{case.difficulty}"
        for case in CASES
        if case.technique not in corpus.TECHNIQUES or case.difficulty not in corpus.DIFFICULTIES
    ]
    assert unknown == []


def test_about_a_fifth_of_the_corpus_is_held_out_on_both_sides() -> None:
    for side in (MALICIOUS, BENIGN):
        held = sum(case.heldout for case in side)
        assert 20 <= held <= len(side) // 3


def test_detection_rate_and_false_positives() -> None:
    missed = [case.name for case in TUNED if not outcome(case.path).denied]
    flagged = [case.name for case in BENIGN if outcome(case.path).flagged]
    detected = len(TUNED) - len(missed)
    print(
        f"\ncorpus: detected {detected}/{len(TUNED)} malicious "
        f"({100 * detected / len(TUNED):.1f}%), "
        f"false positives {len(flagged)}/{len(BENIGN)}"
    )
    assert missed == [], f"missed malicious cases: {missed}"
    assert flagged == [], f"false positives: {flagged}"


def test_held_out_recall_holds_its_floor() -> None:
    missed = [case.name for case in HELDOUT if not outcome(case.path).denied]
    recall = 1 - len(missed) / len(HELDOUT)
    print(f"\nheld-out: detected {len(HELDOUT) - len(missed)}/{len(HELDOUT)}; missed {missed}")
    assert recall >= HELDOUT_RECALL_FLOOR, f"held-out recall {recall:.3f}; missed {missed}"


@pytest.mark.parametrize("case", TUNED, ids=lambda case: case.name)
def test_each_malicious_case_is_denied_with_reasons(case: corpus.Case) -> None:
    decided = outcome(case.path)
    assert decided.denied, decided.errors
    assert all(message.strip() for message in decided.messages)


@pytest.mark.parametrize("case", BENIGN, ids=lambda case: case.name)
def test_each_benign_case_is_allowed_silently(case: corpus.Case) -> None:
    decided = outcome(case.path)
    assert not decided.flagged, decided.messages
