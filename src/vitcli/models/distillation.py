"""Knowledge distillation through a distillation token (Touvron et al. 2021, "Training data-efficient
image transformers & distillation through attention", DeiT, arXiv:2012.12877), hard-label variant:

    L = 1/2 CE(z_cls, y) + 1/2 CE(z_dist, argmax z_teacher)

    z_cls    the [CLS] head's logits, trained on the labels y (smoothed, or mixup/cutmix's soft targets)
    z_dist   the distillation token's head, trained on the teacher's predicted class for the very same
             augmented batch
    teacher  any vitcli checkpoint predicting the same classes: the point is the baseline CNN, whose
             locality the student picks up; it runs under no_grad, in eval mode

At evaluation the student averages its two heads (models/vit.py), so a distilled checkpoint needs no
teacher. `Teacher.cost` is the time spent in the teacher, for the run's table and the metrics.

    teacher = load_teacher(path, info, student_preprocessing)   # vitcli.training.teacher: a checkpoint
    criterion = DistillationLoss(teacher)      # Built.criterion: the engine calls it every step
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from vitcli.data.preprocessing import Preprocessing, Preprocessor


class DeviceTimer:
    """Seconds spent in timed sections: CUDA events on a GPU (read, and waited for, only when asked), the
    wall clock on the CPU."""

    def __init__(self) -> None:
        self._seconds = 0.0
        self._events: list[tuple[torch.cuda.Event, torch.cuda.Event]] = []

    def time(self, device: torch.device, run):
        if device.type != "cuda":
            start = time.perf_counter()
            result = run()
            self._seconds += time.perf_counter() - start
            return result
        begin, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        begin.record()
        result = run()
        end.record()
        self._events.append((begin, end))
        return result

    @property
    def seconds(self) -> float:
        if self._events:
            self._events[-1][1].synchronize()
            self._seconds += sum(b.elapsed_time(e) for b, e in self._events) / 1000
            self._events.clear()
        return self._seconds


@dataclass
class Teacher:
    """A trained vitcli model that labels the student's batches."""

    checkpoint: Path
    kind: str  # its model kind: cnn, vit or timm
    parameters: int
    model: nn.Module
    student: Preprocessing  # how the student's inputs were made from the images
    preprocessing: Preprocessing  # how the teacher's own inputs are made from them
    timer: DeviceTimer = field(default_factory=DeviceTimer)
    # Set on first use, on the student's device: the student's normalisation undone (x * scale + shift
    # gives pixel values 0-255), then the teacher's own preparation.
    _to_pixels: tuple[Tensor, Tensor] | None = field(default=None, init=False, repr=False)
    _prepare: Preprocessor | None = field(default=None, init=False, repr=False)

    def predict(self, inputs: Tensor) -> Tensor:
        """The teacher's class for each of the student's (normalised) inputs."""
        if self._prepare is None:
            self.model.to(inputs.device)
            std = torch.tensor(self.student.std, device=inputs.device).view(1, -1, 1, 1)
            mean = torch.tensor(self.student.mean, device=inputs.device).view(1, -1, 1, 1)
            self._to_pixels = (255 * std, 255 * mean)
            self._prepare = Preprocessor(self.preprocessing, inputs.device)
        scale, shift = self._to_pixels
        with torch.no_grad():
            prepared = self._prepare(torch.addcmul(shift, inputs.float(), scale))
            return self.timer.time(inputs.device, lambda: self.model(prepared).argmax(1))

    @property
    def seconds(self) -> float:
        """Time spent in the teacher so far."""
        return self.timer.seconds

    def cost(self, train_seconds: float) -> TeacherCost:
        """What the teacher cost, against the `train_seconds` of training it took part in."""
        seconds = self.seconds
        return TeacherCost(str(self.checkpoint), self.kind, self.parameters, seconds, seconds / train_seconds)


@dataclass
class TeacherCost:
    """What distilling from a teacher cost: the run's table and the checkpoint's metrics show it."""

    checkpoint: str
    kind: str
    parameters: int
    seconds: float  # in the teacher's forward passes
    share: float  # of the training seconds


class DistillationLoss:
    """The engine's criterion (engine.Criterion) for a distilled ViT: half cross-entropy of the class
    head on the labels, half of the distillation head on the teacher's predictions. The logits scored
    for the training accuracy are the two heads' mean, as at evaluation."""

    def __init__(self, teacher: Teacher):
        self.teacher = teacher

    def __call__(
        self, outputs: tuple[Tensor, Tensor], inputs: Tensor, labels: Tensor, smoothing: float
    ) -> tuple[Tensor, Tensor]:
        class_logits, dist_logits = outputs
        teacher_labels = self.teacher.predict(inputs)
        loss = F.cross_entropy(class_logits, labels, label_smoothing=smoothing) / 2
        loss = loss + F.cross_entropy(dist_logits, teacher_labels) / 2
        return loss, (class_logits + dist_logits) / 2
