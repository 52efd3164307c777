"""Two models side by side on one split (`vitcli inspect A --against B`): where a ViT and a CNN (or two
ViTs) disagree. Both see the same images, each prepared as in its own training; each is scored against
the labels in its own class order (B's classes paired with A's by name, as `vitcli eval` pairs a data
set's: `inspection.report.load_other`).

Beside the per-class accuracies, the exact McNemar test asks whether the images only one model gets
right fall one way more often than chance would (a two-sided binomial test on those two counts): the
usual test for two classifiers on one test set (Dietterich 1998).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor

from vitcli.training.checkpoint import Checkpoint


@dataclass
class Disagreement:
    a: Path
    b: Path
    split: str
    classes: list[str]  # A's, in its order: the rows of the per-class table
    sources: list[str]  # "test[17]" per image
    images: Tensor  # uint8 (N, C, H, W)
    labels: Tensor  # (N,) in A's class order
    a_predictions: Tensor  # (N,) in A's class order
    b_predictions: Tensor  # (N,) in A's class order too (B's outputs paired by class name)

    @property
    def a_right(self) -> Tensor:
        return self.a_predictions == self.labels

    @property
    def b_right(self) -> Tensor:
        return self.b_predictions == self.labels

    @property
    def only_a(self) -> Tensor:
        return self.a_right & ~self.b_right

    @property
    def only_b(self) -> Tensor:
        return self.b_right & ~self.a_right

    def per_class(self) -> list[dict]:
        rows = []
        for k, name in enumerate(self.classes):
            mine = self.labels == k
            n = int(mine.sum())
            a = float(self.a_right[mine].float().mean()) if n else float("nan")
            b = float(self.b_right[mine].float().mean()) if n else float("nan")
            rows.append({"class": name, "images": n, "a_accuracy": a, "b_accuracy": b, "difference": a - b})
        return rows

    def counts(self) -> dict[str, int]:
        return {
            "both_right": int((self.a_right & self.b_right).sum()),
            "only_a": int(self.only_a.sum()),
            "only_b": int(self.only_b.sum()),
            "both_wrong": int((~self.a_right & ~self.b_right).sum()),
        }

    def to_dict(self) -> dict:
        counts = self.counts()
        return {
            "a": str(self.a),
            "b": str(self.b),
            "split": self.split,
            "images": len(self.labels),
            "a_accuracy": float(self.a_right.float().mean()),
            "b_accuracy": float(self.b_right.float().mean()),
            **counts,
            "mcnemar_p": mcnemar_p(counts["only_a"], counts["only_b"]),
            "per_class": self.per_class(),
            "only_a_right": [self.sources[i] for i in self.only_a.nonzero().flatten().tolist()],
            "only_b_right": [self.sources[i] for i in self.only_b.nonzero().flatten().tolist()],
        }


def mcnemar_p(only_a: int, only_b: int) -> float:
    """Exact two-sided McNemar p-value: P(a split as uneven as this | each disagreement is a coin flip)."""
    n, k = only_a + only_b, min(only_a, only_b)
    if n == 0:
        return 1.0
    # log C(n, i) - n log 2, summed in log space: n reaches the tens of thousands.
    logs = [
        math.lgamma(n + 1) - math.lgamma(i + 1) - math.lgamma(n - i + 1) - n * math.log(2)
        for i in range(k + 1)
    ]
    top = max(logs)
    tail = math.exp(top) * sum(math.exp(x - top) for x in logs)
    return min(1.0, 2 * tail)


def predict(checkpoint: Checkpoint, images: Tensor, batch_size: int = 256) -> Tensor:
    """(N,) class indices in the checkpoint's order, for uint8 images, prepared as in its training."""
    model = checkpoint.model
    device = next(model.parameters()).device
    preprocess = checkpoint.preprocessing.on(device)
    model.eval()
    out = []
    with torch.no_grad():
        for start in range(0, len(images), batch_size):
            logits = model(preprocess(images[start : start + batch_size].to(device)))
            out.append(logits.argmax(dim=-1).cpu())
    return torch.cat(out)
