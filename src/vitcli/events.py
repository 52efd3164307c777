"""What a run reports as it goes. The engine and the run send these; the CLI draws them as a progress bar
and lines, a sweep turns them into rows, a test collects them. Nothing below the CLI prints."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass


@dataclass
class Status:
    message: str
    warning: bool = False  # a line the user should not miss (a poor but legal setting), drawn as a warning


@dataclass
class EpochStart:
    epoch: int  # 1-based
    epochs: int
    steps: int


@dataclass
class StepDone:
    epoch: int
    step: int  # 1-based, within the epoch
    steps: int
    loss: float  # running means over the epoch so far
    accuracy: float
    images_per_s: float


@dataclass
class EpochMetrics:
    epoch: int
    train_loss: float
    train_accuracy: float
    val_loss: float | None
    val_accuracy: float | None
    lr: float  # at the end of the epoch (of the group with the highest, with layer decay)
    seconds: float  # training steps only, without validation
    images_per_s: float
    ema_val_loss: float | None = None  # the moving average of the weights (--ema) on the validation split
    ema_val_accuracy: float | None = None

    def to_dict(self) -> dict:
        return asdict(self)


Event = Status | EpochStart | StepDone | EpochMetrics
Listener = Callable[[Event], None]
