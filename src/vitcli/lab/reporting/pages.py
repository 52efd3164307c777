"""A report from paths to files: the Python side of `vitcli report --html/--markdown`.

    report = make_report(["runs/vit-...", "runs/cnn-...", "sweeps/depth-..."])
    write_html(report, "report.html")
    write_markdown(report, "report/")          # report.md and its pictures

Neither replaces a file it did not make unless `overwrite`; each file is written whole or not at all.
"""

from __future__ import annotations

from pathlib import Path

from vitcli.errors import ConfigError, OutputError
from vitcli.lab.reporting.html_page import render_html
from vitcli.lab.reporting.markdown_page import MARKDOWN, render_markdown
from vitcli.lab.reporting.report_options import Options
from vitcli.lab.reporting.sections import Report, build
from vitcli.lab.reporting.study import gather
from vitcli.runtime.files import atomic_write, writing


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
        if not overwrite:
            _refuse_existing(html, "--html")
    if markdown is not None:
        markdown = Path(markdown)
        if markdown.exists() and not markdown.is_dir():
            raise ConfigError(
                f"--markdown {markdown} is a file; give a folder for report.md and its pictures"
            )
        if not overwrite:
            _refuse_existing(markdown / MARKDOWN, "--markdown")


def write_html(report: Report, path: str | Path, overwrite: bool = False) -> Path:
    path = Path(path)
    check_outputs(path, None, overwrite)
    _write(path, render_html(report.document).encode("utf-8"), overwrite, "--html")
    return path


def write_markdown(report: Report, folder: str | Path, overwrite: bool = False) -> Path:
    """report.md and one PNG per figure in `folder`; returns report.md's path."""
    folder = Path(folder)
    check_outputs(None, folder, overwrite)
    text, pictures = render_markdown(report.document)
    if not overwrite:  # refuse before any picture is written
        for name in pictures:
            _refuse_existing(folder / name, "--markdown")
    for name, data in pictures.items():
        _write(folder / name, data, overwrite, "--markdown")
    # Last: a report.md is there only when all its pictures are.
    _write(folder / MARKDOWN, text.encode("utf-8"), overwrite, "--markdown")
    return folder / MARKDOWN


def _refuse_existing(path: Path, option: str) -> None:
    if path.exists():
        raise ConfigError(f"{path} already exists; pass --overwrite to replace it, or another {option}")


def _write(path: Path, data: bytes, overwrite: bool, option: str) -> None:
    try:
        with writing(path, option=option):
            atomic_write(path, lambda tmp: tmp.write_bytes(data), replace=overwrite)
    except OutputError as e:
        if not overwrite and path.exists():  # made by someone else meanwhile: never replaced
            _refuse_existing(path, option)
        raise e from None
