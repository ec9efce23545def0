"""The timeline as an inline SVG picture: one marker per moment on a vertical time axis.

An incident spans seconds (exec, process start, detection, actions), but its image may have
been built months before. A linear axis would crush the seconds into one point; so the
distance between two markers grows with the logarithm of the time between them (at least
:data:`MIN_STEP`, so the labels of moments in one second never overlap, at most
:data:`MAX_STEP`), and a gap longer than :data:`BREAK_AFTER` is drawn as a broken axis with
its length written beside it. Order is always time order; the exact times are in the labels
and in the table beneath.

The picture uses presentation attributes only (no CSS, no ``xmlns`` or other URL, no
``<title>``, no links): every attribute value is a number or a constant of this module, and
every text is the moment's inert text escaped for HTML.
"""

from __future__ import annotations

import html
import math
from collections.abc import Sequence

from minerguard import timestamps
from minerguard.report import timeline

WIDTH = 1000
AXIS_X = 200
TOP = 30
MIN_STEP = 40.0
"""Pixels between two moments in the same second: room for a marker's two label lines."""
PER_DECADE = 14.0
"""Extra pixels for each factor of ten in the time between two moments."""
MAX_STEP = 110.0
BREAK_AFTER = 6 * 3600.0
"""A longer gap is drawn as a break in the axis, not to scale."""
BREAK_ROOM = 36.0
"""Extra pixels for the break symbol and its label."""
MAX_LABEL = 110
"""Characters of a moment's detail drawn; the table beneath shows all of it."""

COLOURS = {
    "ImageBuilt": "#5d6d7e",
    "Admission": "#2471a3",
    "ExecSession": "#8e44ad",
    "ProcessStart": "#d68910",
    "Detection": "#c0392b",
    "Action": "#1e8449",
}
OTHER_COLOUR = "#34495e"


def step(seconds: float) -> float:
    """Pixels between two consecutive moments ``seconds`` apart."""
    if seconds > BREAK_AFTER:
        return MIN_STEP + BREAK_ROOM
    return min(MAX_STEP, MIN_STEP + PER_DECADE * math.log10(1.0 + max(0.0, seconds)))


def _e(text: str) -> str:
    return html.escape(text, quote=True)


def _clip(text: str) -> str:
    return text if len(text) <= MAX_LABEL else text[: MAX_LABEL - 1] + "…"


def _when(at: float, previous: float | None) -> str:
    stamp = timestamps.format_time(at)  # 2026-11-23T07:43:10Z
    same_day = previous is not None and timestamps.format_time(previous)[:10] == stamp[:10]
    return stamp[11:] if same_day else stamp.replace("T", " ")


def _break(y_before: float, y_after: float, seconds: float) -> str:
    middle = (y_before + y_after) / 2
    x = AXIS_X
    return (
        f'<path class="break" d="M{x - 9} {middle - 2:.1f} L{x + 9} {middle - 8:.1f} '
        f'M{x - 9} {middle + 6:.1f} L{x + 9} {middle:.1f}" stroke="#566573" stroke-width="2"/>'
        f'<text class="breaklabel" x="{x + 18}" y="{middle + 3:.1f}" fill="#566573">'
        f"{_e(timeline.gap(seconds))[1:]} later (axis broken)</text>"
    )


def render(moments: Sequence[timeline.Moment]) -> str:
    """The SVG for dated ``moments`` (in time order, values inert); empty when there are none."""
    dated = [m for m in moments if m.at is not None]
    if not dated:
        return ""
    parts: list[str] = []
    axis: list[tuple[float, float]] = []
    y = float(TOP)
    segment_start = y - 16
    previous: float | None = None
    for moment in dated:
        at = moment.at if moment.at is not None else 0.0
        if previous is not None:
            seconds = at - previous
            y_before = y
            y += step(seconds)
            if seconds > BREAK_AFTER:
                axis.append((segment_start, y_before + 14))
                parts.append(_break(y_before + 14, y - 14, seconds))
                segment_start = y - 14
        colour = COLOURS.get(moment.kind, OTHER_COLOUR)
        detail = moment.detail + (f" · {moment.actor}" if moment.actor else "")
        since = f"{timeline.gap(at - previous)}" if previous is not None else ""
        parts.append(
            f'<g class="moment">'
            f'<circle class="marker" cx="{AXIS_X}" cy="{y:.1f}" r="7" fill="{colour}"/>'
            f'<text class="kind" x="{AXIS_X + 18}" y="{y - 3:.1f}" fill="{colour}">'
            f"{_e(moment.kind)}</text>"
            f'<text class="detail" x="{AXIS_X + 18}" y="{y + 13:.1f}" fill="#1c2833">'
            f"{_e(_clip(detail))}</text>"
            f'<text class="when" x="{AXIS_X - 16}" y="{y - 3:.1f}" text-anchor="end" '
            f'fill="#1c2833">{_e(_when(at, previous))}</text>'
            + (
                f'<text class="gap" x="{AXIS_X - 16}" y="{y + 13:.1f}" text-anchor="end" '
                f'fill="#566573">{_e(since)}</text>'
                if since
                else ""
            )
            + "</g>"
        )
        previous = at
    axis.append((segment_start, y + 16))
    lines = "".join(
        f'<line class="axis" x1="{AXIS_X}" y1="{top:.1f}" x2="{AXIS_X}" y2="{bottom:.1f}" '
        f'stroke="#aab7b8" stroke-width="2"/>'
        for top, bottom in axis
    )
    height = math.ceil(y + 30)
    return (
        f'<svg class="timeline" role="img" aria-label="Timeline of the incident" '
        f'width="{WIDTH}" height="{height}" viewBox="0 0 {WIDTH} {height}" '
        f'font-family="system-ui, sans-serif" font-size="13">'
        f"{lines}{''.join(parts)}</svg>"
    )
