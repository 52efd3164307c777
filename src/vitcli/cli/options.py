"""The options `vitcli train` and `vitcli finetune` share, declared once as `Annotated` types.

Every option defaults to None, meaning "not given", so that a value from --config survives unless the
option is given on the command line: a command writes `epochs: Epochs = None`. The real defaults live in
vitcli.config and are shown in --help by `default_help`. Options whose help differs between the commands
(--lr, --seed, --name) are declared in each command.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from vitcli.cli.choices import plain
from vitcli.config import Config

DATA, TRAINING, LEVERS, OUTPUT = "Data", "Training", "Small-data levers (0 is off)", "Output"


# The config sections these shared options fill, by option name.
SHARED_SECTIONS = {
    "data": (
        "dataset",
        "data_dir",
        "val_size",
        "subset",
        "augment",
        "randaugment",
        "erase",
        "mixup",
        "cutmix",
        "mix_off_epochs",
    ),
    "train": (
        "epochs",
        "batch_size",
        "lr",
        "weight_decay",
        "warmup",
        "label_smoothing",
        "seed",
        "device",
        "compile",
        "drop_path",
        "ema",
        "clip_grad",
        "snapshot_attention",
        "tensorboard",
    ),
    "run": ("out", "name"),
}


def shared_overrides(options: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The [data], [train] and [run] overrides from a command's options (its `locals()`); paths become
    the config's strings and None stays "not given"."""
    return {section: {key: plain(options[key]) for key in keys} for section, keys in SHARED_SECTIONS.items()}


def default_help(defaults: Config, section: str, key: str) -> str:
    """` [default: VALUE]` for --help ("" for an unset value, whose meaning the help text gives)."""
    value = getattr(getattr(defaults, section), key)
    return (
        "" if value is None else f" \\[default: {str(value).lower() if isinstance(value, bool) else value}]"
    )


def _shared_default(section: str, key: str) -> str:
    # Both commands show this help, so it quotes a default they share (a test holds them equal).
    return default_help(Config(), section, key)


Dataset = Annotated[
    Optional[str],
    typer.Option(
        help="mnist, fashion-mnist, cifar10, cifar100 or folder:PATH." + _shared_default("data", "dataset"),
        rich_help_panel=DATA,
    ),
]
DataDir = Annotated[
    Optional[Path],
    typer.Option(
        help="Where data sets are (or are downloaded to). "
        "\\[default: $VITCLI_DATA_DIR or ~/.cache/vitcli/data]",
        rich_help_panel=DATA,
    ),
]
ValSize = Annotated[
    Optional[int],
    typer.Option(
        help="Training images held out for validation; 0 trains on all. "
        "\\[default: 5000, a tenth for sets under 50k]",
        rich_help_panel=DATA,
    ),
]
Subset = Annotated[
    Optional[int],
    typer.Option(
        help="Train on only N training images, for quick tries; validation and test are then capped at "
        "max(N, 500) images each (drawn with a fixed seed, every class kept; an explicit --val-size "
        "wins). `vitcli eval` still uses the whole test split.",
        rich_help_panel=DATA,
    ),
]
Augment = Annotated[
    Optional[bool],
    typer.Option(
        "--augment/--no-augment",
        help="Shifts for digits; crops with padding and flips for natural images. \\[default: augment]",
        rich_help_panel=DATA,
    ),
]

# The small-data levers (docs/small-data.md): each off at 0, each a key of [data] or [train].
RandAugment = Annotated[
    Optional[int],
    typer.Option(
        "--randaugment",
        help="RandAugment magnitude 0-30 (9 is usual): two ops per image, each image its own ops and "
        "strength up to M; digits get shape ops only.",
        rich_help_panel=LEVERS,
    ),
]
Erase = Annotated[
    Optional[float],
    typer.Option(help="Random erasing: the chance an image gets one noise box.", rich_help_panel=LEVERS),
]
Mixup = Annotated[
    Optional[float],
    typer.Option(help="mixup alpha (e.g. 0.8); soft targets.", rich_help_panel=LEVERS),
]
Cutmix = Annotated[
    Optional[float],
    typer.Option(
        help="cutmix alpha (e.g. 1.0); with --mixup, one of the two per batch.", rich_help_panel=LEVERS
    ),
]
MixOffEpochs = Annotated[
    Optional[int],
    typer.Option(help="Train the last N epochs without mixup and cutmix.", rich_help_panel=LEVERS),
]
DropPath = Annotated[
    Optional[float],
    typer.Option(
        help="Stochastic depth: the last block's drop rate, rising from 0 at the first (e.g. 0.1).",
        rich_help_panel=LEVERS,
    ),
]
Ema = Annotated[
    Optional[float],
    typer.Option(
        help="Decay of a moving average of the weights (e.g. 0.999), validated beside them; the better is "
        "kept.",
        rich_help_panel=LEVERS,
    ),
]
ClipGrad = Annotated[
    Optional[float],
    typer.Option(help="Clip the gradients' global norm to this (e.g. 1.0).", rich_help_panel=LEVERS),
]

Epochs = Annotated[
    Optional[int],
    typer.Option(
        help="Passes over the training images." + _shared_default("train", "epochs"), rich_help_panel=TRAINING
    ),
]
BatchSize = Annotated[
    Optional[int],
    typer.Option(help="Images per step." + _shared_default("train", "batch_size"), rich_help_panel=TRAINING),
]
WeightDecay = Annotated[
    Optional[float],
    typer.Option(
        help="AdamW weight decay on weight matrices." + _shared_default("train", "weight_decay"),
        rich_help_panel=TRAINING,
    ),
]
Warmup = Annotated[
    Optional[float],
    typer.Option(
        help="Epochs of linear warmup before the cosine decay." + _shared_default("train", "warmup"),
        rich_help_panel=TRAINING,
    ),
]
LabelSmoothing = Annotated[
    Optional[float],
    typer.Option(
        help="Label smoothing of the loss." + _shared_default("train", "label_smoothing"),
        rich_help_panel=TRAINING,
    ),
]
Device = Annotated[
    Optional[str],
    typer.Option(
        help="auto, cpu, cuda or cuda:N." + _shared_default("train", "device"), rich_help_panel=TRAINING
    ),
]
Compile = Annotated[
    Optional[bool],
    typer.Option(
        "--compile/--no-compile",
        help="torch.compile the model (faster steps, slower start). \\[default: no-compile]",
        rich_help_panel=TRAINING,
    ),
]

Out = Annotated[
    Optional[Path],
    typer.Option(help="Folder for run directories." + _shared_default("run", "out"), rich_help_panel=OUTPUT),
]
SnapshotAttention = Annotated[
    Optional[int],
    typer.Option(
        "--snapshot-attention",
        metavar="K",
        help="Keep the attention of K fixed validation images after every epoch (a few KB an epoch, in "
        "RUN/attention-snapshots/); vitcli inspect RUN --evolution draws it.",
        rich_help_panel=OUTPUT,
    ),
]
TensorBoard = Annotated[
    Optional[bool],
    typer.Option(
        "--tensorboard/--no-tensorboard",
        help="Write loss, accuracy, learning rate and images/s (per epoch, and ~50 times an epoch) to "
        "RUN/tensorboard/ for TensorBoard; needs pip install 'vitcli\\[tensorboard]'. "
        "\\[default: no-tensorboard]",
        rich_help_panel=OUTPUT,
    ),
]
ConfigFile = Annotated[
    Optional[Path],
    typer.Option(
        "--config", help="TOML file of settings; options given here override it.", rich_help_panel=OUTPUT
    ),
]
PresetName = Annotated[
    Optional[str],
    typer.Option(
        "--preset",
        help="A named recipe shipped with vitcli (see vitcli presets); options given here override it.",
        rich_help_panel=OUTPUT,
    ),
]
PrintConfig = Annotated[
    bool,
    typer.Option(
        "--print-config", help="Print the resolved config as TOML and exit.", rich_help_panel=OUTPUT
    ),
]

Nproc = Annotated[
    Optional[int],
    typer.Option(
        "--nproc",
        help="Train data-parallel in this many processes on this machine (torchrun's launcher; one per GPU, "
        "or CPU processes sharing the cores); --batch-size stays the global batch. See docs/scaling.md.",
        rich_help_panel=TRAINING,
    ),
]
Resume = Annotated[
    Optional[Path],
    typer.Option(
        "--resume",
        help="Go on with the run in this directory from its last state (after Ctrl-C, kill -9, a full disk); "
        "only --epochs (more), --device, --compile, --tensorboard and --data-dir may change.",
        rich_help_panel=OUTPUT,
    ),
]
Overwrite = Annotated[
    bool,
    typer.Option(
        "--overwrite", help="Replace the run in --out/--name if there is one.", rich_help_panel=OUTPUT
    ),
]
