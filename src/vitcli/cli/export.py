"""`vitcli export`: a checkpoint as a timm model folder or an ONNX file."""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Optional

import typer
from rich.markup import escape
from rich.padding import Padding
from rich.text import Text

from vitcli.cli.common import console, user_errors
from vitcli.cli.enums import plain
from vitcli.settings.choices import EXPORT_FORMATS

ExportFormat = Enum("ExportFormat", {value: value for value in EXPORT_FORMATS}, type=str)


def export(
    checkpoint: Path = typer.Argument(
        ...,
        help="A model.safetensors written by vitcli, its run directory, or a shipped model (vitcli models).",
    ),
    format: ExportFormat = typer.Option(
        ...,
        "--format",
        help='timm: a folder that timm.create_model("local-dir:FOLDER", pretrained=True) loads (ViTs timm '
        "can express); onnx: one .onnx file taking [0, 1] images (every model).",
    ),
    out: Optional[Path] = typer.Option(
        None,
        help="Where to write. \\[default: beside the checkpoint, RUN/export-timm or RUN/model.onnx; a "
        "shipped model's in NAME-outputs/]",
    ),
    overwrite: bool = typer.Option(
        False, "--overwrite", help="Replace an existing export at the same place."
    ),
) -> None:
    """Export a checkpoint for timm or ONNX runtimes, with its normalisation and class names.

    The timm folder holds config.json and model.safetensors, with the normalisation and input size in its
    pretrained_cfg; the ONNX model normalises (and resizes) inside its graph.
    """
    from vitcli.lab.exporter import describe_export, export_checkpoint

    with user_errors():
        target = export_checkpoint(checkpoint, plain(format), plain(out), overwrite)
        lines = describe_export(target, plain(format))
    console.print(f"wrote {escape(str(target))}", highlight=False, soft_wrap=True)
    for line in lines:  # indented and wrapped to the terminal, but for a command to copy whole
        if line.startswith("load with"):
            console.print(f"  {escape(line)}", highlight=False, soft_wrap=True)
        else:
            console.print(Padding(Text(line), (0, 0, 0, 2)))
