import math

import pytest
import torch

from vitcli.data import DatasetInfo
from vitcli.errors import ConfigError
from vitcli.models import count_parameters
from vitcli.models.build import build_module
from vitcli.models.vit import (
    MLP,
    MultiHeadSelfAttention,
    PatchEmbedding,
    SelfAttention,
    ViT,
    sinusoidal_embedding,
)
from vitcli.settings.specs import ViTSpec

CIFAR = DatasetInfo("cifar10", 3, 32, 32, [str(i) for i in range(10)], "natural")
MNIST = DatasetInfo("mnist", 1, 28, 28, [str(i) for i in range(10)], "digits")


def test_patch_embedding_makes_one_token_per_patch_in_row_major_order():
    embed = PatchEmbedding(in_channels=1, embed_dim=8, patch_size=7)
    x = torch.zeros(2, 1, 28, 28)
    x[:, :, 7:14, 21:28] = 1.0  # the patch in row 1, column 3 -> token 1 * 4 + 3 = 7
    tokens = embed(x)
    assert tokens.shape == (2, 16, 8)
    bias = embed.proj.bias
    changed = [(t - bias).abs().sum().item() > 1e-6 for t in tokens[0]]
    assert changed == [i == 7 for i in range(16)]


def test_mlp_keeps_shape_and_has_requested_hidden_size():
    mlp = MLP(16, 40)
    assert mlp.fc1.out_features == 40 and mlp(torch.randn(3, 5, 16)).shape == (3, 5, 16)


def test_vit_output_shapes_and_tokens():
    model = build_module(ViTSpec(embed_dim=32, patch_size=7, depth=2, heads=4), MNIST)
    logits, attentions = model(torch.randn(5, 1, 28, 28), return_attention=True)
    assert logits.shape == (5, 10)
    assert model.num_tokens == 17
    assert len(attentions) == 2 and all(a.shape == (5, 4, 17, 17) for a in attentions)


def test_rectangular_images_work():
    model = ViT(
        image_size=(16, 24), in_channels=3, num_classes=4, embed_dim=16, patch_size=4, depth=1, heads=2
    )
    assert model.grid_size == (4, 6) and model(torch.randn(2, 3, 16, 24)).shape == (2, 4)


def test_reference_cifar_vit_parameter_count():
    # dim 256, MLP 512, 6 blocks, 8 heads, patch 4 on 32x32x3 with 10 classes: "about 3.2 M".
    cfg = ViTSpec(embed_dim=256, mlp_dim=512, depth=6, heads=8, patch_size=4)
    assert count_parameters(build_module(cfg, CIFAR)) == 3_195_146


def test_sinusoidal_positions_are_a_buffer_not_parameters():
    learned = build_module(ViTSpec(pos_embed="learned"), MNIST)
    fixed = build_module(ViTSpec(pos_embed="sinusoidal"), MNIST)
    assert count_parameters(learned) - count_parameters(fixed) == 17 * 32
    assert "pos_embed" not in fixed.state_dict()


@pytest.mark.parametrize("dim", [6, 7, 32])
def test_sinusoidal_values_follow_the_formula(dim):
    pe = sinusoidal_embedding(20, dim)
    for k in (0, 1, 5, 19):
        for j in range(dim):
            i2 = j - j % 2  # the 2i of the formula
            angle = k / 10000 ** (i2 / dim)
            expected = math.sin(angle) if j % 2 == 0 else math.cos(angle)
            assert pe[k, j].item() == pytest.approx(expected, abs=1e-6)


@pytest.mark.parametrize("heads", [1, 2, 4])
def test_fused_and_explicit_attention_give_the_same_logits(heads):
    torch.manual_seed(1)
    model = build_module(ViTSpec(embed_dim=32, depth=3, heads=heads, patch_size=4), MNIST).eval()
    x = torch.randn(4, 1, 28, 28)
    fused = model(x)
    explicit, _ = model(x, return_attention=True)
    torch.testing.assert_close(fused, explicit, rtol=1e-5, atol=1e-5)


def test_attention_weights_are_softmax_of_scaled_scores():
    torch.manual_seed(2)
    attn = MultiHeadSelfAttention(embed_dim=12, heads=3).eval()
    x = torch.randn(2, 5, 12)
    _, weights = attn(x, need_weights=True)
    q, k, _ = attn.qkv(x).chunk(3, dim=-1)
    for h in range(3):
        qh, kh = q[..., h * 4 : (h + 1) * 4], k[..., h * 4 : (h + 1) * 4]
        expected = torch.softmax(qh @ kh.transpose(1, 2) / math.sqrt(4), dim=-1)
        torch.testing.assert_close(weights[:, h], expected)
    torch.testing.assert_close(weights.sum(-1), torch.ones(2, 3, 5))


def test_single_head_attention_matches_multi_head_with_one_head():
    single, multi = SelfAttention(16), MultiHeadSelfAttention(16, heads=1)
    multi.load_state_dict(single.state_dict())
    x = torch.randn(2, 7, 16)
    out_s, w_s = single(x, need_weights=True)
    out_m, w_m = multi(x, need_weights=True)
    torch.testing.assert_close(out_s, out_m)
    torch.testing.assert_close(w_s, w_m)


def test_patch_size_that_does_not_divide_the_image_is_a_clear_error():
    with pytest.raises(ConfigError, match="28x28, not divisible by --patch-size 5.*2, 4, 7, 14, 28"):
        build_module(ViTSpec(patch_size=5), MNIST)


def test_gradients_reach_every_parameter():
    model = build_module(ViTSpec(heads=2), MNIST)
    model(torch.randn(2, 1, 28, 28)).sum().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in model.parameters())
