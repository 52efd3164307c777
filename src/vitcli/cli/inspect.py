"""`vitcli inspect`: the ViT paper's analysis figures for a checkpoint, attention across training, and
two models side by side."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Optional

import typer
from rich.table import Table

from vitcli.cli.common import console, print_note, user_errors
from vitcli.cli.enums import Figure, SplitName, plain
from vitcli.cli.tables import fmt_pct
from vitcli.settings.choices import INSPECT_IMAGES

if TYPE_CHECKING:  # annotations only: the core is imported when a command runs
    from vitcli.lab.inspection.analysis import InspectReport

_FIGURES, _IMAGES, _OUTPUT = "Figures", "Images (distance, classes, --against)", "Output"


def inspect(
    checkpoint: Path = typer.Argument(
        ...,
        help="A model.safetensors written by vitcli, its run directory, or a shipped model (vitcli models).",
    ),
    figure: Optional[list[Figure]] = typer.Option(
        None,
        "--figure",
        metavar="FIGURE",
        rich_help_panel=_FIGURES,
        help="distance, positions, filters or classes; several: --figure distance classes. "
        "\\[default: every one that applies, unless --evolution or --against is given]",
    ),
    evolution: bool = typer.Option(
        False,
        "--evolution",
        rich_help_panel=_FIGURES,
        help="Draw the snapshots of a run trained with --snapshot-attention K: epoch against block, "
        "per image.",
    ),
    against: Optional[Path] = typer.Option(
        None,
        "--against",
        metavar="B",
        rich_help_panel=_FIGURES,
        help="Another checkpoint of the same classes (a CNN or a ViT): per-class accuracies and the images "
        "only one of the two gets right.",
    ),
    components: int = typer.Option(
        28, help="Principal components drawn in filters.png.", rich_help_panel=_FIGURES
    ),
    split: SplitName = typer.Option("test", help="Which split.", rich_help_panel=_IMAGES),
    images: Optional[int] = typer.Option(
        None,
        help=f"Images drawn at random from the split (see --seed). \\[default: {INSPECT_IMAGES:,}; the "
        "whole split with --against]",
        rich_help_panel=_IMAGES,
    ),
    seed: int = typer.Option(0, help="Seed for drawing the images.", rich_help_panel=_IMAGES),
    dataset: Optional[str] = typer.Option(
        None,
        help="Data set of the model's shape. \\[default: the one it was trained on]",
        rich_help_panel=_IMAGES,
    ),
    data_dir: Optional[Path] = typer.Option(
        None, help="Where the data set is. \\[default: as in training]", rich_help_panel=_IMAGES
    ),
    match_by_position: bool = typer.Option(
        False,
        "--match-by-position",
        help="Pair the data's classes with the model's in order when their names differ.",
        rich_help_panel=_IMAGES,
    ),
    out: Optional[Path] = typer.Option(
        None,
        help="Folder for the PNGs. \\[default: the run directory's inspect/; a shipped model's "
        "NAME-outputs/inspect/]",
        rich_help_panel=_OUTPUT,
    ),
    overwrite: bool = typer.Option(
        False,
        "--overwrite",
        help="Replace pictures of the same names that vitcli inspect drew before (never other files).",
        rich_help_panel=_OUTPUT,
    ),
    device: str = typer.Option("auto", help="auto, cpu, cuda or cuda:N.", rich_help_panel=_OUTPUT),
    as_json: bool = typer.Option(
        False, "--json", help="Print every figure's numbers as JSON.", rich_help_panel=_OUTPUT
    ),
) -> None:
    """Draw what a ViT learned: how far each head looks, its position embeddings, its patch filters and its
    attention per class; how attention formed during training (--evolution); where it and another model
    disagree (--against).
    """
    from vitcli.lab.inspection.analysis import inspect_checkpoint
    from vitcli.lab.inspection.figures import draw_report
    from vitcli.lab.inspection.json_view import report_dict

    with user_errors():
        report = inspect_checkpoint(
            checkpoint,
            figures=[plain(f) for f in figure] if figure else None,
            evolution=evolution,
            against=against,
            split=plain(split),
            images=images,
            seed=seed,
            data_dir=plain(data_dir),
            dataset=dataset,
            match_by_position=match_by_position,
            components=components,
            device=device,
        )
        report = draw_report(report, out, overwrite)
    for note in report.notes:
        print_note(note)
    for name, why in report.skipped.items():
        print_note(f"no {name}.png: {why}")
    if as_json:
        typer.echo(json.dumps(report_dict(report)))
        return
    console.print(summary_table(report))
    if report.against is not None:
        console.print(against_table(report))
    folders = {p.parent for paths in report.pictures.values() for p in paths}
    for folder in sorted(folders):
        console.print(f"pictures in [bold]{folder}[/]", highlight=False, soft_wrap=True)


def summary_table(report: InspectReport) -> Table:
    """One row per figure: its file and, in a few words, what its numbers say."""
    table = Table(title=f"{report.checkpoint} ({report.model})", title_justify="left")
    table.add_column("figure", no_wrap=True)
    table.add_column("what it shows", overflow="fold")
    for name, paths in report.pictures.items():
        file = paths[0].name if len(paths) == 1 else f"{len(paths)} files: {paths[0].name}, ..."
        table.add_row(file, _summary(report, name))
    return table


def _summary(report: InspectReport, name: str) -> str:
    from vitcli.lab.inspection.positions import neighbour_similarity

    if name == "distance":
        d = report.distance
        return (
            f"block 1: {d[0].min():.1f}-{d[0].max():.1f} px, block {len(d)}: {d[-1].min():.1f}-"
            f"{d[-1].max():.1f} px (uniform attention: {report.uniform_distance:.1f} px)"
        )
    if name == "positions":
        adjacent, average = neighbour_similarity(report.similarity)
        return f"mean similarity of neighbouring patches {adjacent:.2f}, of any two patches {average:.2f}"
    if name == "filters":
        c = report.components
        share = 100 * float(c.explained.sum())
        return f"{len(c.patches)} components of the {c.source} filters: {share:.0f}% of their variance"
    if name == "classes":
        return (
            f"{len(report.classes)} classes, {int(report.class_counts.sum()):,} images, {report.query} query"
        )
    if name == "evolution":
        e = report.evolution
        return f"{len(e.sources)} images, epochs {e.epochs[0]}-{e.epochs[-1]}"
    summary = report.against.to_dict()
    return (
        f"{summary['images']:,} images: both right {summary['both_right']:,}, only A {summary['only_a']:,}, "
        f"only B {summary['only_b']:,}, both wrong {summary['both_wrong']:,} "
        f"(McNemar p = {summary['mcnemar_p']:.2g})"
    )


def against_table(report: InspectReport) -> Table:
    """Per class: each model's accuracy and their difference."""
    against = report.against
    table = Table(title=f"A: {against.a}\nB: {against.b}", title_justify="left")
    for column in ("class", "images", "A", "B", "A - B"):
        table.add_column(column, justify="left" if column == "class" else "right", no_wrap=column != "class")
    for row in against.per_class():
        table.add_row(
            row["class"],
            f"{row['images']:,}",
            fmt_pct(row["a_accuracy"]),
            fmt_pct(row["b_accuracy"]),
            f"{100 * row['difference']:+.2f}",
        )
    summary = against.to_dict()
    table.add_section()
    table.add_row(
        "all",
        f"{summary['images']:,}",
        fmt_pct(summary["a_accuracy"]),
        fmt_pct(summary["b_accuracy"]),
        f"{100 * (summary['a_accuracy'] - summary['b_accuracy']):+.2f}",
    )
    return table
