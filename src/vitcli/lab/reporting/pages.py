"""A report from paths to files: the Python side of `vitcli report --html/--markdown`.

    report = make_report(["runs/vit-...", "runs/cnn-...", "sweeps/depth-..."])
    write_html(report, "report.html")
    write_markdown(report, "report/")          # report.md and its pictures

Neither replaces a file it did not make unless `overwrite`; each file is written whole or not at all.
"""

from __future__ import annotations

from pathlib import Path

from vitcli.errors import ConfigError
from vitcli.lab.reporting.html_page import GENERATOR, render_html
from vitcli.lab.reporting.markdown_page import MARK, MARKDOWN, render_markdown
from vitcli.lab.reporting.report_options import Options
from vitcli.lab.reporting.sections import Report, build
from vitcli.lab.reporting.study import gather
from vitcli.runtime.outputs import check_output, png_made_by, write_output

WHOSE = "vitcli report"
REPORT_PNGS = png_made_by("report", "attention", "inspect")  # its charts, and attention's and inspect's


def make_report(paths: list[str | Path], options: Options | None = None) -> Report:
    return build(gather(paths), options)


def check_outputs(html: str | Path | None, markdown: str | Path | None, overwrite: bool = False) -> None:
    """Refuse outputs that cannot be written before the report is made (which takes seconds)."""
    if html is not None:
        html = Path(html)
        if html.is_dir():
            raise ConfigError(
                f"--html {html} is a folder; give the HTML file's name, e.g. {html / 'report.html'}"
            )
        check_output(html, "--html", overwrite, _html_made_here, WHOSE)
    if markdown is not None:
        markdown = Path(markdown)
        if markdown.exists() and not markdown.is_dir():
            raise ConfigError(
                f"--markdown {markdown} is a file; give a folder for report.md and its pictures"
            )
        check_output(markdown / MARKDOWN, "--markdown", overwrite, _markdown_made_here, WHOSE)


def write_html(report: Report, path: str | Path, overwrite: bool = False) -> Path:
    path = Path(path)
    check_outputs(path, None, overwrite)
    data = render_html(report.document).encode("utf-8")
    return write_output(path, lambda tmp: tmp.write_bytes(data), "--html", overwrite)


def write_markdown(report: Report, folder: str | Path, overwrite: bool = False) -> Path:
    """report.md and one PNG per figure in `folder`; returns report.md's path."""
    folder = Path(folder)
    check_outputs(None, folder, overwrite)
    text, pictures = render_markdown(report.document)
    for name in pictures:  # refused before any picture is written
        # The report's own charts, and the pictures attention and inspect drew for it.
        check_output(folder / name, "--markdown", overwrite, REPORT_PNGS, "vitcli")
    for name, data in pictures.items():
        write_output(folder / name, lambda tmp, data=data: tmp.write_bytes(data), "--markdown", overwrite)
    # Last: a report.md is there only when all its pictures are.
    data = text.encode("utf-8")
    return write_output(folder / MARKDOWN, lambda tmp: tmp.write_bytes(data), "--markdown", overwrite)


def _html_made_here(path: Path) -> bool:
    return f'<meta name="generator" content="{GENERATOR}">'.encode() in _head(path)


def _markdown_made_here(path: Path) -> bool:
    return _head(path).startswith(MARK.encode())


def _head(path: Path) -> bytes:
    try:
        with open(path, "rb") as file:
            return file.read(4096)
    except OSError:
        return b""
