"""The models and their specs. A model is made only through its spec (`models/specs.py`), from the data's
shape alone, so that a checkpoint can rebuild it."""

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
