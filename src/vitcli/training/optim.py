"""The optimiser and the learning-rate schedule of every run: AdamW over two weight-decay groups (or a
model's own groups, e.g. timm's layer decay), and linear warmup then cosine decay per step."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from vitcli.settings.config import TrainConfig


def make_optimizer(
    model: nn.Module,
    cfg: TrainConfig,
    param_groups: list[dict] | None = None,
    options: dict[str, Any] | None = None,
) -> torch.optim.Optimizer:
    """AdamW over the trainable parameters; `param_groups` (e.g. timm's layer-decay groups) replace the
    default two groups, each at cfg.lr times its "lr_scale", which the schedule then scales as a whole.
    `options` go to AdamW as they are (e.g. {"foreach": True}); by default it is fused where it can be."""
    if param_groups is None:
        # Weight decay on weight matrices and conv kernels only: decaying biases, norms, the [CLS] token
        # or the positional embedding pulls them towards zero for no gain (as in timm and nanoGPT).
        decay, no_decay = [], []
        for name, p in model.named_parameters():
            if not p.requires_grad:
                continue
            plain = p.ndim < 2 or name.endswith(("pos_embed", "cls_token", "dist_token"))
            (no_decay if plain else decay).append(p)
        param_groups = [
            {"params": decay, "weight_decay": cfg.weight_decay},
            {"params": no_decay, "weight_decay": 0.0},
        ]
    # LambdaLR multiplies each group's own starting lr, so the per-group scale survives the schedule.
    groups = [{**g, "lr": cfg.lr * g.get("lr_scale", 1.0)} for g in param_groups]
    if options is not None:
        return torch.optim.AdamW(groups, lr=cfg.lr, **options)
    try:
        return torch.optim.AdamW(groups, lr=cfg.lr, fused=True)
    except (RuntimeError, TypeError):  # older PyTorch: no fused AdamW on this device
        return torch.optim.AdamW(groups, lr=cfg.lr, foreach=True)


def warmup_cosine(warmup_steps: int, total_steps: int) -> Callable[[int], float]:
    """Learning-rate factor for a step: linear from 1/warmup to 1, then a cosine down to 0."""

    def factor(step: int) -> float:
        if step < warmup_steps:
            return (step + 1) / warmup_steps
        progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
        return 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))

    return factor
