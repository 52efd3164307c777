"""Models built from a ModelConfig and the data's shape alone, so a checkpoint can rebuild its model."""

from __future__ import annotations

from torch import nn

from vitcli.config import FinetuneConfig, ModelConfig
from vitcli.data.datasets import DatasetInfo
from vitcli.errors import ConfigError
from vitcli.models.cnn import CNN
from vitcli.models.vit import ViT


def build_model(cfg: ModelConfig, info: DatasetInfo, finetune: FinetuneConfig | None = None) -> nn.Module:
    """The model for `cfg` on images shaped like `info`; a ConfigError if they do not fit. A timm model
    (name "timm") is described by `finetune` and built with random weights, never fetched."""
    size = (info.height, info.width)
    if cfg.name == "timm":
        if finetune is None:
            raise ConfigError("a timm model needs its [finetune] settings (the config's finetune section)")
        from vitcli.models.timm_vit import build_timm_vit  # timm is imported only for timm models

        return build_timm_vit(finetune, info)
    if cfg.name == "cnn":
        if min(size) < 8:
            raise ConfigError(f"the CNN needs images of at least 8x8 pixels; {info.name} has {info.height}x{info.width}")
        return CNN(image_size=size, in_channels=info.channels, num_classes=len(info.classes), dropout=cfg.dropout)
    if info.height % cfg.patch_size or info.width % cfg.patch_size:
        fits = [p for p in range(1, max(size) + 1) if info.height % p == 0 and info.width % p == 0 and p > 1]
        raise ConfigError(
            f"{info.name} images are {info.height}x{info.width}, not divisible by --patch-size {cfg.patch_size}; "
            f"use a patch size that divides both, such as {', '.join(map(str, fits)) or '1'}"
        )
    return ViT(
        image_size=size,
        in_channels=info.channels,
        num_classes=len(info.classes),
        embed_dim=cfg.embed_dim,
        patch_size=cfg.patch_size,
        depth=cfg.depth,
        heads=cfg.heads,
        mlp_dim=cfg.mlp_dim,
        pos_embed=cfg.pos_embed,
        dropout=cfg.dropout,
    )


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def num_tokens(model: nn.Module) -> int | None:
    """Tokens per image (patches + prefix tokens such as [CLS]) for a ViT; None for the CNN."""
    return getattr(model, "num_tokens", None)


__all__ = ["CNN", "ViT", "build_model", "count_parameters", "num_tokens"]
