"""The report as one self-contained HTML page, to attach to a ticket.

The page fetches nothing: no script, no font, no image, no link, no ``url()`` in its style,
no URL in any attribute (the inline SVG carries no ``xmlns`` either). Its Content-Security-
Policy (:data:`CSP`) forbids every fetch besides, so even markup that slipped through could
load nothing. Every value from the detection is attacker-influenced; each arrives inert from
:mod:`.sections` and is escaped here with :func:`html.escape` (quotes included) into a text
node. No attribute carries data: class names and colours are constants chosen by this code,
numbers are computed.
"""

from __future__ import annotations

import html
from collections.abc import Sequence

from minerguard import __version__, timestamps
from minerguard.api.detection import MinerDetection
from minerguard.report import blocks, sections, svg, timeline

CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:"

STYLE = """
body { font-family: system-ui, sans-serif; color: #1c2833; margin: 0; background: #ffffff; }
main { max-width: 1100px; margin: 0 auto; padding: 24px; }
h1 { font-size: 22px; margin: 0 0 8px; overflow-wrap: anywhere; }
h2 { font-size: 17px; border-bottom: 1px solid #d5d8dc; padding-bottom: 4px; margin-top: 28px; }
.badge { display: inline-block; padding: 2px 8px; border-radius: 10px; font-size: 13px;
  background: #eaeded; margin-right: 6px; }
.tone-bad { background: #fadbd8; color: #922b21; }
.tone-warn { background: #fdebd0; color: #9c640c; }
.tone-good { background: #d5f5e3; color: #1e8449; }
.note { background: #fef9e7; border-left: 4px solid #d4ac0d; padding: 6px 10px; }
.summary { font-size: 16px; line-height: 1.5; }
table { border-collapse: collapse; width: 100%; }
th, td { text-align: left; vertical-align: top; padding: 3px 8px; font-size: 14px; }
th { color: #566573; font-weight: normal; }
table.rows th { width: 14em; }
td { overflow-wrap: anywhere; }
code { font-family: ui-monospace, monospace; font-size: 13px; white-space: pre-wrap; }
ul.items { list-style: none; padding: 0; }
ul.items > li { border: 1px solid #e5e8e8; border-radius: 4px; margin: 6px 0; padding: 6px 10px; }
ul.items > li.flagged { border-left: 5px solid #c0392b; background: #fdf2f1; }
.empty { color: #566573; font-style: italic; }
svg.timeline { display: block; max-width: 100%; height: auto; margin: 8px 0 16px; }
footer { color: #808b96; font-size: 12px; margin-top: 32px; }
"""

_STATE_TONE = {"Complete": "good", "Partial": "warn"}


def _e(text: str) -> str:
    return html.escape(text, quote=True)


def _value(row: blocks.Row) -> str:
    return f"<code>{_e(row.value)}</code>" if row.code else _e(row.value)


def _rows(rows: Sequence[blocks.Row]) -> str:
    if not rows:
        return ""
    body = "".join(f"<tr><th>{_e(row.label)}</th><td>{_value(row)}</td></tr>" for row in rows)
    return f'<table class="rows">{body}</table>'


def _item(item: blocks.Item) -> str:
    badge = f'<span class="badge tone-{item.tone}">{_e(item.state)}</span>' if item.state else ""
    flagged = ' class="flagged"' if item.flagged else ""
    return f"<li{flagged}>{badge}<strong>{_e(item.title)}</strong>{_rows(item.rows)}</li>"


def _moments(moments: timeline.Timeline) -> str:
    rows = []
    previous: float | None = None
    for moment in moments.dated:
        at = moment.at if moment.at is not None else 0.0
        since = timeline.gap(at - previous) if previous is not None else ""
        previous = at
        rows.append((timestamps.format_time(at), since, moment))
    for moment in moments.undated:
        when = f"time unreadable: {moment.time}" if moment.time else "time unknown"
        rows.append((when, "", moment))
    body = "".join(
        f"<tr><td>{_e(when)}</td><td>{_e(since)}</td><td>{_e(moment.kind)}</td>"
        f"<td>{_e(moment.detail)}</td><td>{_e(moment.actor or '')}</td></tr>"
        for when, since, moment in rows
    )
    cut = (
        f'<p class="empty">{moments.cut} more moments not shown (bound {timeline.MAX_MOMENTS}).</p>'
        if moments.cut
        else ""
    )
    head = "<tr><th>Time</th><th>Since</th><th>Kind</th><th>What</th><th>Who</th></tr>"
    return f'<table class="moments">{head}{body}</table>{cut}' if rows else cut


def _section(section: blocks.Section, report: sections.Report) -> str:
    parts = [f'<section id="{section.key}"><h2>{_e(section.title)}</h2>']
    if section.paragraph:
        parts.append(f'<p class="{section.key}">{_e(section.paragraph)}</p>')
    parts.append(_rows(section.rows))
    if section.items:
        parts.append('<ul class="items">' + "".join(_item(i) for i in section.items) + "</ul>")
    if section.bullets:
        parts.append("<ul>" + "".join(f"<li>{_e(b)}</li>" for b in section.bullets) + "</ul>")
    has_content = bool(section.paragraph or section.rows or section.items or section.bullets)
    if section.key == "timeline":
        parts.append(svg.render(report.timeline.dated))
        parts.append(_moments(report.timeline))
        has_content = bool(report.timeline.dated)
    if not has_content and section.empty:
        parts.append(f'<p class="empty">{_e(section.empty)}</p>')
    parts.append("</section>")
    return "".join(parts)


def _page_order(parts: Sequence[blocks.Section]) -> list[blocks.Section]:
    """The report's order, but with the timeline right under the summary.

    On a ticket the picture is what a reader looks at first; the text report keeps it last.
    """
    drawn = [section for section in parts if section.key == "timeline"]
    rest = [section for section in parts if section.key != "timeline"]
    return rest[:1] + drawn + rest[1:]


def render(detection: MinerDetection, notes: Sequence[str] = ()) -> str:
    """The HTML page on ``detection``: one file, no external resource, no script."""
    report = sections.build(detection, notes)
    tone = _STATE_TONE.get(report.state, "bad")
    verdict = (
        f'<span class="badge tone-{tone}">Investigation {_e(report.state)}</span>'
        f'<span class="badge">Origin {_e(report.origin)}</span>'
        f'<span class="badge">Via {_e(report.via)}</span>'
    )
    notes_html = "".join(f'<p class="note">{_e(note)}</p>' for note in report.notes)
    body = "".join(_section(section, report) for section in _page_order(report.sections))
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        f'<meta http-equiv="Content-Security-Policy" content="{_e(CSP)}">'
        '<meta name="referrer" content="no-referrer">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{_e(report.title)}</title><style>{STYLE}</style></head>"
        f"<body><main><header><h1>{_e(report.title)}</h1><p>{verdict}</p>{notes_html}</header>"
        f"{body}<footer>minerguard {_e(__version__)} · investigate report · "
        "this page loads nothing from anywhere</footer></main></body></html>\n"
    )
