"""Loss, accuracy and confusion matrix of a model on a split, batched on the device."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from vitcli.data import Batches
from vitcli.data.datasets import Split
from vitcli.data.preprocessing import Preprocessor
from vitcli.runtime.devices import AUTO, autocast
from vitcli.runtime.distributed import all_sum
from vitcli.training.confidence import wilson_interval


@dataclass
class EvalResult:
    loss: float
    accuracy: float
    count: int
    confusion: list[list[int]] = field(repr=False)  # [true class][predicted class]

    @property
    def per_class_accuracy(self) -> list[float | None]:
        return [row[i] / sum(row) if sum(row) else None for i, row in enumerate(self.confusion)]

    @property
    def interval(self) -> tuple[float, float] | None:
        """The accuracy's 95% Wilson interval (confidence.py) over the `count` images; None for none."""
        # accuracy * count is the number right up to float rounding: round it back to that integer.
        return wilson_interval(round(self.accuracy * self.count), self.count) if self.count else None


@torch.inference_mode()
def evaluate(
    model: nn.Module,
    split: Split,
    preprocess: Preprocessor,
    device: torch.device,
    num_classes: int,
    batch_size: int = 1024,
    autocast_dtype: torch.dtype | str | None = AUTO,
    shard: tuple[int, int] = (0, 1),
) -> EvalResult:
    """Loss (without label smoothing), accuracy and confusion matrix of `model` on `split`.

    `shard=(rank, world)`: in data-parallel training each rank measures its 1/world of the split and the
    sums are added up over the ranks, so every rank gets the whole split's result."""
    was_training = model.training
    model.eval()
    confusion = torch.zeros(num_classes * num_classes, dtype=torch.int64, device=device)
    loss_sum = torch.zeros((), device=device)
    rank, world = shard
    part = split if world == 1 else Split(split.images[rank::world], split.labels[rank::world])
    for images, labels in Batches(part, batch_size, device, preprocess):
        with autocast(device, autocast_dtype):
            logits = model(images)
        loss_sum += F.cross_entropy(logits.float(), labels, reduction="sum")
        confusion += torch.bincount(
            labels * num_classes + logits.argmax(1), minlength=num_classes * num_classes
        )
    model.train(was_training)
    if world > 1:
        confusion, loss_sum = all_sum(confusion).long(), all_sum(loss_sum)
    confusion = confusion.view(num_classes, num_classes).cpu()
    count = len(split)
    return EvalResult(
        loss=loss_sum.item() / max(1, count),
        accuracy=confusion.diag().sum().item() / max(1, count),
        count=count,
        confusion=confusion.tolist(),
    )
