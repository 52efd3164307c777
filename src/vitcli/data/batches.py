"""Mini-batches built on the device from uint8 tensors, with augmentation as tensor operations.

The whole split is moved to the device once (60,000 MNIST images are 47 MB as uint8); each batch is a
gather, then the `Augmentation` in this order:

    shifts (and flips)   uint8, per image                  random_translate, random_flip
    RandAugment          uint8, ops per image              augment.rand_augment
    preprocessing        float: normalise (and resize)     vitcli.data.preprocessing
    random erasing       float, a box per image            augment.random_erase
    mixup / cutmix       float, per batch, soft targets    mixing.Mixing

There are no worker processes, no PIL and no per-image Python, which is what makes small models train
fast on a CPU as on a GPU.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from vitcli.data.augment import rand_augment, random_erase
from vitcli.data.datasets import Split
from vitcli.data.mixing import Mixing
from vitcli.data.preprocessing import Preprocessor

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


def shift(images: Tensor, family: str, generator: torch.Generator) -> Tensor:
    """The family's basic augmentation: digits move a pixel; natural images are cropped and flipped."""
    if family == "digits":
        return random_translate(images, DIGIT_MAX_SHIFT, generator)
    return random_flip(random_translate(images, NATURAL_PADDING, generator), generator)


@dataclass(frozen=True)
class Augmentation:
    """How training batches are augmented (the [data] settings of the same names)."""

    family: str  # "digits" (no flips, no colour ops) or "natural"
    shifts: bool = True  # --augment: shifts for digits, crops with padding and flips for natural images
    randaugment: int = 0
    erase: float = 0.0
    mixup: float = 0.0
    cutmix: float = 0.0
    mix_off_epochs: int = 0

    @property
    def mixing(self) -> bool:
        return self.mixup > 0 or self.cutmix > 0

    @classmethod
    def of(cls, data, family: str) -> Augmentation | None:
        """The augmentation a DataConfig asks for on data of `family`; None when it asks for none."""
        aug = cls(
            family,
            data.augment,
            data.randaugment,
            data.erase,
            data.mixup,
            data.cutmix,
            data.mix_off_epochs,
        )
        return aug if aug.shifts or aug.randaugment or aug.erase or aug.mixing else None


class Batches:
    """Iterate over (model inputs (B, C, H, W), labels (B,)) on the preprocessor's device; with mixup or
    cutmix, the labels are soft targets (B, classes).

    With `shuffle`, each pass draws a new order from a seeded generator, so runs are repeatable; with
    `drop_last`, every batch has the same shape (what torch.compile and CUDA graphs want). `augment`
    says how training batches are augmented (None: not at all); mixing needs `num_classes`.

    `shard=(rank, world)`: data-parallel training (`vitcli.runtime.distributed`). Every rank draws the same
    global order and yields its own 1/world of each batch; `batch_size` is the global batch. With
    augmentation, every rank augments (and mixes) the whole global batch and keeps its part, so that the
    draws, and so the run, are the same whatever the number of processes.
    """

    def __init__(
        self,
        split: Split,
        batch_size: int,
        device: torch.device,
        preprocess: Preprocessor,
        *,
        shuffle: bool = False,
        augment: Augmentation | None = None,
        drop_last: bool = False,
        seed: int = 0,
        num_classes: int | None = None,
        shard: tuple[int, int] = (0, 1),
    ):
        self.images = split.images.to(device)
        self.labels = split.labels.to(device)
        self.batch_size = batch_size
        self.preprocess = preprocess
        self.shuffle, self.augment = shuffle, augment
        # Never drop everything: a subset smaller than one batch still trains.
        self.drop_last = drop_last and len(self.labels) >= batch_size
        self.shard = shard
        if shard[1] > 1 and not (shuffle and self.drop_last and batch_size % shard[1] == 0):
            raise ValueError("sharded batches are shuffled training batches of a size the ranks divide")
        self.generator = torch.Generator(device=device).manual_seed(seed)
        self.mixing = None
        if augment is not None and augment.mixing:
            if num_classes is None:
                raise ValueError("mixup and cutmix need num_classes")
            self.mixing = Mixing(augment.mixup, augment.cutmix, num_classes)

    def __len__(self) -> int:
        n = len(self.labels)
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)

    @property
    def images_per_epoch(self) -> int:
        return len(self) * self.batch_size if self.drop_last else len(self.labels)

    def __iter__(self):
        return self.epoch()

    def epoch(self, skip: int = 0, mix: bool = True):
        """One pass. The first `skip` batches are drawn, augmentation included, so that the generator moves
        exactly as it did, but not yielded: a run resumed in the middle of an epoch sees the same batches.
        (Mixing draws from torch's global generator, whose state the resumed run restores as it was at the
        stop, so skipped batches are not mixed.) `mix=False` leaves mixup and cutmix out."""
        n = len(self.labels)
        order = (
            torch.randperm(n, generator=self.generator, device=self.labels.device) if self.shuffle else None
        )
        mine = self._mine()
        for i in range(len(self)):
            index = slice(i * self.batch_size, (i + 1) * self.batch_size)
            if order is not None:
                index = order[index]
            if self.augment is None:  # nothing to draw: only this rank's images are prepared
                if i >= skip:
                    index = index if mine is None else index[mine]
                    yield self.preprocess(self.images[index]), self.labels[index]
                continue
            images, labels = self._augmented(self.images[index]), self.labels[index]
            if i < skip:
                continue
            if self.mixing is not None and mix:
                images, labels = self.mixing(images, labels)
            yield (images, labels) if mine is None else (images[mine], labels[mine])

    def _mine(self) -> slice | None:
        """This rank's rows of a global batch; None in one process (all of them)."""
        rank, world = self.shard
        size = self.batch_size // world
        return slice(rank * size, (rank + 1) * size) if world > 1 else None

    def _augmented(self, images: Tensor) -> Tensor:
        """uint8 images -> augmented model inputs, every draw from `self.generator`."""
        aug = self.augment
        if aug is None:
            return self.preprocess(images)
        if aug.shifts:
            images = shift(images, aug.family, self.generator)
        if aug.randaugment:
            images = rand_augment(images, aug.randaugment, aug.family, self.generator)
        inputs = self.preprocess(images)
        if aug.erase:
            inputs = random_erase(inputs, aug.erase, self.generator)
        return inputs
