"""`vitcli compare`: runs side by side in one table, and their curves in one PNG."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer
from rich.markup import escape

from vitcli.cli.common import console, err_console, print_note, user_errors
from vitcli.compare import compare_runs, compare_table
from vitcli.curves import write_comparison


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
        "\\[default: compare.png here; in the sweep directory for a sweep]",
    ),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object instead of the table."),
) -> None:
    """Compare runs: model, parameters, tokens, best validation and test accuracy, test loss, train time
    and throughput in one table; train and validation loss and accuracy per epoch for every run in one PNG.

    A run stopped before its test set was evaluated is shown with its epochs so far and n/a for the test.
    """
    with user_errors():
        comparison = compare_runs(paths)
        png = write_comparison(comparison.curves(), out or comparison.default_png())
    for note in comparison.notes:
        print_note(note)
    # With --json, stdout is the JSON alone and the line about the PNG goes to stderr.
    shown = err_console if as_json else console
    if as_json:
        typer.echo(json.dumps(comparison.to_dict()))
    else:
        title = f"sweep {comparison.sweep_dir.name}" if comparison.sweep_dir else "runs compared"
        console.print(compare_table(comparison.runs, title))
    shown.print(f"wrote [bold]{escape(str(png))}[/]", highlight=False, soft_wrap=True)
