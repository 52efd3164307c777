"""`vitcli attention`: the [CLS] attention of every block and head, and the rollout, as pictures."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Optional

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from vitcli.cli.common import console, print_note, user_errors
from vitcli.cli.enums import HeadFusion, SplitName, plain
from vitcli.cli.half_blocks import half_blocks

if TYPE_CHECKING:  # annotations only: the core is imported when a command runs
    from vitcli.lab.explain import AttentionReport


def attention(
    checkpoint: Path = typer.Argument(
        ...,
        help="A ViT model.safetensors written by vitcli, its run directory, or a shipped model "
        "(vitcli models).",
    ),
    index: Optional[list[int]] = typer.Option(
        None,
        "--index",
        help="Images of the split by position: --index 0 5 17. \\[default: 0]",
        rich_help_panel="Images",
    ),
    image: Optional[list[Path]] = typer.Option(
        None,
        "--image",
        help="Image files instead: --image a.png b.png (converted to the model's channels and size).",
        rich_help_panel="Images",
    ),
    random: Optional[int] = typer.Option(
        None, "--random", help="N images of the split drawn at random (see --seed).", rich_help_panel="Images"
    ),
    split: SplitName = typer.Option(
        "test", help="Which split (val and train are split as in training).", rich_help_panel="Images"
    ),
    seed: int = typer.Option(0, help="Seed for --random.", rich_help_panel="Images"),
    dataset: Optional[str] = typer.Option(
        None,
        help="Data set to take images from, of the model's shape. \\[default: the one it was trained on]",
        rich_help_panel="Images",
    ),
    data_dir: Optional[Path] = typer.Option(
        None, help="Where the data set is. \\[default: as in training]", rich_help_panel="Images"
    ),
    match_by_position: bool = typer.Option(
        False,
        "--match-by-position",
        help="Pair the data's classes with the model's in order when their names differ (refused otherwise).",
        rich_help_panel="Images",
    ),
    head_fusion: HeadFusion = typer.Option(
        "mean", help="How rollout fuses the heads of a block.", rich_help_panel="Rollout"
    ),
    discard: float = typer.Option(
        0.0,
        help="Fraction of the weakest attention weights rollout drops in each block, in [0, 1).",
        rich_help_panel="Rollout",
    ),
    out: Optional[Path] = typer.Option(
        None,
        help="Folder for the PNGs. \\[default: the run directory's attention/; a shipped model's "
        "NAME-outputs/attention/]",
        rich_help_panel="Output",
    ),
    overwrite: bool = typer.Option(
        False,
        "--overwrite",
        help="Replace pictures of the same names that vitcli attention drew before (never other files).",
        rich_help_panel="Output",
    ),
    device: str = typer.Option("auto", help="auto, cpu, cuda or cuda:N.", rich_help_panel="Output"),
    as_json: bool = typer.Option(
        False,
        "--json",
        help="Print the raw maps as JSON (lists) instead of previews.",
        rich_help_panel="Output",
    ),
    preview: Optional[bool] = typer.Option(
        None,
        "--preview/--no-preview",
        help="Show the input and the rollout as block-character pictures, in colour (asked for, also into "
        "a pipe). \\[default: in a colour terminal only]",
        rich_help_panel="Output",
    ),
) -> None:
    """Draw what each block and head of a ViT attends to, and the attention rollout, for a few images.

    The checkpoint comes first, then the options; --index and --image take several values each.
    """
    from vitcli.lab.attention_figure import draw_report
    from vitcli.lab.explain import explain_checkpoint

    with user_errors():
        report = explain_checkpoint(
            checkpoint,
            indices=index or None,
            files=image or None,
            random=random,
            split=plain(split),
            seed=seed,
            data_dir=plain(data_dir),
            dataset=dataset,
            match_by_position=match_by_position,
            head_fusion=plain(head_fusion),
            discard_ratio=discard,
            device=device,
        )
        report = draw_report(report, out, overwrite)
    for note in report.notes:
        print_note(note)
    if as_json:
        typer.echo(json.dumps(report.to_dict()))
        return
    coloured = preview_console(preview)
    for shown in previews(report, coloured is not None):
        # Only the pictures (a Table) in forced colour: the lines around them stay plain text for grep.
        (coloured if isinstance(shown, Table) else console).print(shown)


def preview_console(asked: bool | None) -> Console | None:
    """Where the half-block pictures go, or None for none: they are nothing but colour. By default, only
    to a terminal that shows colour. Asked for with --preview, also into a pipe or a file, in ANSI colour
    all the same (`| less -R` shows them); under NO_COLOR (or in a terminal without colour) a note says
    why they are left out rather than print colourless blocks."""
    if asked is False:
        return None
    no_color = console.no_color or os.environ.get("NO_COLOR", "") != ""  # as now, not at the import
    if console.is_terminal and console.color_system is not None and not no_color:
        return console
    if asked is None:  # no block art in a pipe or a file, or without colour
        return None
    if no_color:
        print_note("--preview draws its pictures in colour only, and NO_COLOR is set: left out")
        return None
    if console.is_terminal:  # a terminal without colour (TERM=dumb)
        print_note("--preview draws its pictures in colour only, and this terminal shows none: left out")
        return None
    truecolor = os.environ.get("COLORTERM", "") in ("truecolor", "24bit")
    return Console(force_terminal=True, color_system="truecolor" if truecolor else "256", width=console.width)


def previews(report: AttentionReport, pictures: bool = True) -> list:
    """Per image: a line with the prediction, then the input and the rollout overlay in half-block
    characters (if `pictures`) beside the top classes."""
    from vitcli.lab.attention_figure import overlay_rgb

    shown = []
    fusion = f"{report.head_fusion} of heads" + (
        f", discard {report.discard_ratio:g}" if report.discard_ratio else ""
    )
    for result, picture in zip(report.images, report.pictures):
        right = result.label in (None, result.prediction)
        title = Text.assemble(
            (result.source, "bold"),
            ": predicted ",
            (report.classes[result.prediction], "bold green" if right else "bold red"),
            f" ({100 * result.probability:.1f}%)",
            "" if result.label is None else f", true {report.classes[result.label]}",
        )
        top = result.probabilities.topk(min(3, len(report.classes)))
        ranking = Text(
            ("left: input\nright: rollout\n\n" if pictures else "")
            + "top classes\n"
            + "\n".join(
                f"{100 * p:5.1f}% {report.classes[i]}"
                for p, i in zip(top.values.tolist(), top.indices.tolist())
            ),
            overflow="fold",
        )
        if not pictures:
            shown += [title, ranking, Text(f"rollout: {fusion}; picture: {picture}", style="dim")]
            continue
        before, after = overlay_rgb(result)
        grid = Table.grid(padding=(0, 2))
        grid.add_column(no_wrap=True, min_width=before.shape[1])
        grid.add_column(no_wrap=True, min_width=after.shape[1])
        grid.add_column()
        grid.add_row(half_blocks(before), half_blocks(after), ranking)
        shown += [title, grid, Text(f"rollout: {fusion}; picture: {picture}", style="dim")]
    return shown
