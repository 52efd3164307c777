"""models/spt.py: Shifted Patch Tokenization."""

import pytest
import torch

from vitcli.models import count_parameters
from vitcli.models.spt import ShiftedPatchTokenizer
from vitcli.models.vit import ViT


@pytest.mark.parametrize("size, channels, patch, tokens", [(28, 1, 7, 16), (32, 3, 4, 64), (28, 1, 4, 49)])
def test_output_is_one_token_per_patch_of_the_embedding_width(size, channels, patch, tokens):
    spt = ShiftedPatchTokenizer(channels, 24, patch)
    assert spt(torch.randn(2, channels, size, size)).shape == (2, tokens, 24)


def _moved(x, down, right):
    """x moved `down` rows and `right` columns (negative: up, left), zeros where nothing came in; written
    with index arithmetic, apart from the slicing `shift` uses."""
    out = torch.zeros_like(x)
    H, W = x.shape[-2:]
    for i in range(H):
        for j in range(W):
            if 0 <= i - down < H and 0 <= j - right < W:
                out[..., i, j] = x[..., i - down, j - right]
    return out


@pytest.mark.parametrize("patch", [4, 7])
def test_the_five_views_are_the_image_and_its_four_diagonal_half_patch_shifts(patch):
    x = torch.arange(2 * 3 * 12 * 12, dtype=torch.float32).reshape(2, 3, 12, 12) + 1
    if patch == 7:
        x = torch.arange(28 * 28, dtype=torch.float32).reshape(1, 1, 28, 28) + 1
    views = ShiftedPatchTokenizer(x.shape[1], 8, patch).views(x)
    s = patch // 2
    assert views.shape == (x.shape[0], 5, *x.shape[1:])
    assert torch.equal(views[:, 0], x)
    for view, (down, right) in zip(views[:, 1:].unbind(1), [(-s, -s), (-s, s), (s, -s), (s, s)]):
        assert torch.equal(view, _moved(x, down, right))
        # half a patch of zeros came in along two sides, and the rest of the image is all there
        assert (view == 0).sum() == x.numel() - x.numel() // (x.shape[-1] ** 2) * (x.shape[-1] - s) ** 2


def test_each_token_is_the_layer_normed_projection_of_its_patch_across_the_five_views():
    spt = ShiftedPatchTokenizer(1, 8, 4)
    x = torch.randn(1, 1, 8, 8)
    views = spt.views(x)[0, :, 0]  # (5, 8, 8)
    # the token of the patch at grid (1, 0): rows 4-7, columns 0-3, pixels first, then the views
    patch = views[:, 4:8, 0:4].permute(1, 2, 0).reshape(-1)
    expected = spt.proj(spt.norm(patch))
    assert torch.allclose(spt(x)[0, 2], expected, atol=1e-6)


def test_parameter_counts_are_pinned():
    # LayerNorm over 7*7*5 = 245 numbers (490) and a 245 -> 32 linear map (7,872)
    assert count_parameters(ShiftedPatchTokenizer(1, 32, 7)) == 8_362
    vit = {"image_size": (28, 28), "in_channels": 1, "num_classes": 10}
    assert count_parameters(ViT(**vit)) == 27_978
    assert count_parameters(ViT(**vit, tokenizer="spt")) == 34_740
    cifar = {
        "image_size": (32, 32),
        "in_channels": 3,
        "num_classes": 10,
        "embed_dim": 64,
        "patch_size": 4,
        "depth": 4,
    }
    assert count_parameters(ViT(**cifar, heads=4, mlp_dim=128, tokenizer="spt", lsa=True)) == 154_798
