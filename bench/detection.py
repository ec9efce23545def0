"""Detection that generalises: recall, false positives, transform survival and engine latency.

Run: .venv/bin/python bench/detection.py [--no-transforms] [--pairs-per-side 2]

Prints, for the adversarial corpus under ``tests/data/corpus`` (described in ``tests/corpus.py``),
each case decided as ``minerguard scan FILE`` decides it under the embedded default policy and
its system view over ``kube-system`` (``tests.corpus.admission_policies``):

1. recall by technique class and by difficulty, the main part and the held-out part in separate
   columns (the held-out part is never tuned on: its recall is the figure for manifests nobody
   on the team wrote the engine against);
2. false positives by look-alike class, same columns;
3. the exact misses and false positives, by file, so they can be routed;
4. the transform property (``tests/transforms.py``): for each transform, the share of detected
   malicious containers still denied and of benign containers still allowed, and over every
   ordered pair (each pair on a few seeds per side, in rotation);
5. the engine's latency per spec (µs, p50/p99/mean) over every container of the corpus, at the
   built-in bundle and with 10,000 synthetic user patterns added (``bench/engine.py``'s mix).
   The goal: under 50 µs at 10,000 patterns, and flat.

The webhook's throughput against the bare-FastAPI floor (must not drop more than 10%) is
measured by ``bench/webhook_throughput.py`` (floor app: ``bench/webhook_floor.py``).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections import defaultdict
from collections.abc import Iterable, Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import engine as engine_bench  # noqa: E402 - bench/engine.py, beside this script

from minerguard import podspec  # noqa: E402
from minerguard.compiled_policy import CompiledPolicy, compile_policy, default_policy  # noqa: E402
from minerguard.signatures.engine import Subject  # noqa: E402
from tests import corpus, transforms  # noqa: E402


def _rate(hit: int, total: int) -> str:
    return f"{hit:>3}/{total:<3} {100 * hit / total:5.1f}%" if total else "      -       "


def _table(
    title: str, rows: dict[str, list[tuple[bool, bool]]], order: Iterable[str] | None = None
) -> None:
    """One row per class: main and held-out ``hit/total`` (each item: held-out?, hit?)."""
    print(f"\n{title}")
    print(f"  {'class':<24} {'main':>14}   {'held-out':>14}")
    keys = [k for k in (order or sorted(rows)) if k in rows]
    totals: dict[bool, list[int]] = {False: [0, 0], True: [0, 0]}
    for key in keys:
        cells = []
        for held in (False, True):
            items = [hit for h, hit in rows[key] if h is held]
            cells.append(_rate(sum(items), len(items)))
            totals[held][0] += sum(items)
            totals[held][1] += len(items)
        print(f"  {key:<24} {cells[0]:>14}   {cells[1]:>14}")
    print(f"  {'all':<24} {_rate(*totals[False]):>14}   {_rate(*totals[True]):>14}")


def corpus_figures(policies: Sequence[CompiledPolicy]) -> None:
    """Recall and false positives by class and difficulty; the exact misses."""
    by_technique: dict[str, list[tuple[bool, bool]]] = defaultdict(list)
    by_difficulty: dict[str, list[tuple[bool, bool]]] = defaultdict(list)
    false_positives: dict[str, list[tuple[bool, bool]]] = defaultdict(list)
    missed, flagged = [], []
    for case in corpus.cases():
        outcome = corpus.decide_file(case.path, policies)
        if case.malicious:
            by_technique[case.technique].append((case.heldout, outcome.denied))
            by_difficulty[case.difficulty].append((case.heldout, outcome.denied))
            if not outcome.denied:
                missed.append(f"{case.name} [{case.technique}]")
        else:
            false_positives[case.technique].append((case.heldout, outcome.flagged))
            if outcome.flagged:
                flagged.append(f"{case.name} [{case.technique}]: {'; '.join(outcome.messages)}")
    _table("Recall by technique class (denied/total)", by_technique, corpus.TECHNIQUES)
    _table("Recall by difficulty", by_difficulty, corpus.DIFFICULTIES)
    _table("False positives by class (denied or warned/total)", false_positives, corpus.TECHNIQUES)
    print(f"\nMissed malicious cases ({len(missed)}):")
    for line in missed:
        print(f"  {line}")
    print(f"\nFalse positives ({len(flagged)}):")
    for line in flagged:
        print(f"  {line[:300]}")


def transform_figures(policies: Sequence[CompiledPolicy], per_side: int) -> None:
    """The transform property's pass rate, per transform and over pairs."""
    started = time.perf_counter()
    detected, quiet = transforms.property_seeds(corpus.cases(heldout=False), policies)
    print(
        f"\nTransform property (main corpus; {len(detected)} detected malicious containers, "
        f"{len(quiet)} quiet benign containers; malicious ones on a neutral image)"
    )
    print(f"  {'transform':<18} {'still denied':>16}   {'still allowed':>16}")
    specs = 0
    flips: dict[str, list[str]] = {}
    for name in transforms.TRANSFORMS:
        cells = []
        for chosen, malicious in ((detected, True), (quiet, False)):
            applied, flipped = transforms.changed(
                (name,), chosen, malicious=malicious, policies=policies
            )
            specs += applied
            cells.append(_rate(applied - len(flipped), applied))
            if flipped:
                flips[f"{name} ({'missed' if malicious else 'flagged'})"] = flipped
        note = "" if name in transforms.NEUTRAL else "   (benign side: calibration, not property)"
        print(f"  {name:<18} {cells[0]:>16}   {cells[1]:>16}{note}")
    pair_totals = {True: [0, 0], False: [0, 0]}
    worst: dict[str, list[str]] = defaultdict(list)
    for index, names in enumerate(transforms.pairs()):
        for chosen, malicious in ((detected, True), (quiet, False)):
            if not malicious and not set(names) <= transforms.NEUTRAL:
                continue  # the benign property covers the neutral transforms only
            some = transforms.rotation(index, chosen, per_side)
            applied, flipped = transforms.changed(
                names, some, malicious=malicious, policies=policies
            )
            specs += applied
            pair_totals[malicious][0] += applied - len(flipped)
            pair_totals[malicious][1] += applied
            worst["+".join(names)] += [
                f"{'missed' if malicious else 'flagged'} {n}" for n in flipped
            ]
    print(
        f"  {'pairs (all)':<18} {_rate(*pair_totals[True]):>16}   {_rate(*pair_totals[False]):>16}"
    )
    for label, names_flipped in flips.items():
        print(f"    {label}: {', '.join(names_flipped)}")
    failing = {pair: seeds for pair, seeds in worst.items() if seeds}
    print(f"  pairs with a changed verdict ({len(failing)}):")
    for pair, seeds in failing.items():
        print(f"    {pair}: {', '.join(seeds)}")
    print(f"  ({specs} specs decided in {time.perf_counter() - started:.0f} s)")


def _subjects() -> list[tuple[str, Subject]]:
    """Every container of the corpus's built-in workloads, as the engine sees it."""
    found = []
    for case in corpus.cases():
        for doc in case.documents:
            if doc.get("kind") not in podspec.POD_TEMPLATE_PATHS:
                continue
            for container in podspec.template(doc).containers:
                argv = podspec.effective_argv(container, None)
                subject = Subject(argv=argv, env=container.env, image=container.image)
                found.append((f"{case.name}#{container.name}", subject))
    return found


def latency(
    subjects: Sequence[tuple[str, Subject]], n: int
) -> tuple[float, float, float, float, float, list[tuple[float, str]]]:
    """Wall p50, p99, mean and CPU p50, mean µs per spec with ``n`` user patterns (0: none).

    CPU time (the thread's own) is printed beside wall time because on a shared machine the
    wall figures mostly measure the other tenants. Also the slowest specs (median wall µs,
    name), so a slow decoder can be traced to its case.
    """
    engine = (default_policy() if n == 0 else compile_policy(engine_bench.policy(n))).engine
    for _, subject in subjects:  # warm-up
        engine.evaluate(subject)
    samples: list[float] = []
    cpu: list[float] = []
    per: dict[str, list[float]] = defaultdict(list)
    for _ in range(20):
        for name, subject in subjects:
            c0, t0 = time.thread_time_ns(), time.perf_counter_ns()
            engine.evaluate(subject)
            elapsed = (time.perf_counter_ns() - t0) / 1e3
            cpu.append((time.thread_time_ns() - c0) / 1e3)
            samples.append(elapsed)
            per[name].append(elapsed)
    samples.sort()
    slowest = sorted(((statistics.median(v), k) for k, v in per.items()), reverse=True)[:3]
    return (
        statistics.median(samples),
        samples[int(len(samples) * 0.99)],
        statistics.mean(samples),
        statistics.median(cpu),
        statistics.mean(cpu),
        slowest,
    )


def latency_figures() -> None:
    """The engine's latency per spec over the corpus, at the bundle and at 10,000 patterns."""
    subjects = _subjects()
    print(f"\nEngine latency per spec over the corpus's {len(subjects)} containers (µs)")
    print(
        f"  {'user patterns':>13} {'p50':>8} {'p99':>8} {'mean':>8} {'cpu p50':>8} {'cpu mean':>8}"
        "   slowest (median µs)"
    )
    for n in (0, 10_000):
        p50, p99, mean, cpu50, cpu_mean, slowest = latency(subjects, n)
        label = "bundle only" if n == 0 else f"{n:,}"
        worst = ", ".join(f"{name} {us:.0f}" for us, name in slowest)
        print(
            f"  {label:>13} {p50:>8.1f} {p99:>8.1f} {mean:>8.1f} {cpu50:>8.1f} {cpu_mean:>8.1f}"
            f"   {worst}"
        )
    print("  goal: under 50 µs at 10,000 patterns, flat against the bundle alone")
    print(
        "\nWebhook throughput vs the bare FastAPI floor: "
        "PYTHONPATH=. .venv/bin/python bench/webhook_throughput.py (goal: within 10%)"
    )


def main(argv: Sequence[str] | None = None) -> None:
    """Print every table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--no-transforms", action="store_true", help="skip the transform table")
    parser.add_argument("--pairs-per-side", type=int, default=2, help="seeds per side per pair")
    args = parser.parse_args(argv)
    policies = corpus.admission_policies()
    malicious = sum(case.malicious for case in corpus.cases())
    print(
        f"corpus: {malicious} malicious, {len(corpus.cases()) - malicious} benign "
        f"({sum(case.heldout for case in corpus.cases())} held out)"
    )
    corpus_figures(policies)
    if not args.no_transforms:
        transform_figures(policies, args.pairs_per_side)
    latency_figures()


if __name__ == "__main__":
    main()
