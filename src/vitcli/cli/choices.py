"""The options that take one of a few words, as Enums built from the core's own lists: the parser checks
them and `--help` lists them, once, and the core receives plain strings (`plain`)."""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Any

from vitcli.attention import HEAD_FUSIONS
from vitcli.data.datasets import SPLITS
from vitcli.inspection.report import FIGURES
from vitcli.models.pooling import POOLS
from vitcli.models.specs import CHANNELS, POS_EMBEDS
from vitcli.models.vit import TOKENIZERS
from vitcli.sweep import MODES
from vitcli.sweep_slurm import EXECUTORS


def _choice(name: str, values: tuple[str, ...]) -> type[Enum]:
    return Enum(name, {value: value for value in values}, type=str)


TrainModel = _choice("TrainModel", ("vit", "cnn"))  # the kinds `vitcli train` offers options for
PosEmbed = _choice("PosEmbed", POS_EMBEDS)
Tokenizer = _choice("Tokenizer", TOKENIZERS)
Pool = _choice("Pool", POOLS)
Channels = _choice("Channels", CHANNELS)
SplitName = _choice("SplitName", SPLITS)
HeadFusion = _choice("HeadFusion", HEAD_FUSIONS)
SweepMode = _choice("SweepMode", MODES)
SweepExecutor = _choice("SweepExecutor", EXECUTORS)
Figure = _choice("Figure", FIGURES)


def plain(value: Any) -> Any:
    """An option's value as the core takes it: an Enum's word, a Path's string."""
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, Path):
        return str(value)
    return value
