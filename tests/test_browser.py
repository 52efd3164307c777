"""The headless-Chromium harness (tests/browser.py) sees what it must: on handmade pages, good and bad."""

import os
import struct

import pytest
from browser import Chromium, ChromiumError, Rendered, needs_chromium, render, shorten
from print_layout import tables_cut

# A 1x1 PNG, whole; and the start of one, which no browser can draw.
DOT = (
    "data:image/png;base64,"
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg=="
)
TORN = "data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAA"


def page(tmp_path, body: str, style: str = "", name: str = "page.html"):
    path = tmp_path / name
    path.write_text(f"<!doctype html><html><head><style>{style}</style></head><body>{body}</body></html>")
    return path


def table(name: str, rows: int) -> str:
    cells = "".join(f"<tr><td>{name}-r{i:03d}</td><td>{i * 7}</td></tr>" for i in range(1, rows + 1))
    return f"<table>{cells}</table>"


@pytest.fixture(scope="module")
def browser():
    with Chromium() as chromium:
        yield chromium


@needs_chromium
def test_a_self_contained_page_renders_whole(tmp_path):
    html = page(
        tmp_path,
        f"<h1>Self-contained report</h1><img src='{DOT}' width=40 height=40>{table('small', 3)}"
        "<div style='height: 3000px'></div><p>the very end</p>",
    )
    got = render(html, png=tmp_path / "page.png", pdf=tmp_path / "page.pdf")
    assert (got.images, got.broken_images, got.outside_requests) == (1, [], [])
    assert got.requests[0] == html.resolve().as_uri() and any(
        r.startswith("data:image/png") for r in got.requests
    )
    shot = got.png.read_bytes()
    assert shot[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", shot[16:24])
    assert width == 1200 and height > 3000  # the whole page, not the 800-pixel window
    assert got.pdf.read_bytes()[:5] == b"%PDF-" and len(got.pdf_pages) >= 2
    assert "Self-contained report" in got.pdf_pages[0] and "the very end" in got.pdf_pages[-1]
    assert tables_cut(got, [["small-r001", "small-r003"]]) == []


@needs_chromium
def test_requests_that_leave_the_file_are_caught_and_go_nowhere(tmp_path, browser):
    (tmp_path / "beside.png").write_bytes(b"")  # a file next to the page is outside it all the same
    html = page(
        tmp_path,
        f"<img src='http://127.0.0.1:9/x.png'><img src='beside.png'><img src='{TORN}'><img src='{DOT}'>",
    )
    html.write_text(
        html.read_text().replace("<head>", "<head><link rel=stylesheet href='https://example.invalid/a.css'>")
    )
    got = browser.render(html)
    beside = (tmp_path / "beside.png").as_uri()
    # in the order Chromium asked for them, which a loaded machine may change
    assert sorted(got.outside_requests) == sorted(
        ["https://example.invalid/a.css", "http://127.0.0.1:9/x.png", beside]
    )
    # the messages shorten long addresses (a deep tmp_path)
    assert got.images == 4 and got.broken_images == ["http://127.0.0.1:9/x.png", shorten(beside), TORN]
    assert all("BLOCKED_BY_CLIENT" in f for f in got.failed_requests) and len(got.failed_requests) == 3


@needs_chromium
def test_a_table_longer_than_a_page_is_cut(tmp_path, browser):
    got = browser.render(page(tmp_path, table("long", 150), "td { height: 0.3in }"), pdf=tmp_path / "p.pdf")
    cut = tables_cut(got, [["long-r001", "long-r150"]])
    assert len(cut) == 1 and "'long-r001' on page 1," in cut[0] and "on page 1" not in cut[0].split(",")[1]


# A4 is 11.69 in, less Chromium's default 0.4 in margins; after 9.5 in of filler a 10-row table of 4 in
# cannot fit in what is left of page 1, and fits easily on page 2.
FILLER = "<div style='height: 9.5in'>filler</div>"
SHORT_TABLE = "td { height: 0.4in; padding: 0 }"


@needs_chromium
def test_a_short_table_at_the_page_end_is_cut_unless_it_avoids_breaks(tmp_path, browser):
    loose = browser.render(page(tmp_path, FILLER + table("short", 10), SHORT_TABLE), pdf=tmp_path / "a.pdf")
    assert tables_cut(loose, [["short-r001", "short-r010"]]) == [
        "table 1 is not whole on any page: 'short-r001' on page 1, 'short-r010' on page 2"
    ]
    kept = browser.render(
        page(tmp_path, FILLER + table("short", 10), SHORT_TABLE + " table { break-inside: avoid }"),
        pdf=tmp_path / "b.pdf",
    )
    assert tables_cut(kept, [["short-r001", "short-r010"]]) == [] and len(kept.pdf_pages) == 2
    assert "short-r001" not in kept.pdf_pages[0]


@needs_chromium
def test_a_page_that_never_loads_times_out_and_leaves_nothing_behind(tmp_path):
    html = page(tmp_path, "<script>while (true) {}</script>")
    hung = Chromium(timeout_s=2)
    with (
        pytest.raises(ChromiumError, match=r"did not answer within 2 s, waiting for Page.lifecycleEvent"),
        hung,
    ):
        profile, pid = hung._dir, hung._pid
        hung.render(html)
    assert not os.path.exists(profile)
    with pytest.raises(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)  # reaped already


def test_tables_cut_ignores_whitespace_and_names_missing_cells():
    pages = ["Results\nrun-a 0.91\n", "run- b 0.88\nrun-c\n0.87"]
    got = Rendered(
        images=0, broken_images=[], requests=[], outside_requests=[], pdf_pages=pages, png=None, pdf=None
    )
    assert tables_cut(got, [["run-b", "run-c 0.87"], ["Results", "run-a"]]) == []
    assert tables_cut(got, [["run-a", "run-c"], ["run-a", "run-z"]]) == [
        "table 1 is not whole on any page: 'run-a' on page 1, 'run-c' on page 2",
        "table 2 is not whole on any page: 'run-a' on page 1, 'run-z' nowhere in the PDF",
    ]
    with pytest.raises(ValueError, match="pdf=PATH"):
        tables_cut(Rendered(0, [], [], [], [], None, None), [["x"]])
