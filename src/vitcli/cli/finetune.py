"""`vitcli finetune`: parse options into a Config whose [model] is a timm spec, run it, print the summary."""

from __future__ import annotations

import typer

from vitcli.cli.options import ConfigFile, Nproc, Overwrite, PrintConfig, Resume, given_settings
from vitcli.cli.train import train_and_print
from vitcli.settings.config import finetune_defaults


# As in `train`, the model, data, training and output options come from the settings' fields (the timm
# spec's here; cli/options.py), and the defaults are vitcli.settings.config.finetune_defaults.
def finetune(
    ctx: typer.Context,
    nproc: Nproc = None,
    config: ConfigFile = None,
    print_config: PrintConfig = False,
    resume: Resume = None,
    overwrite: Overwrite = False,
) -> None:
    """Fine-tune a timm ViT (default ViT-S/16), pretrained or not, adapted to small or gray images.

    The image size, patch grid, channels and classes are adapted with timm's own functions; the summary
    shows each adaptation.
    """
    overrides = given_settings(ctx, "finetune")
    overrides["model"]["kind"] = "timm"
    train_and_print(
        config, overrides, print_config, finetune_defaults(), resume, overwrite, nproc=nproc, ctx=ctx
    )
