"""`--tensorboard`: a run's events as TensorBoard scalars, in RUN_DIR/tensorboard/, in TensorBoard's own
event-file format (its protocol buffers and record framing; needs the optional `tensorboard` package).

    per epoch (step = the epoch)           train/loss, train/accuracy, val/loss, val/accuracy,
                                           ema_val/loss, ema_val/accuracy (with --ema), lr, images_per_s
    about 50 times an epoch (step = the    step/loss, step/accuracy: the running means of the epoch so
    training steps so far)                 far, as the progress bar shows them

A resumed run appends to the same folder: it starts a new events file, and TensorBoard reads the files of
a folder as one run (the epochs before the stop are not written again).

    tensorboard --logdir runs/       # every run under runs/, each its own curve

The events are written here, in the training's own thread, not by torch's SummaryWriter: its writer
thread meets a full disk on its own ("Exception in thread" and a traceback) and the run hears of it only
later, as a second traceback. Here a write that fails is one OutputError line naming the file and the
cause, raised where the run can stop cleanly; the events file is cut back to its last whole record, and
the state of the last finished epoch stays, to resume from once there is room.
"""

from __future__ import annotations

import contextlib
import io
import itertools
import os
import socket
import time
from pathlib import Path

from vitcli.errors import ConfigError, VitcliError
from vitcli.events import EpochMetrics, Listener, StepDone
from vitcli.runtime.files import writing

TENSORBOARD = "tensorboard"  # the folder in the run directory
EVENTS = "TensorBoard events"  # the file, in words
FLUSH_SECONDS = 10.0  # step scalars reach the disk at least this often (and every epoch's at its end)

_files = itertools.count()  # two logs of one process in one second still get two files


def check_tensorboard() -> None:
    """ConfigError unless the tensorboard package is installed (asked before a run directory is made)."""
    try:
        import tensorboard  # noqa: F401
    except ImportError:
        raise ConfigError("--tensorboard needs tensorboard: pip install 'vitcli[tensorboard]'") from None


def _file_name() -> str:
    """SummaryWriter's name for an events file: TensorBoard reads a folder's files in the order of their
    names, so a resumed run's come after the first ones'."""
    return f"events.out.tfevents.{int(time.time()):010d}.{socket.gethostname()}.{os.getpid()}.{next(_files)}"


class TensorBoardLog:
    """A listener that writes each StepDone and EpochMetrics as scalars, then passes every event on.

    Records gather in memory and go to the events file together: at the end of every epoch, at least
    every FLUSH_SECONDS, and on leaving (Ctrl-C included)."""

    def __init__(self, log_dir: str | Path, emit: Listener):
        self.log_dir, self.emit = Path(log_dir), emit

    def __enter__(self) -> TensorBoardLog:
        # extra vitcli[tensorboard]
        from tensorboard.compat.proto.event_pb2 import Event
        from tensorboard.compat.proto.summary_pb2 import Summary
        from tensorboard.summary.writer.record_writer import RecordWriter

        self._event, self._summary = Event, Summary
        self.path = self.log_dir / _file_name()
        self.pending = io.BytesIO()  # whole records not yet in the file
        self.records = RecordWriter(self.pending)
        self.written = 0  # the file's length: whole records only
        with writing(self.path, EVENTS):
            self.log_dir.mkdir(parents=True, exist_ok=True)
            self.file = open(self.path, "ab", buffering=0)  # noqa: SIM115 (closed in __exit__)
        self.records.write(Event(wall_time=time.time(), file_version="brain.Event:2").SerializeToString())
        try:
            self.flush()
        except BaseException:
            self.file.close()
            with contextlib.suppress(OSError):
                self.path.unlink()  # not even the first record fitted: no empty file is left
            raise
        return self

    def __exit__(self, kind, *exc) -> None:
        try:
            with writing(self.path, EVENTS):
                try:
                    self.flush()
                finally:
                    self.file.close()
        except VitcliError:
            if kind is None:
                raise
            # Leaving on an error or a stop, what the run did before it is written where the disk takes
            # it; the error that stopped the run is the one to tell.

    def __call__(self, event) -> None:
        if isinstance(event, StepDone):
            # Every epoch has the same number of steps, so this is the count of steps since the start.
            step = (event.epoch - 1) * event.steps + event.step
            self._scalar("step/loss", event.loss, step)
            self._scalar("step/accuracy", event.accuracy, step)
            if time.monotonic() - self.flushed >= FLUSH_SECONDS:
                self.flush()
        elif isinstance(event, EpochMetrics):
            self._epoch(event)
        self.emit(event)

    def flush(self) -> None:
        """Append the records gathered so far to the events file; OutputError if the disk will not take
        them, with the file cut back to the records before them (never half a record)."""
        data = memoryview(self.pending.getvalue())
        with writing(self.path, EVENTS):
            try:
                while data:  # an unbuffered write may take only part (a disk that fills up)
                    data = data[self.file.write(data) :]
            except OSError:
                with contextlib.suppress(OSError):
                    self.file.truncate(self.written)
                raise
        self.written += self.pending.tell()
        self.pending.seek(0)
        self.pending.truncate()
        self.flushed = time.monotonic()

    def _scalar(self, tag: str, value: float, step: int) -> None:
        summary = self._summary(value=[self._summary.Value(tag=tag, simple_value=float(value))])
        event = self._event(wall_time=time.time(), step=int(step), summary=summary)
        self.records.write(event.SerializeToString())

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
                self._scalar(tag, value, m.epoch)
        self.flush()  # an epoch's scalars are on disk when the epoch's line is
