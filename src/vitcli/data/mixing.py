"""mixup (Zhang et al. 2018) and cutmix (Yun et al. 2019) on a training batch, with soft targets.

torchvision's `MixUp` and `CutMix` do the work; this is the glue: one of the two per batch when both are
on, applied to the model's float inputs on the device. Each image is mixed with its neighbour in the
batch (the batch rolled by one), whose order is already random; the targets become the same mixture of
the two one-hot labels, so each row sums to 1. Their random draws (the Beta-distributed weight, the box,
which of the two) come from torch's global generator, which a run's saved state restores, so a resumed
run mixes as the uninterrupted one would have.
"""

from __future__ import annotations

from torch import Tensor


class Mixing:
    """(images, labels (B,)) -> (mixed images, targets (B, classes) summing to 1 per row)."""

    def __init__(self, mixup: float, cutmix: float, num_classes: int):
        from torchvision.transforms import v2  # its import takes a while; only runs that mix pay for it

        ops = []
        if mixup > 0:
            ops.append(v2.MixUp(alpha=mixup, num_classes=num_classes))
        if cutmix > 0:
            ops.append(v2.CutMix(alpha=cutmix, num_classes=num_classes))
        if not ops:
            raise ValueError("Mixing needs a positive mixup or cutmix alpha")
        self.transform = ops[0] if len(ops) == 1 else v2.RandomChoice(ops)

    def __call__(self, images: Tensor, labels: Tensor) -> tuple[Tensor, Tensor]:
        return self.transform(images, labels)


def hard_labels(targets: Tensor) -> Tensor:
    """Class indices from labels or from soft targets (the class with the larger share of a mixed image),
    for training accuracy."""
    return targets.argmax(1) if targets.ndim == 2 else targets
