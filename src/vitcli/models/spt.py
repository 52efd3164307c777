"""Shifted Patch Tokenization (Lee, Lee and Song 2021, "Vision Transformer for Small-Size Datasets",
arXiv:2112.13492): each token sees its patch and the pixels around it.

    S(x) = Linear(LN(P([x, s_lu(x), s_ru(x), s_ld(x), s_rd(x)])))

    s_**   the image translated by half a patch in each of the four diagonal directions (left-up,
           right-up, left-down, right-down), the uncovered border filled with zeros
    [...]  the five views concatenated along the channels: (B, 5C, H, W)
    P      cut into non-overlapping p x p patches, each flattened: (B, N, p * p * 5C)
    LN     layer norm over each flattened patch, then a linear map to the token width

A plain ViT's patch embedding sees one patch alone; the shifted views widen each token's receptive field
by half a patch on every side, the locality a small data set cannot teach.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

# (rows, cols) each view is moved by, in half patches: left-up, right-up, left-down, right-down
DIAGONALS = ((-1, -1), (-1, 1), (1, -1), (1, 1))


def shift(x: Tensor, rows: int, cols: int) -> Tensor:
    """x (B, C, H, W) moved down by `rows` and right by `cols` pixels (negative: up, left), zero-filled."""
    H, W = x.shape[-2:]
    s = max(abs(rows), abs(cols))
    padded = F.pad(x, (s, s, s, s))
    return padded[..., s - rows : s - rows + H, s - cols : s - cols + W]


class ShiftedPatchTokenizer(nn.Module):
    """(B, C, H, W) -> (B, tokens, embed_dim); H and W divisible by `patch_size`."""

    def __init__(self, in_channels: int, embed_dim: int, patch_size: int):
        super().__init__()
        self.patch_size = patch_size
        self.half = patch_size // 2
        patch_numbers = patch_size * patch_size * in_channels * (1 + len(DIAGONALS))
        self.norm = nn.LayerNorm(patch_numbers)
        self.proj = nn.Linear(patch_numbers, embed_dim)

    def views(self, x: Tensor) -> Tensor:
        """(B, 5, C, H, W): the image, then its four diagonal half-patch shifts."""
        shifted = [shift(x, rows * self.half, cols * self.half) for rows, cols in DIAGONALS]
        return torch.stack([x, *shifted], dim=1)

    def forward(self, x: Tensor) -> Tensor:
        B, _, H, W = x.shape
        p = self.patch_size
        v = self.views(x).flatten(1, 2)  # (B, 5C, H, W)
        # (B, 5C, H/p, p, W/p, p) -> (B, H/p, W/p, p, p, 5C): each patch's pixels, then its channels
        patches = v.reshape(B, -1, H // p, p, W // p, p).permute(0, 2, 4, 3, 5, 1)
        patches = patches.reshape(B, (H // p) * (W // p), -1)  # patches in row-major order, as PatchEmbedding
        return self.proj(self.norm(patches))
