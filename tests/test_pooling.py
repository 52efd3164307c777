"""models/pooling.py and the ViT's read-out: [CLS], global average pooling and sequence pooling."""

import pytest
import torch

from vitcli.models.pooling import SequencePooling
from vitcli.models.vit import ViT

MNIST = {"image_size": (28, 28), "in_channels": 1, "num_classes": 10}


def test_sequence_pooling_weights_sum_to_one_and_the_output_is_their_weighted_sum():
    pool = SequencePooling(8)
    x = torch.randn(3, 5, 8)
    weights = pool.weights(x)
    assert weights.shape == (3, 5) and torch.all(weights > 0)
    assert torch.allclose(weights.sum(-1), torch.ones(3))
    expected = torch.stack([sum(weights[b, n] * x[b, n] for n in range(5)) for b in range(3)])
    assert torch.allclose(pool(x), expected, atol=1e-6)


@pytest.mark.parametrize("pool", ["gap", "seq"])
def test_pooled_models_have_no_cls_token_and_read_every_token(pool):
    model = ViT(**MNIST, pool=pool).eval()
    assert model.cls_token is None and model.num_prefix_tokens == 0 and model.num_tokens == 16
    x = torch.randn(1, 1, 28, 28)
    # every token feeds the output: a change in one corner patch changes the logits
    changed = x.clone()
    changed[..., :7, :7] += 1
    assert not torch.allclose(model(x), model(changed))


def test_gap_reads_the_mean_of_the_final_normed_tokens():
    model = ViT(**MNIST, pool="gap").eval()
    x = torch.randn(2, 1, 28, 28)
    tokens = model.patch_embed(x) + model.pos_embed
    for block in model.blocks:
        tokens, _ = block(tokens)
    assert torch.allclose(model(x), model.head(model.norm(tokens).mean(1)), atol=1e-5)


def test_pos_embed_none_has_no_positions():
    model = ViT(**MNIST, pos_embed="none", pool="seq")
    assert model.pos_embed is None and "pos_embed" not in model.state_dict()
