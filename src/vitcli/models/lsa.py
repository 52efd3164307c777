"""Locality Self-Attention (Lee, Lee and Song 2021, "Vision Transformer for Small-Size Datasets",
arXiv:2112.13492), the two changes it makes to softmax(q k^T / sqrt(d)) v:

    LSA(q, k, v) = softmax(M(q k^T * exp(t))) v,   M(s)_ij = -inf where i = j, else s_ij

    exp(t)  a learnable temperature, per attention layer, started at 1/sqrt(d) (plain attention). Trained,
            it sharpens the softmax: small data sets leave plain attention nearly uniform.
    M       the diagonal mask: a token may not attend to itself, so every weight goes to the others (its
            own value still reaches the output through the residual).

`SelfAttention` and `MultiHeadSelfAttention` (models/vit.py) each take `lsa=True` and call this module on
their queries; `attend` takes the mask, in its fused and explicit paths alike.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn


class Locality(nn.Module):
    """The learnable temperature of one attention layer, and the diagonal mask."""

    def __init__(self, head_dim: int):
        super().__init__()
        # log of the scale, so that the scale stays positive whatever the optimiser does to it
        self.log_scale = nn.Parameter(torch.tensor(-0.5 * math.log(head_dim)))

    @property
    def scale(self) -> Tensor:
        return self.log_scale.exp()

    def scale_queries(self, q: Tensor) -> Tensor:
        """q scaled so that `attend`'s fixed 1/sqrt(d) turns into the learned exp(t):
        (q * exp(t) * sqrt(d)) k^T / sqrt(d) = q k^T exp(t)."""
        return q * (self.scale * q.shape[-1] ** 0.5).to(q.dtype)

    @staticmethod
    def mask(tokens: int, device: torch.device) -> Tensor:
        """(tokens, tokens) booleans, True where a query may attend: everywhere but the diagonal."""
        return ~torch.eye(tokens, dtype=torch.bool, device=device)
