"""How the final token states become the one vector the classifier reads.

`--pool` chooses one of three:

    cls   the [CLS] token's state (Dosovitskiy et al. 2021): a token that attends to the patches
    gap   global average pooling of the patch tokens, no [CLS] token (as in a CNN; Beyer et al. 2022)
    seq   CCT's sequence pooling (Hassani et al. 2021, arXiv:2104.05704), no [CLS] token:

              w = softmax(x_L g)  over the tokens     z = w^T x_L

          a linear map g scores each token, and the output is their weighted sum: an attention with one
          learned query, so the model chooses which tokens matter.
"""

from __future__ import annotations

from torch import Tensor, nn


class SequencePooling(nn.Module):
    """(B, N, D) -> (B, D), a softmax-weighted sum of the tokens."""

    def __init__(self, embed_dim: int):
        super().__init__()
        self.score = nn.Linear(embed_dim, 1)

    def weights(self, x: Tensor) -> Tensor:
        """(B, N): each token's weight; they sum to 1 over the tokens of an image."""
        return self.score(x).squeeze(-1).softmax(dim=-1)

    def forward(self, x: Tensor) -> Tensor:
        return (self.weights(x).unsqueeze(1) @ x).squeeze(1)
