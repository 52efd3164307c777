"""Patch embedding filters (Dosovitskiy et al. 2021, figure 7 left): the leading principal components of
the patch projection's weights, drawn as image patches. The projection maps each C x p x p patch to D
numbers, one dot product per filter; the principal components of those D filters are the patch patterns
the embedding is most sensitive to. The paper's look like plausible bases for the fine structure of a
patch (blobs, edges, colour gradients), as the first layer of a CNN does.

The filters are the first convolution of the tokenizer: the patch projection for `--tokenizer patch`
and timm's ViTs, the first 3x3 stage for `--tokenizer conv`. The shifted-patch tokenizer projects five
shifted views after a LayerNorm, so its weights are not image patches and are left out, with the reason.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from vitcli.errors import ConfigError


@dataclass
class Components:
    patches: Tensor  # (k, C, p, p): the principal directions, unit length, as patches
    explained: Tensor  # (k,): each one's share of the filters' variance
    source: str  # which weights: "patch projection 4x4" or "first conv 3x3"


def first_filters(model: nn.Module) -> tuple[Tensor, str]:
    """(D, C, kh, kw) weights of the tokenizer's first convolution, and their name; ConfigError with the
    reason where the model has none."""
    vit = getattr(model, "model", model)  # TimmViT wraps timm's VisionTransformer
    tokenizer = getattr(vit, "patch_embed", None)
    if tokenizer is None:
        raise ConfigError(
            f"a {type(model).__name__} has no patch embedding; the filters figure is for ViT checkpoints"
        )
    conv = next((m for m in tokenizer.modules() if isinstance(m, nn.Conv2d)), None)
    if conv is None:
        raise ConfigError(
            "this ViT's tokenizer (shifted patches) projects five shifted views after a LayerNorm; its "
            "weights are not image patches, so there are no filters to draw"
        )
    kh, kw = conv.kernel_size
    name = "patch projection" if conv.stride == conv.kernel_size else "first convolution"
    return conv.weight.detach().float().cpu(), f"{name} {kh}x{kw}"


def principal_components(weights: Tensor, k: int) -> tuple[Tensor, Tensor]:
    """The leading `k` principal components of the filters (D, C, h, w) as (k, C, h, w) unit patches, and
    the fraction of the variance each explains. PCA over the D filters: centred, then an SVD."""
    flat = weights.reshape(len(weights), -1).double()
    centred = flat - flat.mean(dim=0)
    _, singular, directions = torch.linalg.svd(centred, full_matrices=False)
    variance = singular**2
    k = min(k, len(directions))
    explained = variance[:k] / variance.sum().clamp_min(1e-300)
    return directions[:k].float().reshape(k, *weights.shape[1:]), explained.float()


def patch_components(model: nn.Module, k: int = 28) -> Components:
    """The model's first filters' leading principal components (28, as in the paper's figure)."""
    if k < 1:
        raise ConfigError(f"--components must be 1 or more, got {k}")
    weights, source = first_filters(model)
    patches, explained = principal_components(weights, k)
    return Components(patches, explained, source)
