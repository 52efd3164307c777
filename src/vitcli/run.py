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

import dataclasses
import json
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch

from vitcli.checkpoint import load_checkpoint, save_checkpoint
from vitcli.config import Config
from vitcli.data import load_splits
from vitcli.data.datasets import DatasetInfo
from vitcli.engine import EpochMetrics, EvalResult, Listener, Status, evaluate, fit, resolve_device
from vitcli.errors import CheckpointError, ConfigError
from vitcli.files import atomic_write_text
from vitcli.models import build_model, count_parameters, num_tokens


@dataclass
class RunResult:
    run_dir: Path
    config: Config
    info: DatasetInfo
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
    adaptation: list[dict[str, str]] = field(default_factory=list)  # finetune: {part, change} rows

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
    """Train the model `config` describes (for `vitcli finetune`, a timm ViT with pretrained weights
    adapted to the data) and write its run directory. Every check of the input (config, data, model
    shape, weights) happens before the run directory is made."""
    emit = on_event or (lambda event: None)
    started = time.perf_counter()
    config.validate()
    device = resolve_device(config.train.device)
    emit(Status(f"loading {config.data.dataset}"))
    splits = load_splits(config.data)
    # The seed fixes the initial weights and, through the batches' generator, order and augmentation.
    torch.manual_seed(config.train.seed)
    param_groups, adaptation = None, []
    if config.finetune is None:
        model = build_model(config.model, splits.info)
    else:
        from vitcli.finetune import setup  # imports timm, which train does not need

        prepared = setup(config, splits.info, emit)
        config, model, param_groups, adaptation = prepared.config, prepared.model, prepared.param_groups, prepared.adaptation
        splits = dataclasses.replace(splits, info=prepared.info)  # the weights' normalisation
    model = model.to(device)
    run_dir = _new_run_dir(config, splits.info)

    atomic_write_text(run_dir / "config.toml", config.to_toml())
    metrics_file = (run_dir / "metrics.jsonl").open("w", encoding="utf-8")

    def record(event) -> None:
        if isinstance(event, EpochMetrics):
            metrics_file.write(json.dumps(event.to_dict()) + "\n")  # one whole line per write
            metrics_file.flush()
        emit(event)

    with metrics_file:
        fitted = fit(model, splits, config.train, device, augment=config.data.augment, on_event=record,
                     param_groups=param_groups)
    emit(Status("evaluating the best epoch on the test set"))
    result = RunResult(
        run_dir=run_dir,
        config=config,
        info=splits.info,
        device=str(device),
        parameters=count_parameters(model),
        tokens=num_tokens(model),
        history=fitted.history,
        best_epoch=fitted.best_epoch,
        test=evaluate(model, splits.test, splits.info, device),
        train_seconds=fitted.seconds,
        total_seconds=0.0,
        images_per_s=fitted.images_per_s,
        peak_memory=fitted.peak_memory,
        adaptation=adaptation,
    )
    save_checkpoint(run_dir / "model.safetensors", model, config, splits.info, result.metrics(), adaptation)
    result.total_seconds = time.perf_counter() - started
    return result


def _new_run_dir(config: Config, info: DatasetInfo) -> Path:
    out = Path(config.run.out).expanduser()
    if config.run.name:
        run_dir = out / config.run.name
        if (run_dir / "model.safetensors").exists():
            raise ConfigError(f"{run_dir} already holds a trained model; choose another --name or remove it")
    else:
        dataset = Path(info.name[len("folder:"):]).name if info.name.startswith("folder:") else info.name
        base = out / f"{config.model.name}-{dataset}-{time.strftime('%Y%m%d-%H%M%S')}"
        run_dir, n = base, 1
        while run_dir.exists():  # two runs started in the same second
            n += 1
            run_dir = base.with_name(f"{base.name}-{n}")
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise ConfigError(f"cannot create run directory {run_dir}: {e.strerror}; choose another --out") from None
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
    which must have images of the same shape and the same number of classes)."""
    if split not in ("train", "val", "test"):
        raise ConfigError(f"--split must be train, val or test, got {split!r}")
    if batch_size <= 0:
        raise ConfigError(f"--batch-size must be a positive whole number, got {batch_size}")
    torch_device = resolve_device(device)
    checkpoint = load_checkpoint(path, torch_device)
    trained = checkpoint.config.data
    data_cfg = trained.for_evaluation(dataset, data_dir)
    splits = load_splits(data_cfg)
    info, trained_info = splits.info, checkpoint.info
    shape, trained_shape = (info.channels, info.height, info.width), (trained_info.channels, trained_info.height, trained_info.width)
    if shape != trained_shape or len(info.classes) != len(trained_info.classes):
        raise CheckpointError(
            f"the checkpoint was trained on {_describe(trained_info)} but {data_cfg.dataset} has {_describe(info)}; "
            "evaluate it on data of the same shape and number of classes"
        )
    # Preprocess exactly as in training: the checkpoint's normalisation, not the new data set's.
    info = trained_info if data_cfg.dataset == trained.dataset else DatasetInfo(
        **{**info.to_dict(), "mean": trained_info.mean, "std": trained_info.std}
    )
    result = evaluate(checkpoint.model, splits.get(split), info, torch_device, batch_size)
    return EvalReport(Path(path), data_cfg.dataset, split, info.classes, result)


def _describe(info: DatasetInfo) -> str:
    return f"{info.height}x{info.width}x{info.channels} images with {len(info.classes)} classes"
