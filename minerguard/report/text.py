"""The report as plain text for a terminal: headings in capitals, one fact a line.

Values arrive inert from :mod:`.sections` (no control characters, no bidi overrides), so
nothing in a detection can move the cursor, rewrite the title bar or fake a report line.
Only the summary paragraph is wrapped: commands and digests stay on one line to be copied.
"""

from __future__ import annotations

import textwrap
from collections.abc import Sequence

from minerguard import timestamps
from minerguard.api.detection import MinerDetection
from minerguard.report import blocks, sections, timeline

WIDTH = 100
LABEL = 19
ITEM_LABEL = 9


def _rows(rows: Sequence[blocks.Row], indent: str, width: int) -> list[str]:
    return [f"{indent}{row.label:<{width}} {row.value}" for row in rows]


def _item(item: blocks.Item) -> list[str]:
    if item.flagged:
        head = f">> {item.title}" + (f"  [{item.state}]" if item.state else "")
    else:
        head = "  - " + (f"[{item.state}] " if item.state else "") + item.title
    return [head, *_rows(item.rows, "      ", ITEM_LABEL)]


def _moments(moments: timeline.Timeline) -> list[str]:
    lines: list[str] = []
    before: float | None = None
    for moment in moments.dated:
        at = moment.at if moment.at is not None else 0.0
        since = timeline.gap(at - before) if before is not None else ""
        before = at
        who = f"  ({moment.actor})" if moment.actor else ""
        lines.append(
            f"  {timestamps.format_time(at)}  {since:<11} {moment.kind:<12} {moment.detail}{who}"
        )
    for moment in moments.undated:
        when = f"time unreadable: {moment.time}" if moment.time else "time unknown"
        who = f"  ({moment.actor})" if moment.actor else ""
        lines.append(f"  ({when})  {moment.kind:<12} {moment.detail}{who}")
    if moments.cut:
        lines.append(f"  ... {moments.cut} more moments not shown (bound {timeline.MAX_MOMENTS})")
    return lines


def _section(section: blocks.Section, report: sections.Report) -> list[str]:
    lines = ["", section.title.upper()]
    if section.paragraph:
        lines += textwrap.wrap(
            section.paragraph, WIDTH, initial_indent="  ", subsequent_indent="  "
        )
    lines += _rows(section.rows, "  ", LABEL)
    for item in section.items:
        lines += _item(item)
    lines += [f"  - {bullet}" for bullet in section.bullets]
    if section.key == "timeline":
        lines += _moments(report.timeline)
        if report.timeline.moments:
            return lines
    if len(lines) == 2 and section.empty:
        lines.append(f"  {section.empty}")
    return lines


def render(detection: MinerDetection, notes: Sequence[str] = ()) -> str:
    """The text report on ``detection``."""
    report = sections.build(detection, notes)
    lines = [
        report.title,
        f"Investigation {report.state} · Origin {report.origin} · Via {report.via}",
    ]
    lines += [f"! {note}" for note in report.notes]
    for section in report.sections:
        lines += _section(section, report)
    return "\n".join(lines) + "\n"
