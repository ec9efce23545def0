"""``minerguard signatures --table``: the scoring table (signal, weight, why) from the bundle.

The README's table is this command's output, and a test compares the two, so the documented
calibration is always the shipped one.
"""

from __future__ import annotations

import argparse

from minerguard.signatures import bundle


def main(argv: list[str]) -> int:
    """Print the built-in bundle's scoring table as Markdown."""
    parser = argparse.ArgumentParser(
        prog="minerguard signatures", description="Show the built-in signature bundle."
    )
    parser.add_argument(
        "--table", action="store_true", help="print the scoring table (the default)"
    )
    parser.parse_args(argv)
    print(bundle.scoring_table(bundle.builtin()), end="")
    return 0
