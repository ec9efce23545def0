"""The HTML page: one self-contained file that fetches nothing and lets no data become markup."""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass, field
from html.parser import HTMLParser

from minerguard.api.detection import MinerDetection
from minerguard.report import html, sections, svg, timeline
from tests.unit.report import cases

CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:"
OUR_TAGS = {
    "html", "head", "meta", "title", "style", "body", "main", "header", "footer", "h1", "h2",
    "p", "section", "table", "tr", "th", "td", "ul", "li", "span", "code", "strong",
    "svg", "g", "line", "circle", "text", "path",
}  # fmt: skip
OUR_ATTRIBUTES = {
    "lang", "charset", "http-equiv", "content", "name", "class", "id", "role", "aria-label",
    "viewbox", "width", "height", "x", "y", "x1", "y1", "x2", "y2", "cx", "cy", "r", "d",
    "fill", "stroke", "stroke-width", "text-anchor", "font-family", "font-size",
}  # fmt: skip
FETCHING = re.compile(r"https?:|url\(|@import|//", re.IGNORECASE)


@dataclass
class Element:
    """A start tag as the parser saw it."""

    tag: str
    attrs: dict[str, str]


@dataclass
class Page(HTMLParser):
    """What an HTML parser makes of the page: elements, text nodes, style text, comments."""

    elements: list[Element] = field(default_factory=list)
    texts: list[str] = field(default_factory=list)
    styles: list[str] = field(default_factory=list)
    comments: list[str] = field(default_factory=list)
    declarations: list[str] = field(default_factory=list)
    _open: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        super().__init__(convert_charrefs=True)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.elements.append(Element(tag, {k: v or "" for k, v in attrs}))
        self._open.append(tag)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.elements.append(Element(tag, {k: v or "" for k, v in attrs}))

    def handle_endtag(self, tag: str) -> None:
        if tag in self._open:
            while self._open.pop() != tag:
                pass

    def handle_data(self, data: str) -> None:
        (self.styles if self._open[-1:] == ["style"] else self.texts).append(data)

    def handle_comment(self, data: str) -> None:
        self.comments.append(data)

    def handle_decl(self, decl: str) -> None:
        self.declarations.append(decl)

    def unknown_decl(self, data: str) -> None:
        self.declarations.append(data)

    def handle_pi(self, data: str) -> None:
        self.declarations.append(data)


def parse(page: str) -> Page:
    parser = Page()
    parser.feed(page)
    parser.close()
    return parser


def hostile_page() -> str:
    document = cases.hostile_document(cases.full_investigation())
    return html.render(MinerDetection.model_validate(document))


def test_the_page_declares_a_policy_that_forbids_every_fetch() -> None:
    page = parse(html.render(cases.detection(cases.full_investigation())))
    metas = [e.attrs for e in page.elements if e.tag == "meta"]
    assert {"http-equiv": "Content-Security-Policy", "content": CSP} in metas
    assert page.declarations == ["DOCTYPE html"]


def test_hostile_data_never_becomes_an_element_an_attribute_a_comment_or_a_style() -> None:
    page = parse(hostile_page())
    assert {e.tag for e in page.elements} <= OUR_TAGS
    assert [e.tag for e in page.elements].count("style") == 1
    assert [e.tag for e in page.elements].count("title") == 1
    assert not page.comments
    assert page.declarations == ["DOCTYPE html"]
    for element in page.elements:
        assert set(element.attrs) <= OUR_ATTRIBUTES, element
        for name, value in element.attrs.items():
            if name != "content":  # the CSP's own text
                assert "<" not in value, (name, value)
                assert "example.invalid" not in value, (name, value)
    assert len(page.styles) == 1
    assert "example.invalid" not in page.styles[0]


def test_hostile_data_is_shown_as_text_exactly_where_the_report_puts_it() -> None:
    page = parse(hostile_page())
    shown = "".join(page.texts)
    markup = '</style></title></svg><script>alert("x")</script><img src="http://example.invalid/'
    assert shown.count(markup) > 20
    assert "\\x1b]0;owned\\x07" in shown
    assert "\x1b" not in shown
    assert "\u202e" not in shown


def test_nothing_in_the_page_could_fetch_a_url_outside_text() -> None:
    page_text = hostile_page()
    page = parse(page_text)
    assert not re.search(r"<(script|img|a|link|iframe|object|embed|image|use)\b", page_text, re.I)
    for element in page.elements:
        for name, value in element.attrs.items():
            if name != "content":
                assert not FETCHING.search(value), (element.tag, name, value)
    assert not FETCHING.search(page.styles[0])
    in_text = sum(len(re.findall(r"https?://", text)) for text in page.texts)
    assert len(re.findall(r"https?://", page_text)) == in_text > 0


@dataclass(frozen=True)
class Marker:
    """One drawn moment: where its circle sits and what its labels say."""

    cy: float
    labels: tuple[str, ...]


def markers(page_text: str) -> list[Marker]:
    """The SVG's moment groups in document order (circle position, label texts)."""
    svg = page_text[page_text.index("<svg") : page_text.index("</svg>")]
    found = []
    for group in re.findall(r'<g class="moment[^"]*">(.*?)</g>', svg, re.S):
        cy = float(re.search(r'<circle class="marker"[^>]* cy="([0-9.]+)"', group)[1])  # type: ignore[index]
        labels = tuple(parse(group).texts)
        found.append(Marker(cy, labels))
    return found


def test_the_timeline_draws_one_marker_per_moment_in_time_order() -> None:
    detection = cases.detection(cases.full_investigation())
    page_text = html.render(detection)
    drawn = markers(page_text)
    moments = timeline.build(detection).dated
    assert len(drawn) == len(moments) == page_text.count('class="marker"')
    assert [m.labels[0] for m in drawn] == [m.kind for m in moments]
    positions = [m.cy for m in drawn]
    assert positions == sorted(positions)


def test_seconds_stay_readable_beside_an_image_built_months_earlier() -> None:
    page_text = html.render(cases.detection(cases.full_investigation()))
    positions = [m.cy for m in markers(page_text)]
    steps = [after - before for before, after in itertools.pairwise(positions)]
    assert min(steps) >= svg.MIN_STEP  # labels of moments in one second do not overlap
    assert max(steps) <= svg.MAX_STEP + svg.BREAK_ROOM  # months are not drawn to scale
    assert page_text.count('class="break"') == 2  # the build and the suspect layer, months apart
    assert "later" in "".join(parse(page_text).texts)


def test_a_detection_without_an_investigation_still_draws_its_own_moments() -> None:
    page_text = html.render(cases.detection(None))
    assert sections.NOT_INVESTIGATED in "".join(parse(page_text).texts)
    assert [m.labels[0] for m in markers(page_text)] == [
        "ProcessStart", "ProcessStart", "Detection", "Detection", "Action", "Action",
    ]  # fmt: skip


def test_moments_without_a_readable_time_are_listed_not_drawn() -> None:
    document = cases.detection_document(investigation=cases.partial_investigation())
    document["metadata"]["creationTimestamp"] = "not a time"
    document["spec"]["observedAt"] = None
    document["status"]["actedAt"] = None
    for link in document["spec"]["evidence"]["lineage"]:
        link["startedAt"] = "soon"
    page_text = html.render(MinerDetection.model_validate(document))
    assert "<svg" not in page_text
    shown = "".join(parse(page_text).texts)
    assert "No moment has a readable time." in shown
    assert "MinerDetection recorded" in shown
    assert "time unreadable: soon" in shown
