"""`vitcli report`: a sweep's table again, or one offline page (HTML, or Markdown and its pictures) of
runs and sweeps: what was run, results, curves, sweeps, what the ViTs look at, and where it stands."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer
from rich import box
from rich.markup import escape
from rich.table import Table

from vitcli.cli.common import console, err_console, print_note, user_errors
from vitcli.errors import ConfigError


def report(
    paths: list[Path] = typer.Argument(
        ...,
        metavar="PATH",
        help="Run directories, sweep directories, or a folder holding them (runs/, sweeps/, a project).",
        show_default=False,
    ),
    html: Optional[Path] = typer.Option(
        None, "--html", metavar="FILE", help="Write the report as one self-contained HTML file."
    ),
    markdown: Optional[Path] = typer.Option(
        None, "--markdown", metavar="DIR", help="Write the report as DIR/report.md and one PNG per figure."
    ),
    baseline: Optional[str] = typer.Option(
        None,
        "--baseline",
        metavar="RUN",
        help="The run the others are measured against (its name or directory). "
        "\\[default: a CNN given alone, else a CNN of a sweep, else the first run]",
    ),
    data_dir: Optional[str] = typer.Option(
        None,
        "--data-dir",
        help="Where the runs' data sets are, for the attention figures. \\[default: each run's own]",
    ),
    images: int = typer.Option(
        3, "--images", min=1, max=16, help="Test images whose attention each ViT shows."
    ),
    device: str = typer.Option("auto", "--device", help="Device for the attention figures: auto, cpu, cuda."),
    overwrite: bool = typer.Option(
        False, "--overwrite", help="Replace an existing --html file or --markdown report."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print the numbers as JSON instead of the table."),
    plot: bool = typer.Option(False, "--plot", help="A sweep directory: write its PNG charts into it."),
) -> None:
    """Report runs and sweeps. Without --html or --markdown: a sweep's results table again (from its
    results.jsonl, with the rows its Slurm jobs left), or the results table of the runs given.

    With --html FILE: one page, readable offline and printable to PDF, of what was run (command,
    settings, data checksum, versions, device, commit), the results against a baseline, the curves,
    each sweep's options and costs, the ViTs' attention, and where each result stands against published
    figures. --markdown DIR writes the same as Markdown and pictures."""
    with user_errors(interrupted="stopped; no file was half-written (each is written whole or not at all)"):
        # Imported in here: a Ctrl-C while torch loads is then one line too.
        from vitcli.lab.reporting.report_options import Options
        from vitcli.lab.reporting.study import is_sweep

        if len(paths) == 1 and is_sweep(paths[0]) and not (html or markdown):
            _sweep_table(paths[0], as_json, plot)
            return
        if plot:
            raise ConfigError("--plot charts one sweep directory; for runs, use --html or --markdown")
        if not (html or markdown):
            _results_table(paths, baseline, as_json)
            return
        from vitcli.lab.reporting.pages import check_outputs, make_report, write_html, write_markdown

        check_outputs(html, markdown, overwrite)  # before the seconds the report takes
        made = make_report(paths, Options(baseline, data_dir, images, device))
        written = []
        if html:
            written.append(write_html(made, html, overwrite))
        if markdown:
            written.append(write_markdown(made, markdown, overwrite))
    for note in made.study.notes:
        print_note(note)
    if as_json:
        typer.echo(json.dumps(made.numbers))
    shown = err_console if as_json else console
    for path in written:
        shown.print(f"wrote [bold]{escape(str(path))}[/]", highlight=False, soft_wrap=True)


def _results_table(paths: list[Path], baseline: str | None, as_json: bool) -> None:
    """The runs' results table (the page's), or its numbers as JSON: no figures, no data loaded."""
    from vitcli.lab.reporting.ranking import choose_baseline, numbers
    from vitcli.lab.reporting.results_section import results
    from vitcli.lab.reporting.study import gather
    from vitcli.training.confidence import SMALL_TEST

    study = gather(paths)
    chosen = choose_baseline(study, baseline)
    for note in study.notes:
        print_note(note)
    if as_json:
        typer.echo(json.dumps(numbers(study, chosen)))
    elif not study.runs:
        print_note("no finished run to tabulate")
    else:
        table = results(study, chosen).blocks[0]
        console.print(_table(table))
        against = f" ({chosen.label})" if chosen else ""
        console.print(
            f"Best test accuracy first. The 95% interval (Wilson) is given for test sets under "
            f"{SMALL_TEST:,} images. Δ test: percentage points against the baseline{against}, for runs on "
            "its data set. --json or --html give every column.",
            style="dim",
            highlight=False,
            markup=False,
        )


def _sweep_table(sweep_dir: Path, as_json: bool, plot: bool) -> None:
    from vitcli.cli.sweep import print_results
    from vitcli.sweeps.results import recorded_rows

    rows = recorded_rows(sweep_dir)
    if not rows:
        raise ConfigError(
            f"{sweep_dir} holds no sweep results (results.jsonl); pass a directory written by vitcli sweep"
        )
    axes = list(dict.fromkeys(k for row in rows for k in row["axes"]))
    print_results(rows, axes, sweep_dir, as_json, plot)


TERMINAL_COLUMNS = ("run", "model", "seed", "test", "test 95% interval", "params", "Δ test")


def _table(table) -> Table:
    """The results table (`lab.reporting.document.Table`) in the terminal: the columns that fit 80."""
    keep = [i for i, name in enumerate(table.header) if name in TERMINAL_COLUMNS]
    shown = Table(box=box.SIMPLE_HEAD)
    for i in keep:
        shown.add_column(
            escape(table.header[i]),
            justify="right" if i in table.numeric else "left",
            overflow="fold",
            no_wrap=table.header[i] in ("test", "val", "seed"),
        )
    for r, row in enumerate(table.rows):
        cells = [escape(row[i]) for i in keep]
        if r in table.marked:
            cells[0] += " (baseline)"
        shown.add_row(*cells, style="bold" if r in table.marked else None)
    return shown
