"""`vitcli predict`: the top classes of image files, by a checkpoint, as a table or JSON."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

import typer
from rich import box
from rich.table import Table

from vitcli.cli.common import console, print_note, user_errors

if TYPE_CHECKING:  # annotations only: the core is imported when a command runs
    from vitcli.lab.prediction import PredictReport


def predict_(
    checkpoint: Path = typer.Argument(
        ...,
        help="A model.safetensors written by vitcli, its run directory, or a shipped model (vitcli models).",
    ),
    images: list[Path] = typer.Argument(..., help="Image files (PNG, JPEG, ...) to classify."),
    top_k: int = typer.Option(5, "--top-k", help="Classes to show per image (at most all of them)."),
    invert: bool = typer.Option(
        False,
        "--invert",
        help="Invert every image first (255 - value): a dark digit on light paper for MNIST.",
    ),
    device: str = typer.Option("auto", help="auto, cpu, cuda or cuda:N."),
    batch_size: int = typer.Option(256, help="Images per forward pass."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object instead of a table."),
) -> None:
    """Classify image files with a checkpoint: the top classes of each, with their probabilities.

    Each image is prepared as the training images were: converted to the model's
    channels, centre-cropped to their aspect ratio and resized to their size
    when it differs, then normalised as in training. An image much brighter or
    darker than the training images gets a note, which suggests --invert when
    inverting would bring it close to them.
    """
    from vitcli.lab.prediction import predict

    with user_errors():
        report = predict(checkpoint, images, top_k=top_k, invert=invert, device=device, batch_size=batch_size)
    for note in report.notes:
        print_note(note)
    for p in report.images:
        if p.steps:
            print_note(f"{p.path}: {', '.join(p.steps)}")
        if p.note:
            print_note(p.note)
    if as_json:
        typer.echo(json.dumps(report.to_dict()))
        return
    console.print(predictions_table(report))


def predictions_table(report: PredictReport) -> Table:
    """One section per image: its path on the first row, then a row per class, most probable first.
    Paths and class names wrap; the probabilities never do, so the table fits 80 columns."""
    table = Table(title=f"predictions of {report.checkpoint}", title_justify="left", box=box.SIMPLE_HEAD)
    table.add_column("image", overflow="fold", ratio=3)
    table.add_column("#", justify="right", no_wrap=True)
    table.add_column("class", overflow="fold", ratio=2)
    table.add_column("probability", justify="right", no_wrap=True, min_width=11)
    for p in report.images:
        for rank, (name, probability) in enumerate(p.top_k, 1):
            last = rank == len(p.top_k)
            table.add_row(
                str(p.path) if rank == 1 else "", str(rank), name, percent(probability), end_section=last
            )
    return table


def percent(probability: float) -> str:
    """97.1%; "<0.1%" rather than a 0.0% that reads as impossible."""
    return "<0.1%" if 0 < probability < 0.0005 else f"{100 * probability:.1f}%"
