"""Reading a ViT's attention: the [CLS] query's weights per block and head, and attention rollout.

Any model that follows the in-house ViT's contract works here, the fine-tuned timm ViTs included:

    model(x, return_attention=True) -> (logits, [one (batch, heads, tokens, tokens) tensor per block])
    model.grid_size          (rows, cols) of the patch grid
    model.num_prefix_tokens  tokens before the patches ([CLS], a distillation token, registers); 0 for a
                             model that pools its tokens instead of reading [CLS] (--pool gap or seq)

The maps show what the token the classifier reads attends to: row 0, the [CLS] query. A model without
[CLS] reads the mean (or a weighted sum) of all its tokens, so its maps are the mean of all query rows.

Rollout follows Abnar & Zuidema 2020 ("Quantifying Attention Flow in Transformers", arXiv:2005.00928):
each block's heads are fused into one matrix, the identity is added for the residual connection, rows
are renormalised, and the matrices are multiplied from the first block to the last. The [CLS] row of the
product says how much each patch fed the token the classifier reads.

Everything here computes on tensors: training keeps snapshots of it (`training/snapshots.py`), and the
lab's `vitcli attention` (`lab/explain.py`) and `vitcli inspect` read it.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from vitcli.errors import CheckpointError, ConfigError
from vitcli.settings.choices import HEAD_FUSIONS

# How rollout fuses a block's heads into one matrix: (B, heads, N, N) -> (B, N, N).
FUSE = {
    "mean": lambda weights: weights.mean(dim=1),
    "max": lambda weights: weights.amax(dim=1),
    "min": lambda weights: weights.amin(dim=1),
}


def has_attention(model: nn.Module) -> bool:
    """Whether `model` follows the attention contract above (the CNN does not)."""
    return hasattr(model, "grid_size") and hasattr(model, "num_prefix_tokens")


def query_name(num_prefix_tokens: int) -> str:
    """Whose attention the maps show: "[CLS]", or "mean" for a model read through its mean query."""
    return "[CLS]" if num_prefix_tokens else "mean"


def require_attention(model: nn.Module) -> None:
    """A CheckpointError unless `model` follows the attention contract above (the CNN does not)."""
    if not has_attention(model):
        raise CheckpointError(
            f"this checkpoint is a {type(model).__name__}, which has no attention to show; "
            "vitcli attention works on ViT checkpoints (vitcli train --model vit, or vitcli finetune)"
        )


def extract(model: nn.Module, images: Tensor) -> tuple[Tensor, list[Tensor]]:
    """Logits and the per-block attention weights for a batch of normalised images."""
    require_attention(model)
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            logits, weights = model(images, return_attention=True)
    finally:
        model.train(was_training)
    return logits.float(), [w.float() for w in weights]


def query_row(attention: Tensor, num_prefix_tokens: int) -> Tensor:
    """(..., N, N) -> (..., patches): the [CLS] query's row over the patch tokens, or, with no prefix
    token, the mean of all rows (what a model that pools its tokens reads)."""
    if num_prefix_tokens == 0:
        return attention.mean(dim=-2)
    return attention[..., 0, num_prefix_tokens:]


def cls_attention(weights: list[Tensor], grid_size: tuple[int, int], num_prefix_tokens: int = 1) -> Tensor:
    """(batch, blocks, heads, rows, cols): row 0 of each block's attention (the [CLS] query; the mean
    query without one), its columns for the patch tokens laid out on the patch grid. The weights the
    [CLS] query puts on the prefix tokens themselves are left out, so a map sums to 1 minus those."""
    stacked = torch.stack(weights, dim=1)  # (B, blocks, heads, N, N)
    return query_row(stacked, num_prefix_tokens).reshape(*stacked.shape[:3], *grid_size)


def fuse_heads(weights: Tensor, head_fusion: str) -> Tensor:
    """(B, heads, N, N) -> (B, N, N) by the mean, max or min over heads."""
    if head_fusion not in FUSE:
        raise ConfigError(f"--head-fusion must be one of {', '.join(HEAD_FUSIONS)}, got {head_fusion!r}")
    return FUSE[head_fusion](weights)


def rollout(weights: list[Tensor], head_fusion: str = "mean", discard_ratio: float = 0.0) -> Tensor:
    """Attention rollout (B, N, N) over all blocks.

    `discard_ratio` zeroes that fraction of the smallest fused weights in each block (never the [CLS]
    to [CLS] weight) before the identity is added: a way to keep only the strong paths, as in Jacob
    Gildenblat's widely used implementation of the method.
    """
    if not 0 <= discard_ratio < 1:
        raise ConfigError(f"--discard must be in [0, 1), got {discard_ratio}")
    B, _, N, _ = weights[0].shape
    eye = torch.eye(N, dtype=weights[0].dtype, device=weights[0].device)
    result = eye.expand(B, N, N)
    for block in weights:
        fused = fuse_heads(block, head_fusion)
        drop = int(N * N * discard_ratio)
        if drop:
            flat = fused.reshape(B, N * N).clone()
            lowest = flat.topk(drop, dim=-1, largest=False).indices
            # Index 0 is [CLS] -> [CLS]; keeping it keeps every row of the product non-empty.
            flat.scatter_(1, lowest, torch.where(lowest == 0, flat.gather(1, lowest), 0.0))
            fused = flat.reshape(B, N, N)
        # The residual stream carries half the signal past attention (the paper's 0.5 A + 0.5 I).
        a = (fused + eye) / 2
        a = a / a.sum(dim=-1, keepdim=True)
        result = a @ result
    return result


def rollout_map(
    weights: list[Tensor],
    grid_size: tuple[int, int],
    num_prefix_tokens: int = 1,
    head_fusion: str = "mean",
    discard_ratio: float = 0.0,
) -> Tensor:
    """(batch, rows, cols): the [CLS] row (the mean row without one) of the rollout over the patches."""
    rolled = rollout(weights, head_fusion, discard_ratio)
    return query_row(rolled, num_prefix_tokens).reshape(-1, *grid_size)
