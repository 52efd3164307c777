"""A timm Vision Transformer behind the interface of the in-house ViT, built from its spec alone.

`TimmViT` holds a timm `VisionTransformer` and, like the in-house ViT, has `grid_size`,
`num_prefix_tokens`, `num_tokens` and `forward(x, return_attention=True)`, so `vitcli eval` and the
attention pictures work on it unchanged. Its inputs are prepared by its `Preprocessing` (resized on the
device to the size it was built for, gray repeated to RGB with `--channels repeat`).

The weights a checkpoint holds are loaded over a model built here with random values, so nothing here
touches the network or a pretrained file; that is `vitcli.models.pretrained`.
"""

from __future__ import annotations

import dataclasses
import sys
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from vitcli.data.datasets import DatasetInfo
from vitcli.errors import ConfigError
from vitcli.settings.specs import TimmSpec


@dataclass(frozen=True)
class Native:
    """A timm model's shape as its authors built it (and its pretrained weights expect)."""

    name: str
    img_size: int
    patch_size: int
    in_chans: int
    num_prefix_tokens: int
    depth: int
    shapes: dict[str, torch.Size]  # of each tensor in its state dict


def native(name: str) -> Native:
    """The shape of timm model `name`, read off a model built on the meta device (no memory, no weights).
    A ConfigError when timm does not know the name or the model is not a ViT that vitcli can drive."""
    # timm is heavy and needed only for timm models, their weights and exports
    import timm
    from timm.models.vision_transformer import VisionTransformer

    if not timm.is_model(name) or "." in name:
        like = timm.list_models(f"*{name.split('.')[0]}*")[:4] if name else []
        hint = (
            f"; close names: {', '.join(like)}"
            if like
            else "; e.g. vit_small_patch16_224, vit_tiny_patch16_224, deit_small_patch16_224"
        )
        raise ConfigError(f"--model {name!r} is not a timm model name (without a .tag){hint}")
    with torch.device("meta"):
        model = timm.create_model(name)
    if (
        not isinstance(model, VisionTransformer)
        or model.pos_embed is None
        or not all(
            hasattr(block.attn, "fused_attn") and hasattr(block.attn, "attn_drop") for block in model.blocks
        )
    ):
        raise ConfigError(
            f"--model {name} is a timm {type(model).__name__}; vitcli finetune drives timm's "
            "VisionTransformer family with a learned position table (vit_*, deit_*), "
            "e.g. vit_small_patch16_224"
        )
    img, patch = model.patch_embed.img_size, model.patch_embed.patch_size
    if img[0] != img[1] or patch[0] != patch[1]:
        raise ConfigError(
            f"--model {name} has non-square images or patches ({img}, {patch}); use a square one"
        )
    shapes = {k: v.shape for k, v in model.state_dict().items()}
    return Native(
        name,
        img[0],
        patch[0],
        model.patch_embed.proj.in_channels,
        model.num_prefix_tokens,
        len(model.blocks),
        shapes,
    )


def in_chans(spec: TimmSpec, info: DatasetInfo) -> int:
    """The model's input channels: the data's, or 3 when gray is repeated to RGB."""
    return 3 if spec.channels == "repeat" and info.channels == 1 else info.channels


def build_timm_vit(spec: TimmSpec, info: DatasetInfo, drop_path: float = 0.0) -> TimmViT:
    """The model a resolved `spec` (img_size and patch_size set) describes for data shaped like `info`,
    with random weights; `drop_path` is timm's drop_path_rate (stochastic depth, rising over the blocks)."""
    # timm is heavy and needed only for timm models, their weights and exports
    import timm

    model = timm.create_model(
        spec.name,
        pretrained=False,
        img_size=spec.img_size,
        patch_size=spec.patch_size,
        in_chans=in_chans(spec, info),
        num_classes=len(info.classes),
        drop_path_rate=drop_path,
    )
    return TimmViT(model)


class TimmViT(nn.Module):
    """(batch, channels, S, S) images of the size it was built for -> logits, through a timm ViT."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model
        self.img_size = tuple(model.patch_embed.img_size)
        self.grid_size = tuple(model.patch_embed.grid_size)
        self.num_prefix_tokens = model.num_prefix_tokens  # [CLS], and distillation or register tokens
        self.num_tokens = self.num_prefix_tokens + self.grid_size[0] * self.grid_size[1]

    def forward(self, x: Tensor, return_attention: bool = False) -> Tensor | tuple[Tensor, list[Tensor]]:
        """Logits; with `return_attention`, also one (batch, heads, tokens, tokens) tensor of attention
        weights per block, the prefix tokens first and then the patches row by row."""
        if not return_attention:
            return self.model(x)
        return self._forward_with_attention(x)

    def _forward_with_attention(self, x: Tensor) -> tuple[Tensor, list[Tensor]]:
        # timm's own unfused path computes softmax(q k^T * scale) and passes it through `attn_drop`; we
        # switch that path on for this call only and read the input of `attn_drop` (before dropout).
        # timm's AttentionExtract hooks the same module but keeps its hooks for the model's lifetime
        # and puts the model in eval mode, which would change training.
        attentions: list[Tensor] = []
        modules = [block.attn for block in self.model.blocks]
        fused = [attn.fused_attn for attn in modules]
        hooks = [
            attn.attn_drop.register_forward_hook(lambda _m, inputs, _out: attentions.append(inputs[0]))
            for attn in modules
        ]
        try:
            for attn in modules:
                attn.fused_attn = False
            logits = self.model(x)
        finally:
            for attn, was in zip(modules, fused):
                attn.fused_attn = was
            for hook in hooks:
                hook.remove()
        return logits, attentions


# --- what trains: freezing and layer-wise learning-rate decay ----------------------------------------

STEM = ("patch_embed.", "cls_token", "reg_token", "dist_token", "pos_embed", "norm_pre.")


def freeze(vit: TimmViT, spec: str) -> int:
    """Stop gradients to part of the model; returns the number of trainable parameters left.

    backbone: a linear probe, only the classifier head trains (the final norm stays frozen: it is part
    of the features being probed). N: the patch embedding, prefix tokens, positions and the first N
    blocks are frozen, the later blocks, final norm and head train.
    """
    model = vit.model
    heads = classifier_names(model)
    if spec in ("none", "backbone"):
        frozen_prefixes: tuple[str, ...] = ()
    else:
        n = int(spec)
        if n > len(model.blocks):
            raise ConfigError(
                f"--freeze {n}: the model has only {len(model.blocks)} blocks; "
                f"use 0 to {len(model.blocks)} or backbone"
            )
        frozen_prefixes = STEM + tuple(f"blocks.{i}." for i in range(n))
    for name, p in model.named_parameters():
        if spec == "backbone":
            p.requires_grad_(name.split(".")[0] in heads)
        else:
            p.requires_grad_(not name.startswith(frozen_prefixes))
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def classifier_names(model: nn.Module) -> tuple[str, ...]:
    """The classifier modules' names, from timm's pretrained_cfg ("head", or "head" and "head_dist")."""
    names = getattr(model, "pretrained_cfg", {}).get("classifier") or "head"
    return (names,) if isinstance(names, str) else tuple(names)


def layer_decay_groups(vit: TimmViT, weight_decay: float, layer_decay: float) -> list[dict]:
    """timm's parameter groups for layer-wise lr decay: the head at lr_scale 1, each block below it
    layer_decay times the one above, the patch embedding lowest. Frozen parameters are left out; the
    engine multiplies each group's learning rate by its `lr_scale`."""
    # timm is heavy and needed only for timm models, their weights and exports
    from timm.optim import param_groups_layer_decay

    model = vit.model
    return param_groups_layer_decay(
        model,
        weight_decay=weight_decay,
        no_weight_decay_list=model.no_weight_decay(),
        layer_decay=layer_decay,
    )


def checkpoint_filter(model: nn.Module):
    """timm's checkpoint filter of the model's own module (vision_transformer's, or deit's for DeiT): it
    converts key names and resamples the patch embedding and the position table."""
    filter_fn = getattr(sys.modules[type(model).__module__], "checkpoint_filter_fn", None)
    if filter_fn is None:
        raise ConfigError(
            f"timm has no checkpoint filter for {type(model).__name__}; vitcli cannot adapt weights to it"
        )
    return filter_fn


def resolve_timm(spec: TimmSpec) -> TimmSpec:
    """Unset image and patch sizes made the model's own, so that a checkpoint does not depend on timm's
    defaults staying the same."""
    if spec.img_size is not None and spec.patch_size is not None:
        return spec
    model = native(spec.name)
    return dataclasses.replace(
        spec, img_size=spec.img_size or model.img_size, patch_size=spec.patch_size or model.patch_size
    ).validate()
