"""`--tensorboard`: a run's events as TensorBoard scalars, in RUN_DIR/tensorboard/, through TensorBoard's
own `SummaryWriter` (torch.utils.tensorboard; needs the optional `tensorboard` package).

    per epoch (step = the epoch)           train/loss, train/accuracy, val/loss, val/accuracy,
                                           ema_val/loss, ema_val/accuracy (with --ema), lr, images_per_s
    about 50 times an epoch (step = the    step/loss, step/accuracy: the running means of the epoch so
    training steps so far)                 far, as the progress bar shows them

A resumed run appends to the same folder: SummaryWriter starts a new events file, and TensorBoard reads
the files of a folder as one run (the epochs before the stop are not written again).

    tensorboard --logdir runs/       # every run under runs/, each its own curve
"""

from __future__ import annotations

from pathlib import Path

from vitcli.errors import ConfigError
from vitcli.events import EpochMetrics, Listener, StepDone

TENSORBOARD = "tensorboard"  # the folder in the run directory


def check_tensorboard() -> None:
    """ConfigError unless the tensorboard package is installed (asked before a run directory is made)."""
    try:
        import tensorboard  # noqa: F401
    except ImportError:
        raise ConfigError("--tensorboard needs tensorboard: pip install 'vitcli[tensorboard]'") from None


class TensorBoardLog:
    """A listener that writes each StepDone and EpochMetrics as scalars, then passes every event on."""

    def __init__(self, log_dir: str | Path, emit: Listener):
        self.log_dir, self.emit = Path(log_dir), emit

    def __enter__(self) -> TensorBoardLog:
        # extra vitcli[tensorboard]
        from torch.utils.tensorboard import SummaryWriter

        self.writer = SummaryWriter(str(self.log_dir))
        return self

    def __exit__(self, *exc) -> None:
        self.writer.close()

    def __call__(self, event) -> None:
        if isinstance(event, StepDone):
            # Every epoch has the same number of steps, so this is the count of steps since the start.
            step = (event.epoch - 1) * event.steps + event.step
            self.writer.add_scalar("step/loss", event.loss, step)
            self.writer.add_scalar("step/accuracy", event.accuracy, step)
        elif isinstance(event, EpochMetrics):
            self._epoch(event)
        self.emit(event)

    def _epoch(self, m: EpochMetrics) -> None:
        scalars = {
            "train/loss": m.train_loss,
            "train/accuracy": m.train_accuracy,
            "val/loss": m.val_loss,
            "val/accuracy": m.val_accuracy,
            "ema_val/loss": m.ema_val_loss,
            "ema_val/accuracy": m.ema_val_accuracy,
            "lr": m.lr,
            "images_per_s": m.images_per_s,
        }
        for tag, value in scalars.items():
            if value is not None:  # no validation split, no --ema
                self.writer.add_scalar(tag, value, m.epoch)
        self.writer.flush()  # an epoch's scalars are on disk when the epoch's line is
