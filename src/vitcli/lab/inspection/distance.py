"""Mean attention distance (Dosovitskiy et al. 2021, figure 7 right, and appendix D.7): for each block
and head, the distance in pixels between a query patch and the patches it attends to, weighted by the
attention, averaged over every query patch and image. It is the ViT's analogue of a CNN's receptive
field: heads with a small distance look locally, like a convolution; the paper found heads that attend
across the whole image from the first block on.

Only patch-to-patch attention counts: the weights a patch puts on [CLS] (or other prefix tokens) have
no place in the image, so each query's patch weights are renormalised to sum to 1. Uniform attention
then gives the mean distance between two cells of the grid (`uniform_distance`), and attention to
oneself gives 0. Distances are between patch centres, in pixels of the data set's images (one grid step
is the image's height over the grid's rows, whatever the tokenizer).
"""

from __future__ import annotations

import torch
from torch import Tensor


def grid_distances(grid: tuple[int, int], cell: tuple[float, float] = (1.0, 1.0)) -> Tensor:
    """(P, P) Euclidean distances between the centres of a row-major grid's cells, `cell` = (height,
    width) of a cell in pixels."""
    rows, cols = grid
    y, x = torch.meshgrid(torch.arange(rows) * cell[0], torch.arange(cols) * cell[1], indexing="ij")
    centres = torch.stack([y.flatten(), x.flatten()], dim=1).double()
    return torch.cdist(centres, centres).float()


def uniform_distance(grid: tuple[int, int], cell: tuple[float, float] = (1.0, 1.0)) -> float:
    """What a head that attends to every patch alike scores: the mean over all pairs of cells."""
    return float(grid_distances(grid, cell).mean())


class MeanDistance:
    """Accumulates, batch by batch, the attention-weighted distance per block and head."""

    def __init__(self, grid: tuple[int, int], num_prefix_tokens: int, cell: tuple[float, float]):
        self.distances = grid_distances(grid, cell)
        self.prefix = num_prefix_tokens
        self.total: Tensor | None = None  # (blocks, heads): summed over queries and images
        self.count = 0  # query patches seen per head: images x patches

    def add(self, weights: list[Tensor]) -> None:
        """`weights`: one (B, heads, N, N) attention tensor per block, prefix tokens first."""
        stacked = torch.stack([w.float() for w in weights], dim=1)  # (B, blocks, heads, N, N)
        patches = stacked[..., self.prefix :, self.prefix :]
        patches = patches / patches.sum(dim=-1, keepdim=True).clamp_min(1e-12)
        self.distances = self.distances.to(patches.device)  # once: a copy per batch on a GPU otherwise
        # sum_k a[q, k] d(q, k) per query, summed over images and queries.
        per_query = (patches * self.distances).sum(dim=-1)  # (B, blocks, heads, P)
        total = per_query.sum(dim=(0, 3)).cpu()
        self.total = total if self.total is None else self.total + total
        self.count += per_query.shape[0] * per_query.shape[-1]

    def result(self) -> Tensor:
        """(blocks, heads): the mean attention distance in pixels."""
        if self.total is None:
            raise ValueError("no attention was added")
        return self.total / self.count


def mean_attention_distance(
    weights: list[Tensor],
    grid: tuple[int, int],
    num_prefix_tokens: int,
    cell: tuple[float, float] = (1.0, 1.0),
) -> Tensor:
    """(blocks, heads) for one batch of attention weights: `MeanDistance` in one call."""
    accumulator = MeanDistance(grid, num_prefix_tokens, cell)
    accumulator.add(weights)
    return accumulator.result()
