"""The convolutional tokenizer of Compact Convolutional Transformers (Hassani et al. 2021, "Escaping the
Big Data Paradigm with Compact Transformers", arXiv:2104.05704):

    tokens = flatten(stage_N(... stage_1(x)))      stage(x) = MaxPool_3x3/2(ReLU(Conv_3x3/1(x)))

Each stage is a 3x3 convolution (stride 1, no bias), a ReLU and a 3x3 max-pool of stride 2, which halves
the grid (rounding up: 32 -> 16 -> 8, 28 -> 14 -> 7). Inner stages have 64 channels, the last one
`embed_dim`; every pixel of the last feature map is a token. Overlapping kernels give the tokens the
locality and translation equivariance a patch embedding lacks, and the grid size no longer has to divide
the image. The grid comes from the stem (`grid_size`), so attention maps are drawn on it.

`--conv-layers 0` leaves the number of stages to the image size (`auto_layers`); `resolve_conv` puts the
number in the spec when the model is built, so a checkpoint records, and rebuilds, the stages it has.
"""

from __future__ import annotations

import dataclasses
from typing import TypeVar

from torch import Tensor, nn

from vitcli.data.datasets import DatasetInfo
from vitcli.settings.specs import MAX_CONV_LAYERS, ModelSpec, ViTSpec

INNER_CHANNELS = 64  # CCT's in_planes
AUTO_GRID = 4  # --conv-layers 0 stops where one more stage would leave a grid side under this

Spec = TypeVar("Spec", bound=ModelSpec)


def pooled_size(size: int, layers: int) -> int:
    """The side of the grid after `layers` stages: each 3x3/2 max-pool with padding 1 rounds up."""
    for _ in range(layers):
        size = (size - 1) // 2 + 1
    return size


def auto_layers(height: int, width: int) -> int:
    """The stages `--conv-layers 0` gives `height` x `width` images: the most (up to MAX_CONV_LAYERS) that
    leave a grid of at least 4x4 on the shorter side, and at least one. 8x8 -> 1 (4x4 tokens), 16 -> 2,
    28 and 32 -> 3 (4x4), 64 -> 4, 224 -> 6 (4x4); 8x32 -> 1 (4x16).

    Why 4x4: attention needs tokens to relate (under 4 it has almost nothing, models/token_grid.py), and
    tokens beyond that cost: attention grows with their square. A stage costs a 64-channel convolution
    too, but on a quarter of the pixels of the one before, so going down to 4x4 is cheap. And 16 tokens
    made the best ViTs the docs measured on a CPU for 28-32 px images (docs/small-data.md: 3 stages, the
    mnist-cct and cifar10-cct presets)."""
    side = min(height, width)
    fits = [n for n in range(1, MAX_CONV_LAYERS + 1) if pooled_size(side, n) >= AUTO_GRID]
    return max(fits, default=1)


def resolve_conv(spec: Spec, info: DatasetInfo) -> Spec:
    """`spec` with `--conv-layers 0` made the stages `info`'s images get (`auto_layers`): the exact spec of
    the module, so that a checkpoint rebuilds the same model whatever a later rule would choose. Any other
    spec is returned as it is."""
    if not isinstance(spec, ViTSpec) or spec.tokenizer != "conv" or spec.conv_layers:
        return spec
    return dataclasses.replace(spec, conv_layers=auto_layers(info.height, info.width))


class ConvTokenizer(nn.Module):
    """(B, C, H, W) -> (B, tokens, embed_dim) through `layers` conv, ReLU, max-pool stages."""

    def __init__(self, in_channels: int, embed_dim: int, layers: int, image_size: tuple[int, int]):
        super().__init__()
        if layers < 1:  # 0 means "from the image size" in a spec, and resolve_conv makes it a number first
            raise ValueError(f"a convolutional tokenizer needs 1 or more stages, not {layers}")
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
