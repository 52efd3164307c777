"""Engine events as a rich progress bar and one line per epoch."""

from __future__ import annotations

from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Column

from vitcli.cli.tables import epoch_line
from vitcli.events import EpochMetrics, EpochStart, Event, Status, StepDone


class TrainProgress:
    """A listener for `train_run`: use as `with TrainProgress(console) as listen: train_run(cfg, listen)`."""

    def __init__(self, console: Console):
        # The bar takes what the words leave (at least 5 columns), so the line fits an 80-column terminal
        # with 3-digit epoch counts and 6-digit speeds.
        whole = Column(no_wrap=True)  # the words keep their width; the bar gives way
        self.progress = Progress(
            TextColumn("epoch {task.fields[epoch]}", table_column=whole),
            BarColumn(bar_width=None, table_column=Column(ratio=1, min_width=4)),
            MofNCompleteColumn(table_column=whole),
            TextColumn(
                "loss {task.fields[loss]:.4f} acc {task.fields[acc]:.2%} {task.fields[ips]:,.0f} img/s",
                table_column=whole,
            ),
            TimeRemainingColumn(table_column=whole),
            console=console,
            transient=True,
            expand=True,
        )
        self.task = None
        self.epochs = 0

    def __enter__(self) -> TrainProgress:
        self.progress.start()
        return self

    def __exit__(self, *exc) -> None:
        self.progress.stop()

    def new_run(self) -> None:
        """Drop the current bar, so that the next run's first epoch starts a fresh one (sweeps)."""
        if self.task is not None:
            self.progress.remove_task(self.task)
            self.task = None

    def __call__(self, event: Event) -> None:
        if isinstance(event, Status) and event.warning:
            # Not dim like the other lines: one line (soft-wrapped) the user should not miss.
            line = f"[yellow]warning:[/] {escape(event.message)}"
            self.progress.console.print(line, highlight=False, soft_wrap=True)
        elif isinstance(event, Status):
            self.progress.console.print(f"[dim]{event.message}[/]")
        elif isinstance(event, EpochStart):
            self.epochs = event.epochs
            label = f"{event.epoch}/{event.epochs}"
            if self.task is None:
                self.task = self.progress.add_task(
                    "train", total=event.steps, epoch=label, loss=0.0, acc=0.0, ips=0.0
                )
            else:
                self.progress.reset(self.task, total=event.steps, epoch=label, loss=0.0, acc=0.0, ips=0.0)
        elif isinstance(event, StepDone):
            self.progress.update(
                self.task, completed=event.step, loss=event.loss, acc=event.accuracy, ips=event.images_per_s
            )
        elif isinstance(event, EpochMetrics):
            self.progress.console.print(epoch_line(event, self.epochs), highlight=False)
