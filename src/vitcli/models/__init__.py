"""Models: the in-house ViT written from its parts, its small-data variants, the baseline CNN and timm's
ViTs. A model is made only from its spec (`vitcli.settings.specs`) and the data's shape (`build.py`), so
that a checkpoint can rebuild it.

    vit.py            PatchEmbedding, the two attention classes (one head, several), Block, ViT
    spt.py, lsa.py, conv_tokenizer.py, pooling.py   the ViTs made for small data
    distillation.py   DeiT's distillation loss and its teacher
    cnn.py            the baseline CNN
    timm_vit.py, pretrained.py, timm_build.py        timm's ViTs, their weights and their adaptation
    attention_maps.py reading attention out of a model: [CLS] maps and rollout
    token_grid.py     how many tokens a model makes of an image; the warning and refusal when too few
    build.py, built.py  a spec and the data's shape in, a module (and what training needs) out
    shipped/          trained models inside the package, by name (`vitcli models`, docs/models.md)

May import: vitcli.data, vitcli.settings, vitcli.runtime, vitcli.errors, vitcli.events.
"""

from __future__ import annotations

from torch import nn

from vitcli.models.cnn import CNN
from vitcli.models.vit import ViT


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def num_tokens(model: nn.Module) -> int | None:
    """Tokens per image (patches + prefix tokens such as [CLS]) for a ViT; None for the CNN."""
    return getattr(model, "num_tokens", None)


__all__ = ["CNN", "ViT", "count_parameters", "num_tokens"]
