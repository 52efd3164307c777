"""Mini-batches built on the device from uint8 tensors, with augmentation as tensor operations.

The whole split is moved to the device once (60,000 MNIST images are 47 MB as uint8); each batch is a
gather, an optional augmentation on the uint8 images, and the model's preprocessing (one multiply-add
to normalise, and a resize where the model takes another size; `vitcli.preprocessing`). There are no
worker processes, no PIL and no per-image Python, which is what makes small models train fast on a CPU
as on a GPU.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from vitcli.data.datasets import Split
from vitcli.preprocessing import Preprocessor

# Digits move a little (no flips: a mirrored 2 is not a 2); natural images get the usual CIFAR recipe.
DIGIT_MAX_SHIFT = 1
NATURAL_PADDING = 4


def random_translate(images: Tensor, max_shift: int, generator: torch.Generator) -> Tensor:
    """Shift each image by its own random (dy, dx) in [-max_shift, max_shift], filling with zeros.

    Equivalent to zero padding by `max_shift` and a random crop of the original size.
    """
    B, C, H, W = images.shape
    padded = F.pad(images, (max_shift,) * 4)
    offsets = torch.randint(0, 2 * max_shift + 1, (2, B), generator=generator, device=images.device)
    rows = offsets[0, :, None] + torch.arange(H, device=images.device)  # (B, H)
    cols = offsets[1, :, None] + torch.arange(W, device=images.device)  # (B, W)
    batch = torch.arange(B, device=images.device)[:, None, None]
    # Advanced indexing puts the broadcast (B, H, W) first and the sliced channel dim last.
    return padded[batch, :, rows[:, :, None], cols[:, None, :]].permute(0, 3, 1, 2)


def random_flip(images: Tensor, generator: torch.Generator) -> Tensor:
    """Mirror each image left-right with probability 1/2."""
    flip = torch.rand(images.shape[0], generator=generator, device=images.device) < 0.5
    return torch.where(flip[:, None, None, None], images.flip(3), images)


def augment(images: Tensor, family: str, generator: torch.Generator) -> Tensor:
    if family == "digits":
        return random_translate(images, DIGIT_MAX_SHIFT, generator)
    return random_flip(random_translate(images, NATURAL_PADDING, generator), generator)


class Batches:
    """Iterate over (model inputs (B, C, H, W), labels (B,)) on the preprocessor's device.

    With `shuffle`, each pass draws a new order from a seeded generator, so runs are repeatable; with
    `drop_last`, every batch has the same shape (what torch.compile and CUDA graphs want). `augment`
    names the augmentation family ("digits" or "natural"; None: none).
    """

    def __init__(
        self,
        split: Split,
        batch_size: int,
        device: torch.device,
        preprocess: Preprocessor,
        *,
        shuffle: bool = False,
        augment: str | None = None,
        drop_last: bool = False,
        seed: int = 0,
    ):
        self.images = split.images.to(device)
        self.labels = split.labels.to(device)
        self.batch_size = batch_size
        self.preprocess = preprocess
        self.shuffle, self.augment = shuffle, augment
        # Never drop everything: a subset smaller than one batch still trains.
        self.drop_last = drop_last and len(self.labels) >= batch_size
        self.generator = torch.Generator(device=device).manual_seed(seed)

    def __len__(self) -> int:
        n = len(self.labels)
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)

    @property
    def images_per_epoch(self) -> int:
        return len(self) * self.batch_size if self.drop_last else len(self.labels)

    def __iter__(self):
        return self.epoch()

    def epoch(self, skip: int = 0):
        """One pass. The first `skip` batches are drawn, augmentation included, so that the generator moves
        exactly as it did, but not yielded: a run resumed in the middle of an epoch sees the same batches."""
        n = len(self.labels)
        order = (
            torch.randperm(n, generator=self.generator, device=self.labels.device) if self.shuffle else None
        )
        for i in range(len(self)):
            index = slice(i * self.batch_size, (i + 1) * self.batch_size)
            if order is not None:
                index = order[index]
            images = self.images[index]
            if self.augment is not None:
                images = augment(images, self.augment, self.generator)
            if i >= skip:
                yield self.preprocess(images), self.labels[index]
