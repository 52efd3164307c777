"""The options that take one of a few words, as Enums built from the core's own lists: the parser checks
them and `--help` lists them, from the lists in `vitcli.settings.choices`, and the core receives plain
strings (`plain`)."""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Any

from vitcli.settings.choices import (
    CHANNELS,
    EXECUTORS,
    FIGURES,
    HEAD_FUSIONS,
    POOLS,
    POS_EMBEDS,
    SPLITS,
    SWEEP_MODES,
    TOKENIZERS,
    TRAIN_KINDS,
)


def choice(name: str, values: tuple[str, ...]) -> type[Enum]:
    return Enum(name, {value: value for value in values}, type=str)


TrainModel = choice("TrainModel", TRAIN_KINDS)  # the kinds `vitcli train` offers options for
PosEmbed = choice("PosEmbed", POS_EMBEDS)
Tokenizer = choice("Tokenizer", TOKENIZERS)
Pool = choice("Pool", POOLS)
Channels = choice("Channels", CHANNELS)
SplitName = choice("SplitName", SPLITS)
HeadFusion = choice("HeadFusion", HEAD_FUSIONS)
SweepMode = choice("SweepMode", SWEEP_MODES)
SweepExecutor = choice("SweepExecutor", EXECUTORS)
Figure = choice("Figure", FIGURES)


def plain(value: Any) -> Any:
    """An option's value as the core takes it: an Enum's word, a Path's string."""
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, Path):
        return str(value)
    return value
