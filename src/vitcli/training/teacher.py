"""The teacher of a distilled ViT (`--teacher CHECKPOINT`, docs/small-data.md): a trained vitcli checkpoint,
checked against the student's data and added to what the student's spec built (`models/distillation.py`
holds the loss and the teacher's timing)."""

from __future__ import annotations

from pathlib import Path

from vitcli.data.datasets import DatasetInfo
from vitcli.data.preprocessing import Preprocessing
from vitcli.errors import CheckpointError, ConfigError
from vitcli.models import count_parameters
from vitcli.models.built import Built
from vitcli.models.distillation import DistillationLoss, Teacher
from vitcli.training.checkpoint import load_checkpoint


def with_teacher(built: Built, info: DatasetInfo) -> Built:
    """`built` with its teacher and the distillation loss when its spec names a teacher."""
    if built.spec.teacher is not None:
        built.teacher = load_teacher(built.spec.teacher, info, built.preprocessing)
        built.criterion = DistillationLoss(built.teacher)
    return built


def load_teacher(path: str | Path, info: DatasetInfo, student: Preprocessing) -> Teacher:
    """The checkpoint at `path` as a teacher for a student trained on data shaped like `info`; a
    ConfigError in one line when it predicts other classes or was trained on other images."""
    try:
        checkpoint = load_checkpoint(path)
    except CheckpointError as e:
        raise ConfigError(f"--teacher: {e}") from None
    theirs, ours = checkpoint.info, info
    if list(theirs.classes) != list(ours.classes):
        raise ConfigError(
            f"--teacher {path} predicts {len(theirs.classes)} classes ({_names(theirs.classes)}), the data "
            f"has {len(ours.classes)} ({_names(ours.classes)}); use a teacher trained on the same classes"
        )
    if (theirs.channels, theirs.height, theirs.width) != (ours.channels, ours.height, ours.width):
        raise ConfigError(
            f"--teacher {path} was trained on {theirs.height}x{theirs.width}x{theirs.channels} images, the "
            f"data has {ours.height}x{ours.width}x{ours.channels}; use a teacher trained on this data set"
        )
    model = checkpoint.model.eval().requires_grad_(False)
    return Teacher(
        Path(path),
        checkpoint.config.model.kind,
        count_parameters(model),
        model,
        student,
        checkpoint.preprocessing,
    )


def _names(classes) -> str:
    shown = ", ".join(classes[:3])
    return shown + (", ..." if len(classes) > 3 else "")
