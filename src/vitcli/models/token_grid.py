"""How many tokens a model cuts an image into, and what to say when they are too few for attention.

Attention relates tokens to one another. An image that becomes one token leaves nothing to relate: the
map over the image is a single cell, so every map is uniform whatever the model learned. Two or three
tokens are a model, if a poor one, and their maps still compare something. Counted here are the image
tokens (the grid), not [CLS] or the distillation token, which every image has alike.

    image_tokens(model)                     rows x cols of its grid; None for a model without one (the CNN)
    few_tokens_warning(spec, info, model)   the line a run says before training, or None
    require_tokens(model, spec, info, name) a CheckpointError for a one-token model (attention, inspect)

The grid is set by one option, `--conv-layers` for the convolutional tokenizer and `--patch-size`
otherwise; the lines say which value of it gives enough tokens for these images.
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn

from vitcli.data.datasets import DatasetInfo
from vitcli.errors import CheckpointError
from vitcli.models.conv_tokenizer import auto_layers, pooled_size
from vitcli.settings.specs import MAX_CONV_LAYERS, ModelSpec, TimmSpec, ViTSpec

FEW_TOKENS = 4  # fewer image tokens than this (a 2x2 grid) get a warning before training
GOOD_TOKENS = 16  # a 4x4 grid: what the suggestions aim for first (mnist-cct's count)


def image_tokens(model: nn.Module) -> int | None:
    """The image tokens of a model that follows the attention contract (`grid_size`), prefix tokens left
    out; None for one without a grid (the CNN)."""
    grid = getattr(model, "grid_size", None)
    return None if grid is None else int(grid[0] * grid[1])


@dataclass(frozen=True)
class Lever:
    """The option that sets how many tokens an image becomes, and what each of its values gives."""

    setting: str  # the model's own choice, as options: "--tokenizer conv --conv-layers 3"
    option: str  # the one to change: "--conv-layers" or "--patch-size"
    tokens: dict[int, int]  # every value the option may take for these images -> its image tokens


def lever(spec: ModelSpec, info: DatasetInfo) -> Lever | None:
    """The option behind `spec`'s grid on images shaped like `info`; None for a model without a grid."""
    height, width = info.height, info.width
    if isinstance(spec, ViTSpec) and spec.tokenizer == "conv":
        tokens = {n: pooled_size(height, n) * pooled_size(width, n) for n in range(1, MAX_CONV_LAYERS + 1)}
        # A spec not yet built may say 0: the stages are then the ones the image size gives.
        layers = spec.conv_layers or f"0 (that is {auto_layers(height, width)})"
        return Lever(f"--tokenizer conv --conv-layers {layers}", "--conv-layers", tokens)
    if isinstance(spec, ViTSpec):
        setting = ("--tokenizer spt " if spec.tokenizer == "spt" else "") + f"--patch-size {spec.patch_size}"
    elif isinstance(spec, TimmSpec) and spec.img_size and spec.patch_size:
        height = width = spec.img_size  # timm's images are resized to it first
        setting = f"--img-size {spec.img_size} --patch-size {spec.patch_size}"
    else:
        return None
    # A patch must divide both sides (models/build.py refuses any other).
    sizes = [p for p in range(1, max(height, width) + 1) if height % p == 0 and width % p == 0]
    return Lever(setting, "--patch-size", {p: (height // p) * (width // p) for p in sizes})


def suggestion(found: Lever) -> str | None:
    """The values to suggest, as "--conv-layers 1 (16 tokens) or 2 (4 tokens)": the one that gives the
    fewest tokens of at least 16, then of at least 4 (the cheapest models attention has something to do
    in); None when no value reaches 4."""
    picks: list[tuple[int, int]] = []
    for least in (GOOD_TOKENS, FEW_TOKENS):
        enough = [(count, value) for value, count in found.tokens.items() if count >= least]
        if enough and min(enough) not in picks:
            picks.append(min(enough))
    if not picks:
        return None
    words = [f"{value} ({count} tokens)" for count, value in picks]
    return f"{found.option} {' or '.join(words)}"


def few_tokens_warning(spec: ModelSpec, info: DatasetInfo, model: nn.Module) -> str | None:
    """What a run says before training when `model` makes fewer than 4 tokens of each image, or None. A
    warning, not an error: such a model trains, its attention just has (almost) nothing to do."""
    tokens = image_tokens(model)
    found = lever(spec, info)
    if tokens is None or tokens >= FEW_TOKENS or found is None:
        return None
    rows, cols = model.grid_size
    amount = "nothing" if tokens == 1 else "little"
    advice = suggestion(found)
    if advice is None:
        advice = f"no {found.option} gives {FEW_TOKENS} tokens on images this small"
    else:
        advice = f"use {advice}"
    return (
        f"{info.height}x{info.width} images become {tokens} token{'s' * (tokens != 1)} (a {rows}x{cols} "
        f"grid) with {found.setting}, so attention has {amount} to relate; {advice}"
    )


def require_tokens(model: nn.Module, spec: ModelSpec, info: DatasetInfo, name: str) -> None:
    """A CheckpointError when `model` (checkpoint `name`'s) makes one token of each image: its attention
    maps would be one cell each, uniform whatever it learned. Two or more tokens are drawn."""
    if image_tokens(model) != 1:
        return
    found = lever(spec, info)
    advice = found and suggestion(found)
    how = f"with {advice}" if advice else "with more tokens (a smaller --patch-size, or fewer --conv-layers)"
    raise CheckpointError(
        f"{name}'s model turns each image into 1 token, so its attention has nothing to show (every map "
        f"would be uniform); train it again {how} to see attention"
    )
