"""What `minerguard investigate` costs to render: text, JSON and the HTML page.

Run: PYTHONPATH=. .venv/bin/python bench/report_render.py [--repeat 200]

Two detections from the report tests' fixtures (tests/unit/report/cases.py): a full
investigation as the operator writes it, and the hostile one with attacker text in every free
field. Prints the median and p99 time per render and the output size. The renderers are pure
(a MinerDetection in, a string out), so this is all the command adds to reading the object.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

from minerguard.api.detection import MinerDetection
from minerguard.report import html, json_report, text
from tests.unit.report import cases

RENDERERS: dict[str, Callable[[MinerDetection], str]] = {
    "text": text.render,
    "json": json_report.render,
    "html": html.render,
}


def measure(
    render: Callable[[MinerDetection], str], detection: MinerDetection, repeat: int
) -> tuple[float, float, int]:
    times: list[float] = []
    size = 0
    for _ in range(repeat):
        start = time.perf_counter()
        out = render(detection)
        times.append(time.perf_counter() - start)
        size = len(out.encode())
    times.sort()
    return statistics.median(times), times[min(len(times) - 1, int(len(times) * 0.99))], size


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=200)
    args = parser.parse_args()
    detections = {
        "full investigation": cases.detection(cases.full_investigation()),
        "hostile text everywhere": MinerDetection.model_validate(
            cases.hostile_document(cases.full_investigation())
        ),
    }
    print(f"Rendering one detection ({args.repeat} runs each)")
    print("| detection | output | p50 | p99 | size |")
    print("|---|---|---|---|---|")
    for label, detection in detections.items():
        for name, render in RENDERERS.items():
            p50, p99, size = measure(render, detection, args.repeat)
            row = (
                label,
                name,
                f"{p50 * 1e3:.2f} ms",
                f"{p99 * 1e3:.2f} ms",
                f"{size / 1024:.1f} KiB",
            )
            print("| " + " | ".join(row) + " |")


if __name__ == "__main__":
    main()
