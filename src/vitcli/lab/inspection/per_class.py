"""Class attention: the [CLS] attention map of each block (the mean of its heads) averaged over the
images of each class. Where the per-image maps of `vitcli attention` are noisy, the class average shows
what a block looks at for a class in general: the strokes of a digit, or the centre of an object.

A model without [CLS] (`--pool gap|seq`) is read through the mean of all query rows, as in
`vitcli attention`.
"""

from __future__ import annotations

import torch
from torch import Tensor


class ClassAverage:
    """Accumulates per-class sums of (blocks, rows, cols) maps and of the images themselves."""

    def __init__(self, num_classes: int):
        self.num_classes = num_classes
        self.maps: Tensor | None = None  # (classes, blocks, rows, cols) sums
        self.images: Tensor | None = None  # (classes, C, H, W) sums, for the figure's top row
        self.counts = torch.zeros(num_classes, dtype=torch.long)

    def add(self, maps: Tensor, images: Tensor, labels: Tensor) -> None:
        """`maps`: (B, blocks, rows, cols); `images`: uint8 (B, C, H, W); `labels`: (B,) class indices."""
        labels = labels.cpu().long()
        one_hot = torch.nn.functional.one_hot(labels, self.num_classes).double()  # (B, classes)
        maps_sum = torch.einsum("bk,b...->k...", one_hot, maps.cpu().double())
        images_sum = torch.einsum("bk,b...->k...", one_hot, images.cpu().double())
        self.maps = maps_sum if self.maps is None else self.maps + maps_sum
        self.images = images_sum if self.images is None else self.images + images_sum
        self.counts += one_hot.sum(dim=0).long()

    def result(self) -> tuple[Tensor, Tensor, Tensor]:
        """(class maps (classes, blocks, rows, cols), mean images (classes, C, H, W), counts); a class
        with no image gets zeros."""
        if self.maps is None or self.images is None:
            raise ValueError("no images were added")
        shape = (-1,) + (1,) * (self.maps.dim() - 1)
        n = self.counts.clamp_min(1).double()
        maps = (self.maps / n.reshape(shape)).float()
        images = (self.images / n.reshape((-1,) + (1,) * (self.images.dim() - 1))).float()
        return maps, images, self.counts.clone()


def class_average(maps: Tensor, labels: Tensor, num_classes: int) -> Tensor:
    """(classes, ...): the mean of `maps` (B, ...) over each class's images, in one call."""
    images = torch.zeros(len(maps), 1, 1, 1, dtype=torch.uint8)
    accumulator = ClassAverage(num_classes)
    accumulator.add(maps, images, labels)
    return accumulator.result()[0]
