"""`vitcli compare`: runs side by side in one table, and their curves in one PNG."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Optional

import typer
from rich import box
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from vitcli.cli.common import console, err_console, print_note, user_errors
from vitcli.cli.enums import plain
from vitcli.cli.tables import fmt_loss, fmt_pct

if TYPE_CHECKING:  # annotations only: the core is imported when a command runs
    from vitcli.lab.comparison import RunSummary


def compare(
    paths: list[Path] = typer.Argument(
        ...,
        metavar="RUN_DIR|SWEEP_DIR",
        help="Run directories (vitcli train, finetune), or one sweep directory (its finished runs).",
        show_default=False,
    ),
    out: Optional[Path] = typer.Option(
        None,
        "--out",
        help="Where to write the PNG of the curves. "
        "\\[default: compare.png beside the runs (in the folder that holds them), in the sweep directory "
        "for a sweep]",
    ),
    overwrite: bool = typer.Option(
        False, "--overwrite", help="Replace a compare.png (or --out) that vitcli compare wrote before."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object instead of the table."),
) -> None:
    """Compare runs: model, parameters, tokens, best validation and test accuracy, test loss, train time
    and throughput in one table; train and validation loss and accuracy per epoch for every run in one PNG.

    A run stopped before its test set was evaluated is shown with its epochs so far and n/a for the test.
    """
    from vitcli.lab.comparison import compare_runs
    from vitcli.training.curves import write_comparison

    with user_errors():
        comparison = compare_runs(paths)
        target = plain(out) or comparison.default_png()
        png = write_comparison(comparison.curves(), target, overwrite) if target is not None else None
    for note in comparison.notes:
        print_note(note)
    if png is None:
        print_note("no compare.png: the runs are in different folders; pass --out FILE to draw their curves")
    # With --json, stdout is the JSON alone and the line about the PNG goes to stderr.
    shown = err_console if as_json else console
    if as_json:
        typer.echo(json.dumps(comparison.to_dict()))
    else:
        title = f"sweep {comparison.sweep_dir.name}" if comparison.sweep_dir else "runs compared"
        console.print(compare_table(comparison.runs, title))
    if png is not None:
        shown.print(f"wrote [bold]{escape(str(png))}[/]", highlight=False, soft_wrap=True)


# --- the table -----------------------------------------------------------------------------------------


def compare_table(runs: list[RunSummary], title: str = "runs compared") -> Table:
    """One row per run, the best test accuracy in bold green. Each run's model is under its name, numbers
    never wrap and cells are one space apart, so the table fits 80 columns; a long run name folds."""
    # SIMPLE_HEAD draws a space between columns: no padding besides, and no edges.
    table = Table(
        title=title, title_justify="left", box=box.SIMPLE_HEAD, padding=0, show_edge=False, show_lines=True
    )
    table.add_column("run / model", overflow="fold", min_width=12)
    for name in ("params", "tokens", "best val", "test acc", "test loss", "train s", "img/s"):
        table.add_column(name, justify="right", no_wrap=True)
    best = max((r.test_accuracy for r in runs if r.test_accuracy is not None), default=None)
    for r in runs:
        stopped = f"after epoch {r.epochs}" if r.epochs else "in epoch 1"
        about = r.model if r.finished else f"{r.model}, stopped {stopped}"
        table.add_row(
            Text(r.label) + Text("\n") + Text(about, style="dim"),
            "n/a" if r.parameters is None else f"{r.parameters:,}",
            "n/a" if r.tokens is None else str(r.tokens),
            fmt_pct(r.best_val),
            fmt_pct(r.test_accuracy),
            fmt_loss(r.test_loss),
            "n/a" if r.train_seconds is None else f"{r.train_seconds:.1f}",
            "n/a" if r.images_per_s is None else f"{r.images_per_s:,.0f}",
            style="bold green" if best is not None and r.test_accuracy == best and len(runs) > 1 else None,
        )
    return table
