"""The HTML report in a real browser (Debian's headless Chromium): it draws, it fetches nothing.

Chromium runs with every request sent to a recording proxy of our own on loopback
(``--proxy-bypass-list=<-loopback>`` sends even loopback there), so anything the page tried to
load, from anywhere, is seen. A control page with one external image proves the recorder
sees what a page fetches, so "it saw nothing" can fail.

Chromium also calls home by itself, page or not (component and extension updates, network
time, the Google account endpoint), even with ``--disable-background-networking``. Those
calls would reach the recorder and hide the answer, so the runs point those services at a
closed loopback port (``--component-updater=url-source``, ``--gaia-url``) and turn off the
network-time fetch: the recorder then sees only what a page asks for (an empty run sees
nothing, which the page tests assert too).
"""

from __future__ import annotations

import itertools
import shutil
import socketserver
import subprocess
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from minerguard.api.detection import MinerDetection
from minerguard.report import html, svg, timeline
from tests.conftest import require
from tests.integration.report import png
from tests.unit.report import cases

pytestmark = pytest.mark.slow

CHROMIUM = shutil.which("chromium")
CLOSED = "http://127.0.0.2:9/"
"""Where Chromium's own services are sent: a loopback port nothing listens on."""
WINDOW = (1200, 1000)


class Recorder(socketserver.ThreadingTCPServer):
    """An HTTP proxy that answers nothing but records the first line of every request."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _RecordOne)
        self.seen: list[str] = []
        self.lock = threading.Lock()

    @property
    def url(self) -> str:
        """The proxy's address for ``--proxy-server``."""
        return f"http://127.0.0.1:{self.server_address[1]}"


class _RecordOne(socketserver.StreamRequestHandler):
    server: Recorder
    timeout = 5

    def handle(self) -> None:
        line = self.rfile.readline(8192).decode("latin-1").strip()
        with self.server.lock:
            self.server.seen.append(line)
        self.wfile.write(
            b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
        )


@pytest.fixture
def recorder() -> Iterator[Recorder]:
    server = Recorder()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def chromium(page: Path, work: Path, proxy: Recorder) -> Path:
    """Load ``page`` in headless Chromium through ``proxy``; the screenshot's path."""
    require(CHROMIUM is not None, "Debian's chromium is not installed (scripts/setup.sh)")
    assert CHROMIUM is not None
    profile = work / "profile"
    profile.mkdir(exist_ok=True)
    shot = work / "shot.png"
    command = [
        CHROMIUM,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={profile}",
        f"--proxy-server={proxy.url}",
        "--proxy-bypass-list=<-loopback>",
        f"--component-updater=url-source={CLOSED}",
        f"--gaia-url={CLOSED}",
        "--disable-features=NetworkTimeServiceQuerying",
        "--force-color-profile=srgb",
        "--force-device-scale-factor=1",
        "--hide-scrollbars",
        f"--window-size={WINDOW[0]},{WINDOW[1]}",
        f"--screenshot={shot}",
        page.as_uri(),
    ]
    result = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stderr[-2000:]
    assert shot.exists(), result.stderr[-2000:]
    return shot


@dataclass(frozen=True)
class Disc:
    """A drawn marker: its centre row, the column where it ends, and whose colour it has."""

    row: int
    right: int
    kind: str


def discs(image: png.Image) -> list[Disc]:
    """Each solid marker of a kind's colour, top to bottom.

    A marker is a disc 14 pixels across: rows holding a run of at least 9 pixels of exactly
    its colour. Text in the same colour (the kind label) has strokes a pixel or two wide.
    """
    rows_by_kind: dict[str, list[tuple[int, int]]] = {}
    for kind, colour in svg.COLOURS.items():
        pixel = bytes.fromhex(colour[1:]) + (b"\xff" if image.channels == 4 else b"")
        run = pixel * 9
        for y, row in enumerate(image.rows):
            at = row.find(run)
            while at != -1 and at % image.channels:
                at = row.find(run, at + 1)
            if at != -1:
                rows_by_kind.setdefault(kind, []).append((y, at // image.channels + 9))
    found: list[Disc] = []
    for kind, rows in rows_by_kind.items():
        start = 0
        for index in range(len(rows)):
            last = index + 1 == len(rows)
            if last or rows[index + 1][0] > rows[index][0] + 1:
                cluster = rows[start : index + 1]
                middle = (cluster[0][0] + cluster[-1][0]) // 2
                found.append(Disc(middle, max(right for _, right in cluster), kind))
                start = index + 1
    return sorted(found, key=lambda disc: disc.row)


def has_label(image: png.Image, disc: Disc) -> bool:
    """Whether something is drawn right of the marker, where its two label lines go."""
    background = b"\xff" * image.channels
    for y in range(max(0, disc.row - 14), min(image.height, disc.row + 15)):
        start, end = (disc.right + 12) * image.channels, (disc.right + 300) * image.channels
        band = image.rows[y][start:end]
        if band.replace(background, b"").strip(b"\xff"):
            return True
    return False


def test_the_page_draws_every_moment_of_the_timeline_in_order(
    tmp_path: Path, recorder: Recorder
) -> None:
    detection = cases.detection(cases.full_investigation())
    page = tmp_path / "report.html"
    page.write_text(html.render(detection), encoding="utf-8")
    image = png.read(chromium(page, tmp_path, recorder).read_bytes())
    assert (image.width, image.height) == WINDOW
    drawn = discs(image)
    assert [disc.kind for disc in drawn] == [m.kind for m in timeline.build(detection).dated]
    rows = [disc.row for disc in drawn]
    assert min(b - a for a, b in itertools.pairwise(rows)) >= svg.MIN_STEP - 2
    assert all(has_label(image, disc) for disc in drawn)
    assert recorder.seen == []


def test_a_page_full_of_hostile_data_fetches_nothing(tmp_path: Path, recorder: Recorder) -> None:
    document = cases.hostile_document(cases.full_investigation())
    page = tmp_path / "hostile.html"
    page.write_text(html.render(MinerDetection.model_validate(document)), encoding="utf-8")
    image = png.read(chromium(page, tmp_path, recorder).read_bytes())
    assert len(discs(image)) >= 5  # it rendered, hostile labels and all
    assert recorder.seen == []


def test_the_recorder_sees_what_a_page_with_an_external_image_fetches(
    tmp_path: Path, recorder: Recorder
) -> None:
    page = tmp_path / "control.html"
    page.write_text(
        '<!DOCTYPE html><html><body><p>control</p><img src="http://example.invalid/x.png">'
        "</body></html>",
        encoding="utf-8",
    )
    chromium(page, tmp_path, recorder)
    assert recorder.seen == ["GET http://example.invalid/x.png HTTP/1.1"]


def test_the_pages_own_policy_blocks_a_fetch_even_if_markup_slipped_through(
    tmp_path: Path, recorder: Recorder
) -> None:
    rendered = html.render(cases.detection(cases.full_investigation()))
    slipped = '<img src="http://example.invalid/slipped.png"><p style="background:url(http://example.invalid/bg.png)">x</p>'
    page = tmp_path / "slipped.html"
    page.write_text(rendered.replace("<main>", "<main>" + slipped, 1), encoding="utf-8")
    chromium(page, tmp_path, recorder)
    assert recorder.seen == []
