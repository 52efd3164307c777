"""A training run from a Config to a run directory, and the evaluation of a checkpoint.

These are the Python entry points the CLI calls:

    result = train_run(Config(), on_event=print)
    report = eval_checkpoint("runs/vit-mnist-.../model.safetensors")

A run directory holds
    model.safetensors   best-validation weights, with config, data set info and metrics as metadata
    config.toml         the resolved config (usable as --config to repeat the run)
    metrics.jsonl       one JSON line per epoch, written as the epochs finish
"""

from __future__ import annotations

import contextlib
import json
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from vitcli.checkpoint import load_checkpoint, save_checkpoint
from vitcli.config import Config
from vitcli.data import load_splits
from vitcli.data.datasets import DatasetInfo
from vitcli.engine import EvalResult, evaluate, fit, resolve_device
from vitcli.errors import CheckpointError, ConfigError, OutputError
from vitcli.events import EpochMetrics, Listener, Status
from vitcli.files import atomic_write_text
from vitcli.models import count_parameters, num_tokens
from vitcli.models.pretrained import Adaptation
from vitcli.models.specs import ModelSpec
from vitcli.preprocessing import Preprocessing


@dataclass
class RunResult:
    run_dir: Path
    config: Config  # as given: config.toml repeats the run
    spec: ModelSpec  # the exact spec of the trained model (a timm model's sizes resolved)
    info: DatasetInfo
    preprocessing: Preprocessing
    device: str
    parameters: int
    tokens: int | None
    history: list[EpochMetrics]
    best_epoch: int
    test: EvalResult
    train_seconds: float
    total_seconds: float
    images_per_s: float
    peak_memory: int | None
    adaptation: Adaptation | None = None  # a timm model: its weights and what was changed to fit them

    @property
    def best(self) -> EpochMetrics:
        return self.history[self.best_epoch - 1]

    def metrics(self) -> dict:
        """The summary kept in the checkpoint's metadata."""
        return {
            "best_epoch": self.best_epoch,
            "train_loss": self.best.train_loss,
            "train_accuracy": self.best.train_accuracy,
            "val_loss": self.best.val_loss,
            "val_accuracy": self.best.val_accuracy,
            "test_loss": self.test.loss,
            "test_accuracy": self.test.accuracy,
            "parameters": self.parameters,
            "tokens": self.tokens,
            "train_seconds": self.train_seconds,
            "images_per_s": self.images_per_s,
            "peak_memory": self.peak_memory,
            "device": self.device,
        }


def train_run(config: Config, on_event: Listener | None = None) -> RunResult:
    """Train the model `config` describes and write its run directory. Every check of the input
    (settings, data, model shape, weights) happens before the run directory is made."""
    emit = on_event or (lambda event: None)
    started = time.perf_counter()
    config.validate()
    for note in config.notes:
        emit(Status(note))
    device = resolve_device(config.train.device)
    emit(Status(f"loading {config.data.dataset}"))
    splits = load_splits(config.data)
    # The seed fixes the initial weights and, through the batches' generator, order and augmentation.
    torch.manual_seed(config.train.seed)
    built = config.model.build(splits.info, splits.stats, weight_decay=config.train.weight_decay, emit=emit)
    model = built.module.to(device)
    preprocess = built.preprocessing.on(device)
    run_dir = _new_run_dir(config, splits.info)
    with writing(run_dir / "config.toml") as path:
        atomic_write_text(path, config.to_toml())
    with MetricsLog(run_dir / "metrics.jsonl", emit) as log:
        fitted = fit(
            model,
            splits,
            config.train,
            device,
            preprocess,
            augment=splits.info.family if config.data.augment else None,
            param_groups=built.param_groups,
            criterion=built.criterion,
            on_event=log,
        )
    emit(Status("evaluating the best epoch on the test set"))
    result = RunResult(
        run_dir=run_dir,
        config=config,
        spec=built.spec,
        info=splits.info,
        preprocessing=built.preprocessing,
        device=str(device),
        parameters=count_parameters(model),
        tokens=num_tokens(model),
        history=fitted.history,
        best_epoch=fitted.best_epoch,
        test=evaluate(model, splits.test, preprocess, device, len(splits.info.classes)),
        train_seconds=fitted.seconds,
        total_seconds=0.0,
        images_per_s=fitted.images_per_s,
        peak_memory=fitted.peak_memory,
        adaptation=built.adaptation,
    )
    save_checkpoint(run_dir / "model.safetensors", built, config, splits.info, result.metrics())
    result.total_seconds = time.perf_counter() - started
    return result


class MetricsLog:
    """A listener that appends each EpochMetrics to metrics.jsonl as one whole line, then passes every
    event on."""

    def __init__(self, path: Path, emit: Listener):
        self.path, self.emit = path, emit

    def __enter__(self) -> MetricsLog:
        with writing(self.path):
            self.file = self.path.open("w", encoding="utf-8")
        return self

    def __exit__(self, *exc) -> None:
        self.file.close()

    def __call__(self, event) -> None:
        if isinstance(event, EpochMetrics):
            with writing(self.path):
                self.file.write(json.dumps(event.to_dict()) + "\n")
                self.file.flush()
        self.emit(event)


@contextlib.contextmanager
def writing(path: Path):
    """An OSError while writing `path` as one OutputError line (a full disk, permissions)."""
    try:
        yield path
    except OSError as e:
        raise OutputError(
            f"cannot write {path}: {e.strerror or e}; free space or choose another --out"
        ) from None


def _new_run_dir(config: Config, info: DatasetInfo) -> Path:
    out = Path(config.run.out).expanduser()
    if config.run.name:
        run_dir = out / config.run.name
        if (run_dir / "model.safetensors").exists():
            raise ConfigError(f"{run_dir} already holds a trained model; choose another --name or remove it")
    else:
        dataset = Path(info.name[len("folder:") :]).name if info.name.startswith("folder:") else info.name
        base = out / f"{config.model.kind}-{dataset}-{time.strftime('%Y%m%d-%H%M%S')}"
        run_dir, n = base, 1
        while run_dir.exists():  # two runs started in the same second
            n += 1
            run_dir = base.with_name(f"{base.name}-{n}")
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise OutputError(
            f"cannot create run directory {run_dir}: {e.strerror}; choose another --out"
        ) from None
    return run_dir


# --- evaluation of a checkpoint ----------------------------------------------------------------------


@dataclass
class EvalReport:
    checkpoint: Path
    dataset: str
    split: str
    classes: list[str]
    result: EvalResult

    def to_dict(self) -> dict:
        return {
            "checkpoint": str(self.checkpoint),
            "dataset": self.dataset,
            "split": self.split,
            "count": self.result.count,
            "accuracy": self.result.accuracy,
            "loss": self.result.loss,
            "per_class_accuracy": dict(zip(self.classes, self.result.per_class_accuracy)),
            "confusion": self.result.confusion,
            "classes": self.classes,
        }


def eval_checkpoint(
    path: str | Path,
    dataset: str | None = None,
    split: str = "test",
    data_dir: str | None = None,
    device: str = "auto",
    batch_size: int = 1024,
) -> EvalReport:
    """Accuracy, loss and confusion of a checkpoint on a split of its own data set (or of `dataset`,
    which must have images of the same shape and the same number of classes). Images are prepared as
    in training, by the checkpoint's own preprocessing, whatever data set they come from."""
    if batch_size <= 0:
        raise ConfigError(f"--batch-size must be a positive whole number, got {batch_size}")
    torch_device = resolve_device(device)
    checkpoint = load_checkpoint(path, torch_device)
    data_cfg = checkpoint.config.data.for_evaluation(dataset, data_dir)
    splits = load_splits(data_cfg)
    info, trained = splits.info, checkpoint.info
    shape, trained_shape = (
        (info.channels, info.height, info.width),
        (trained.channels, trained.height, trained.width),
    )
    if shape != trained_shape or len(info.classes) != len(trained.classes):
        raise CheckpointError(
            f"the checkpoint was trained on {trained.describe()} but {data_cfg.dataset} has "
            f"{info.describe()}; evaluate it on data of the same shape and number of classes"
        )
    result = evaluate(
        checkpoint.model,
        splits.get(split),
        checkpoint.preprocessing.on(torch_device),
        torch_device,
        len(info.classes),
        batch_size,
    )
    return EvalReport(Path(path), data_cfg.dataset, split, info.classes, result)
