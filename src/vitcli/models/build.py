"""What a model spec builds (`vitcli.settings.specs`): the module alone, from the data's shape (what a
checkpoint rebuilds), or everything a training run needs (the module, how its inputs are prepared, its
optimiser parameter groups and a record of what was adapted).

    module = build_module(ViTSpec(embed_dim=64), info)
    built = build_model(spec, info, stats, weight_decay=0.05, emit=print)

The engine, the run directory and the reports never ask which kind they have.
"""

from __future__ import annotations

from torch import nn

from vitcli.data.datasets import ChannelStats, DatasetInfo
from vitcli.data.preprocessing import Preprocessing
from vitcli.errors import ConfigError
from vitcli.events import Status
from vitcli.models.built import Built, Emit
from vitcli.models.cnn import CNN
from vitcli.models.conv_tokenizer import resolve_conv
from vitcli.models.timm_build import build_finetune
from vitcli.models.timm_vit import build_timm_vit, resolve_timm
from vitcli.models.token_grid import few_tokens_warning
from vitcli.models.vit import ViT
from vitcli.settings.specs import CNNSpec, ModelSpec, TimmSpec, ViTSpec


def build_module(spec: ModelSpec, info: DatasetInfo, drop_path: float = 0.0) -> nn.Module:
    """The module for images shaped like `info`, with fresh weights; a ConfigError if they do not fit.
    `drop_path` (stochastic depth) acts in training only, so a checkpoint is rebuilt without it."""
    if isinstance(spec, ViTSpec):
        return _vit(resolve_conv(spec, info), info, drop_path)
    if isinstance(spec, CNNSpec):
        return _cnn(spec, info)
    if isinstance(spec, TimmSpec):
        return build_timm_vit(resolve_timm(spec), info, drop_path)
    raise TypeError(f"no builder for {type(spec).__name__}")


def build_model(
    spec: ModelSpec,
    info: DatasetInfo,
    stats: ChannelStats,
    *,
    weight_decay: float,
    emit: Emit,
    drop_path: float = 0.0,
) -> Built:
    """Module, preprocessing and the rest for training. Models trained from scratch normalise with the
    data's own statistics and use the engine's parameter groups; a timm model is adapted to the data and
    gets its pretrained weights (`models/timm_build.py`). A distilled ViT's teacher is a trained
    checkpoint, which the training run loads and adds (`vitcli.training.teacher`). A model that makes
    fewer than 4 tokens of an image is built all the same, with a warning (`models/token_grid.py`)."""
    if isinstance(spec, TimmSpec):
        built = build_finetune(spec, info, stats, weight_decay, emit, drop_path)
    else:
        exact = resolve_conv(spec, info)  # --conv-layers 0: the stages these images get, in the spec
        built = Built(exact, build_module(exact, info, drop_path), Preprocessing(stats.mean, stats.std))
        if exact is not spec:  # say what 0 chose
            rows, cols = built.module.grid_size
            chose = f"--conv-layers 0 chose {exact.conv_layers} for {info.height}x{info.width} images"
            emit(Status(f"{chose}: a {rows}x{cols} grid of tokens"))
    warning = few_tokens_warning(built.spec, info, built.module)  # a timm spec's sizes are resolved here
    if warning:
        emit(Status(warning, warning=True))
    return built


def _vit(spec: ViTSpec, info: DatasetInfo, drop_path: float) -> ViT:
    divides = info.height % spec.patch_size == 0 and info.width % spec.patch_size == 0
    if spec.tokenizer != "conv" and not divides:
        fits = [
            p
            for p in range(2, max(info.height, info.width) + 1)
            if info.height % p == 0 and info.width % p == 0
        ]
        raise ConfigError(
            f"{info.name} images are {info.height}x{info.width}, not divisible by --patch-size "
            f"{spec.patch_size}; use a patch size that divides both, "
            f"such as {', '.join(map(str, fits)) or '1'}"
        )
    return ViT(
        image_size=(info.height, info.width),
        in_channels=info.channels,
        num_classes=len(info.classes),
        embed_dim=spec.embed_dim,
        patch_size=spec.patch_size,
        depth=spec.depth,
        heads=spec.heads,
        mlp_dim=spec.mlp_dim,
        pos_embed=spec.pos_embed,
        dropout=spec.dropout,
        drop_path=drop_path,
        tokenizer=spec.tokenizer,
        conv_layers=spec.conv_layers,
        lsa=spec.lsa,
        pool=spec.pool,
        distilled=spec.teacher is not None,
    )


def _cnn(spec: CNNSpec, info: DatasetInfo) -> CNN:
    if min(info.height, info.width) < 8:
        raise ConfigError(
            f"the CNN needs images of at least 8x8 pixels; {info.name} has {info.height}x{info.width}"
        )
    return CNN(
        image_size=(info.height, info.width),
        in_channels=info.channels,
        num_classes=len(info.classes),
        dropout=spec.dropout,
    )
