"""`vitcli eval`: a checkpoint's accuracy, loss, per-class accuracy and confusion matrix."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer

from vitcli.cli.common import console, print_note, user_errors
from vitcli.cli.enums import SplitName, plain
from vitcli.cli.tables import eval_tables


def eval_(
    checkpoint: Path = typer.Argument(
        ...,
        help="A model.safetensors written by vitcli, its run directory, or a shipped model (vitcli models).",
    ),
    dataset: Optional[str] = typer.Option(
        None, help="Data set to evaluate on. \\[default: the one it was trained on]"
    ),
    split: SplitName = typer.Option("test", help="Which split of the data set."),
    data_dir: Optional[Path] = typer.Option(None, help="Where the data set is. \\[default: as in training]"),
    device: str = typer.Option("auto", help="auto, cpu, cuda or cuda:N."),
    batch_size: int = typer.Option(1024, help="Images per forward pass."),
    match_by_position: bool = typer.Option(
        False,
        "--match-by-position",
        help="Pair the data's classes with the model's in order when their names differ (refused otherwise).",
    ),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object instead of tables."),
) -> None:
    """Evaluate a checkpoint; the model is rebuilt from the checkpoint's own metadata.

    Another data set's classes are matched to the model's by name; when the names differ, the command
    says which and stops, unless --match-by-position is given.
    """
    from vitcli.lab.evaluate import eval_checkpoint

    with user_errors():
        report = eval_checkpoint(
            checkpoint,
            dataset,
            plain(split),
            plain(data_dir),
            device,
            batch_size,
            match_by_position=match_by_position,
        )
    for note in report.notes:
        print_note(note)
    if as_json:
        typer.echo(json.dumps(report.to_dict()))
        return
    for table in eval_tables(report):
        console.print(table)
