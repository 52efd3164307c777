"""models/lsa.py and its use in both attention classes: Locality Self-Attention."""

import math

import pytest
import torch

from vitcli.models import count_parameters
from vitcli.models.vit import MultiHeadSelfAttention, SelfAttention, ViT


def _attention(heads, dim=16):
    return SelfAttention(dim, lsa=True) if heads == 1 else MultiHeadSelfAttention(dim, heads, lsa=True)


@pytest.mark.parametrize("heads", [1, 4])
def test_no_token_attends_to_its_own_key(heads):
    _, weights = _attention(heads)(torch.randn(3, 9, 16), need_weights=True)
    assert weights.shape == (3, heads, 9, 9)
    diagonal = weights.diagonal(dim1=-2, dim2=-1)
    assert torch.all(diagonal == 0)
    assert torch.allclose(weights.sum(-1), torch.ones(3, heads, 9))  # all of it goes to the others


@pytest.mark.parametrize("heads", [1, 4])
def test_the_temperature_is_learnable_and_starts_at_one_over_sqrt_d(heads):
    attn = _attention(heads)
    head_dim = 16 // heads
    assert attn.locality.log_scale.requires_grad
    assert math.isclose(attn.locality.scale.item(), head_dim**-0.5, rel_tol=1e-6)
    out, _ = attn(torch.randn(2, 5, 16))
    out.square().sum().backward()
    assert attn.locality.log_scale.grad is not None and attn.locality.log_scale.grad != 0
    optimizer = torch.optim.SGD(attn.parameters(), lr=0.1)
    before = attn.locality.scale.item()
    optimizer.step()
    assert attn.locality.scale.item() != before


@pytest.mark.parametrize("heads", [1, 4])
def test_weights_are_softmax_of_masked_scores_times_the_learned_scale(heads):
    attn = _attention(heads)
    with torch.no_grad():
        attn.locality.log_scale.fill_(math.log(0.7))
    x = torch.randn(2, 6, 16)
    _, weights = attn(x, need_weights=True)
    q, k, _ = attn.qkv(x).chunk(3, dim=-1)
    q = q.reshape(2, 6, heads, -1).transpose(1, 2)
    k = k.reshape(2, 6, heads, -1).transpose(1, 2)
    scores = (q @ k.transpose(-2, -1)) * 0.7
    scores = scores.masked_fill(torch.eye(6, dtype=torch.bool), float("-inf"))
    assert torch.allclose(weights, scores.softmax(-1), atol=1e-6)


@pytest.mark.parametrize("heads", [1, 4])
def test_the_fused_and_the_explicit_paths_agree(heads):
    attn = _attention(heads).eval()
    x = torch.randn(2, 7, 16)
    fused, _ = attn(x)
    explicit, _ = attn(x, need_weights=True)
    assert torch.allclose(fused, explicit, atol=1e-5)


def test_lsa_adds_one_parameter_per_block_and_is_off_by_default():
    vit = {"image_size": (28, 28), "in_channels": 1, "num_classes": 10, "depth": 3}
    plain, lsa = ViT(**vit), ViT(**vit, lsa=True)
    assert count_parameters(lsa) - count_parameters(plain) == 3
    assert all(block.attn.locality is None for block in plain.blocks)
    # the default attention gives each token's own key some weight
    _, weights = plain(torch.randn(1, 1, 28, 28), return_attention=True)
    assert torch.all(weights[0].diagonal(dim1=-2, dim2=-1) > 0)
