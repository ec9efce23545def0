"""The labelled corpus: every malicious case denied, no benign case denied or warned.

Each file under tests/data/corpus/{malicious,benign} is one Kubernetes object with its source
and the reason it is in the set (annotations ``corpus.minerguard.io/source`` and ``/why``).
"""

from pathlib import Path
from typing import Any

import pytest
import yaml

from minerguard import evaluate
from minerguard.compiled_policy import CompiledPolicy, default_policy

CORPUS = Path(__file__).resolve().parents[1] / "data" / "corpus"
MALICIOUS = sorted((CORPUS / "malicious").glob("*.yaml"))
BENIGN = sorted((CORPUS / "benign").glob("*.yaml"))


@pytest.fixture(scope="module")
def policy() -> CompiledPolicy:
    return default_policy()


def load(path: Path) -> dict[str, Any]:
    obj: dict[str, Any] = yaml.safe_load(path.read_text())
    return obj


def decide(path: Path, policy: CompiledPolicy) -> evaluate.Decision:
    obj = load(path)
    namespace = obj["metadata"].get("namespace", "default")
    labels = {"kubernetes.io/metadata.name": namespace}
    return evaluate.evaluate_object(obj, [policy], namespace_labels=labels)


def test_the_corpus_is_big_enough_and_every_case_says_where_it_comes_from() -> None:
    assert len(MALICIOUS) >= 40
    assert len(BENIGN) >= 40
    for path in MALICIOUS + BENIGN:
        annotations = load(path)["metadata"]["annotations"]
        assert annotations["corpus.minerguard.io/source"].strip(), path.name
        assert annotations["corpus.minerguard.io/why"].strip(), path.name


def test_detection_rate_and_false_positives(policy: CompiledPolicy) -> None:
    missed = [p.name for p in MALICIOUS if decide(p, policy).allowed]
    flagged = [
        p.name for p in BENIGN if not decide(p, policy).allowed or decide(p, policy).warnings
    ]
    detected = len(MALICIOUS) - len(missed)
    print(
        f"\ncorpus: detected {detected}/{len(MALICIOUS)} malicious "
        f"({100 * detected / len(MALICIOUS):.1f}%), "
        f"false positives {len(flagged)}/{len(BENIGN)}"
    )
    assert missed == [], f"missed malicious cases: {missed}"
    assert flagged == [], f"false positives: {flagged}"


@pytest.mark.parametrize("path", MALICIOUS, ids=lambda p: p.stem)
def test_each_malicious_case_is_denied_with_reasons(path: Path, policy: CompiledPolicy) -> None:
    decision = decide(path, policy)
    assert not decision.allowed
    assert decision.findings[0].verdict.signals


@pytest.mark.parametrize("path", BENIGN, ids=lambda p: p.stem)
def test_each_benign_case_is_allowed_silently(path: Path, policy: CompiledPolicy) -> None:
    decision = decide(path, policy)
    assert decision.allowed
    assert decision.warnings == []
