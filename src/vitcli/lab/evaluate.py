"""`vitcli eval`: a checkpoint scored on a split of its own data set, or of another with the same image
shape and classes, its images prepared as in training.

    report = eval_checkpoint("runs/vit-mnist-.../model.safetensors")
    report.result.accuracy, report.result.confusion
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from vitcli.data import load_splits
from vitcli.data.datasets import Split
from vitcli.errors import ConfigError
from vitcli.lab.class_matching import fit_data
from vitcli.runtime.devices import resolve_device
from vitcli.runtime.lock import held_by
from vitcli.training.checkpoint import Checkpoint, checkpoint_file, load_checkpoint
from vitcli.training.evaluation import EvalResult, evaluate
from vitcli.training.run_dir import MODEL


@dataclass
class EvalReport:
    checkpoint: Path
    dataset: str
    split: str
    classes: list[str]  # the model's, in its output order: the rows and columns of the confusion matrix
    result: EvalResult
    data_classes: list[str] | None = None  # the data's name for each of them (as `classes` when None)
    matched_by: str = "name"  # how the data's classes were paired with the model's: "name" or "position"
    notes: list[str] = field(default_factory=list)  # lines for the user (a pairing worth knowing)
    in_progress: bool = False  # the run was still training: the weights are its best so far

    def to_dict(self) -> dict:
        return {
            "checkpoint": str(self.checkpoint),
            "dataset": self.dataset,
            "split": self.split,
            "count": self.result.count,
            "accuracy": self.result.accuracy,
            # its 95% Wilson interval over the `count` images, whatever their number (the tables show it
            # under training/confidence.py's SMALL_TEST only); null for an empty split
            "accuracy_interval": list(self.result.interval) if self.result.interval else None,
            "loss": self.result.loss,
            "per_class_accuracy": dict(zip(self.classes, self.result.per_class_accuracy)),
            "confusion": self.result.confusion,
            "classes": self.classes,
            "data_classes": self.data_classes or self.classes,
            "matched_by": self.matched_by,
            "in_progress": self.in_progress,
        }


def eval_checkpoint(
    path: str | Path,
    dataset: str | None = None,
    split: str = "test",
    data_dir: str | None = None,
    device: str = "auto",
    batch_size: int = 1024,
    match_by_position: bool = False,
) -> EvalReport:
    """Accuracy, loss and confusion of a checkpoint on a split of its own data set (or of `dataset`,
    which must have images of the same shape and the same number of classes). Images are prepared as
    in training, by the checkpoint's own preprocessing, whatever data set they come from.

    The data's classes are paired with the model's by name (`vitcli.lab.class_matching`), and the report is in
    the model's class order and names; names that differ are a ConfigError unless `match_by_position`."""
    if batch_size <= 0:
        raise ConfigError(f"--batch-size must be a positive whole number, got {batch_size}")
    torch_device = resolve_device(device)
    checkpoint = load_checkpoint(path, torch_device)
    in_progress = training_note(checkpoint_file(path), checkpoint)
    data_cfg = checkpoint.config.data.for_evaluation(dataset, data_dir)
    splits = load_splits(data_cfg)
    classes = fit_data(checkpoint.info, splits.info, data_cfg.dataset, match_by_position)
    data = splits.get(split)
    result = evaluate(
        checkpoint.model,
        Split(data.images, classes.apply(data.labels)),
        checkpoint.preprocessing.on(torch_device),
        torch_device,
        len(checkpoint.info.classes),
        batch_size,
    )
    return EvalReport(
        Path(path),
        data_cfg.dataset,
        split,
        list(checkpoint.info.classes),
        result,
        list(classes.data_classes),
        classes.by,
        [note for note in (in_progress, classes.note) if note],
        in_progress is not None,
    )


def training_note(file: Path, checkpoint: Checkpoint) -> str | None:
    """What to know about scoring the model.safetensors of a run that is still training (its directory is
    held: runtime/lock.py): these are the best weights so far, not the run's result. None otherwise."""
    if file.name != MODEL:
        return None
    holder = held_by(file.parent)
    if holder is None:
        return None
    epoch, epochs = checkpoint.metrics.get("epoch"), checkpoint.config.train.epochs
    so_far = f"its best epoch so far ({epoch} of {epochs})" if epoch else "its best epoch so far"
    return (
        f"{file.parent} is still training ({holder}): these are the weights of {so_far}, not its final "
        "model; evaluate it again when it has finished"
    )
