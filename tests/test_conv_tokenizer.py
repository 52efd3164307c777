"""models/conv_tokenizer.py: CCT's convolutional tokenizer."""

import pytest
import torch

from vitcli.data.datasets import DatasetInfo
from vitcli.models import count_parameters
from vitcli.models.build import build_module
from vitcli.models.conv_tokenizer import ConvTokenizer
from vitcli.models.vit import ViT
from vitcli.settings.specs import ViTSpec


@pytest.mark.parametrize(
    "size, layers, grid",
    [(28, 1, 14), (28, 2, 7), (28, 3, 4), (32, 1, 16), (32, 2, 8), (32, 3, 4)],
)
def test_token_count_for_28_and_32_pixel_images(size, layers, grid):
    stem = ConvTokenizer(1, 16, layers, (size, size))
    tokens = stem(torch.randn(2, 1, size, size))
    assert stem.grid_size == (grid, grid) and tokens.shape == (2, grid * grid, 16)
    vit = ViT(image_size=(size, size), in_channels=1, num_classes=10, tokenizer="conv", conv_layers=layers)
    assert vit.grid_size == (grid, grid) and vit.num_tokens == grid * grid + 1  # and [CLS]


def test_stages_are_conv_relu_maxpool_with_64_inner_channels_and_the_last_of_embedding_width():
    stem = ConvTokenizer(3, 128, 2, (32, 32))
    first, last = stem.stages
    assert [type(m).__name__ for m in first] == ["Conv2d", "ReLU", "MaxPool2d"]
    assert (first[0].in_channels, first[0].out_channels, last[0].out_channels) == (3, 64, 128)
    assert first[0].kernel_size == (3, 3) and first[0].bias is None and first[2].stride == 2
    # 3*64*9 + 64*128*9, no biases
    assert count_parameters(stem) == 75_456


def test_parameter_counts_are_pinned():
    mnist = {"image_size": (28, 28), "in_channels": 1, "num_classes": 10}
    assert count_parameters(ViT(**mnist, tokenizer="conv")) == 46_442
    cct = {
        "embed_dim": 128,
        "depth": 2,
        "heads": 2,
        "mlp_dim": 128,
        "tokenizer": "conv",
        "pool": "seq",
        "pos_embed": "none",
    }
    # CCT-2/3x2, which the paper lists at 0.28M: stem 75,456 + 2 blocks of 99,584 + norm, pooling, head
    assert count_parameters(ViT(image_size=(32, 32), in_channels=3, num_classes=10, **cct)) == 276_299


def test_the_patch_size_need_not_divide_the_image():
    info = DatasetInfo("mnist", 1, 28, 28, [str(i) for i in range(10)], "digits")
    model = build_module(ViTSpec(tokenizer="conv", patch_size=5), info)
    assert model(torch.randn(1, 1, 28, 28)).shape == (1, 10)
