"""The convolutional tokenizer of Compact Convolutional Transformers (Hassani et al. 2021, "Escaping the
Big Data Paradigm with Compact Transformers", arXiv:2104.05704):

    tokens = flatten(stage_N(... stage_1(x)))      stage(x) = MaxPool_3x3/2(ReLU(Conv_3x3/1(x)))

Each stage is a 3x3 convolution (stride 1, no bias), a ReLU and a 3x3 max-pool of stride 2, which halves
the grid (rounding up: 32 -> 16 -> 8, 28 -> 14 -> 7). Inner stages have 64 channels, the last one
`embed_dim`; every pixel of the last feature map is a token. Overlapping kernels give the tokens the
locality and translation equivariance a patch embedding lacks, and the grid size no longer has to divide
the image. The grid comes from the stem (`grid_size`), so attention maps are drawn on it.
"""

from __future__ import annotations

from torch import Tensor, nn

INNER_CHANNELS = 64  # CCT's in_planes


def pooled_size(size: int, layers: int) -> int:
    """The side of the grid after `layers` stages: each 3x3/2 max-pool with padding 1 rounds up."""
    for _ in range(layers):
        size = (size - 1) // 2 + 1
    return size


class ConvTokenizer(nn.Module):
    """(B, C, H, W) -> (B, tokens, embed_dim) through `layers` conv, ReLU, max-pool stages."""

    def __init__(self, in_channels: int, embed_dim: int, layers: int, image_size: tuple[int, int]):
        super().__init__()
        widths = [in_channels] + [INNER_CHANNELS] * (layers - 1) + [embed_dim]
        self.stages = nn.Sequential(
            *(
                nn.Sequential(
                    nn.Conv2d(c_in, c_out, kernel_size=3, stride=1, padding=1, bias=False),
                    nn.ReLU(inplace=True),
                    nn.MaxPool2d(kernel_size=3, stride=2, padding=1),
                )
                for c_in, c_out in zip(widths, widths[1:])
            )
        )
        self.grid_size = (pooled_size(image_size[0], layers), pooled_size(image_size[1], layers))
        for m in self.modules():
            if isinstance(m, nn.Conv2d):  # CCT's: He initialisation for the ReLU stages
                nn.init.kaiming_normal_(m.weight)

    def forward(self, x: Tensor) -> Tensor:
        return self.stages(x).flatten(2).transpose(1, 2)  # (B, N, D), row-major as PatchEmbedding
