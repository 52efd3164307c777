"""Position embedding similarity (Dosovitskiy et al. 2021, figure 7 centre): the cosine similarity of
each patch's position embedding with every other's. A learned table that has found the 2-D layout
shows, for each patch, a bright spot at its own place fading with distance, and often stripes along its
row and column. The in-house sinusoidal table is 1-D (indexed by token order), so its maps show
similarity along the row-major order instead: the contrast is the point of drawing both.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from vitcli.errors import ConfigError


def position_table(model: nn.Module) -> Tensor:
    """(patches, dim): the position embeddings of the patch tokens (the prefix tokens' rows left out),
    for the in-house ViT and a fine-tuned timm ViT alike; ConfigError with the reason otherwise."""
    vit = getattr(model, "model", model)  # TimmViT wraps timm's VisionTransformer
    table = getattr(vit, "pos_embed", None)
    grid = getattr(model, "grid_size", None)
    if grid is None:
        raise ConfigError(f"a {type(model).__name__} has no position embeddings (it is not a ViT)")
    if table is None:
        raise ConfigError("this ViT has no position embeddings (--pos-embed none): nothing to compare")
    patches = grid[0] * grid[1]
    table = table.detach().float().reshape(-1, table.shape[-1])
    if len(table) < patches:
        raise ConfigError(f"the position table has {len(table)} rows for {patches} patches")
    return table[-patches:]  # timm and the in-house ViT put the prefix tokens' rows first


def position_similarity(table: Tensor) -> Tensor:
    """(P, P) cosine similarities of the rows of `table`: symmetric, ones on the diagonal."""
    unit = F.normalize(table.double(), dim=-1)
    return (unit @ unit.T).float()


def similarity_maps(model: nn.Module) -> Tensor:
    """(rows, cols, rows, cols): map [i, j] is patch (i, j)'s similarity with every patch of the grid."""
    table = position_table(model)  # first: it says why a model without one has no figure
    rows, cols = model.grid_size
    return position_similarity(table).reshape(rows, cols, rows, cols)


def neighbour_similarity(maps: Tensor) -> tuple[float, float]:
    """(mean similarity of side-by-side patches, mean of all pairs of distinct patches) of `maps` (rows,
    cols, rows, cols): a table that learned the 2-D layout has the first well above the second."""
    rows, cols = maps.shape[:2]
    flat = maps.reshape(rows * cols, rows * cols).double()
    index = torch.arange(rows * cols).reshape(rows, cols)
    pairs = [(index[:, :-1], index[:, 1:]), (index[:-1, :], index[1:, :])]
    adjacent = torch.cat([flat[a.flatten(), b.flatten()] for a, b in pairs])
    n = rows * cols
    off_diagonal = (flat.sum() - flat.diagonal().sum()) / max(n * n - n, 1)
    return float(adjacent.mean()) if len(adjacent) else float("nan"), float(off_diagonal)
