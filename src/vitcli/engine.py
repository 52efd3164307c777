"""Training and evaluation loops. They know nothing of the terminal: progress goes out as events.

The training step: AdamW (fused where PyTorch has it), linear warmup then cosine decay per step,
bfloat16 autocast on CUDA, label smoothing. Losses and accuracies are summed on the device and read
back only when an event is sent, so the GPU is not made to wait on every step.

    fit            epochs of `train_epoch`, each followed by `evaluate` on the validation split; keeps
                   the best-validation weights
    train_epoch    one pass over the shuffled, augmented training batches
    evaluate       loss, accuracy and confusion matrix on a split

The autocast dtype and the optimiser's options are parameters (`autocast_dtype`, `optimizer_options`),
so benchmarks and experiments change them without touching this module.
"""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from vitcli.config import TrainConfig
from vitcli.data import Batches, Splits
from vitcli.data.datasets import Split
from vitcli.errors import ConfigError, TrainingDiverged
from vitcli.events import EpochMetrics, EpochStart, Event, Listener, Status, StepDone
from vitcli.preprocessing import Preprocessor

AUTO = "auto"  # autocast_dtype: bfloat16 on CUDA, none (float32) on the CPU

__all__ = [
    "AUTO",
    "EpochMetrics",
    "EpochStart",
    "EvalResult",
    "Event",
    "FitResult",
    "Listener",
    "Status",
    "StepDone",
    "evaluate",
    "fit",
    "make_optimizer",
    "resolve_device",
    "train_epoch",
    "warmup_cosine",
]


# --- devices, precision, optimiser -------------------------------------------------------------------


def resolve_device(name: str) -> torch.device:
    """'auto' is the GPU when PyTorch sees one, else the CPU."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise ConfigError(f"--device {name}: PyTorch sees no CUDA GPU here; use --device cpu (or auto)")
        device = torch.device(name)
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise ConfigError(f"--device {name}: there are only {torch.cuda.device_count()} GPUs (cuda:0..)")
        return device
    return torch.device(name)


def autocast(device: torch.device, dtype: torch.dtype | str | None = AUTO):
    """Mixed precision for a forward pass. AUTO: bfloat16 on CUDA (as fast as float16 on current GPUs,
    and no loss scaling), float32 on the CPU, where bfloat16 is slower on most processors."""
    if dtype == AUTO:
        dtype = torch.bfloat16 if device.type == "cuda" else None
    enabled = dtype not in (None, torch.float32)  # float32 is no autocast at all (and the CPU's warns)
    return torch.autocast(device.type, dtype=dtype if enabled else None, enabled=enabled)


def make_optimizer(
    model: nn.Module,
    cfg: TrainConfig,
    param_groups: list[dict] | None = None,
    options: dict[str, Any] | None = None,
) -> torch.optim.Optimizer:
    """AdamW over the trainable parameters; `param_groups` (e.g. timm's layer-decay groups) replace the
    default two groups, each at cfg.lr times its "lr_scale", which the schedule then scales as a whole.
    `options` go to AdamW as they are (e.g. {"foreach": True}); by default it is fused where it can be."""
    if param_groups is None:
        # Weight decay on weight matrices and conv kernels only: decaying biases, norms, the [CLS] token
        # or the positional embedding pulls them towards zero for no gain (as in timm and nanoGPT).
        decay, no_decay = [], []
        for name, p in model.named_parameters():
            if not p.requires_grad:
                continue
            plain = p.ndim < 2 or name.endswith(("pos_embed", "cls_token"))
            (no_decay if plain else decay).append(p)
        param_groups = [
            {"params": decay, "weight_decay": cfg.weight_decay},
            {"params": no_decay, "weight_decay": 0.0},
        ]
    # LambdaLR multiplies each group's own starting lr, so the per-group scale survives the schedule.
    groups = [{**g, "lr": cfg.lr * g.get("lr_scale", 1.0)} for g in param_groups]
    if options is not None:
        return torch.optim.AdamW(groups, lr=cfg.lr, **options)
    try:
        return torch.optim.AdamW(groups, lr=cfg.lr, fused=True)
    except (RuntimeError, TypeError):  # older PyTorch: no fused AdamW on this device
        return torch.optim.AdamW(groups, lr=cfg.lr, foreach=True)


def warmup_cosine(warmup_steps: int, total_steps: int) -> Callable[[int], float]:
    """Learning-rate factor for a step: linear from 1/warmup to 1, then a cosine down to 0."""

    def factor(step: int) -> float:
        if step < warmup_steps:
            return (step + 1) / warmup_steps
        progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
        return 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))

    return factor


def peak_memory_bytes(device: torch.device) -> int | None:
    """Peak GPU memory allocated by PyTorch; on the CPU, the process's peak resident memory."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device)
    try:
        import resource
    except ImportError:  # Windows
        return None
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak if sys.platform == "darwin" else peak * 1024  # bytes on macOS, kilobytes on Linux


# --- evaluation --------------------------------------------------------------------------------------


@dataclass
class EvalResult:
    loss: float
    accuracy: float
    count: int
    confusion: list[list[int]] = field(repr=False)  # [true class][predicted class]

    @property
    def per_class_accuracy(self) -> list[float | None]:
        return [row[i] / sum(row) if sum(row) else None for i, row in enumerate(self.confusion)]


@torch.inference_mode()
def evaluate(
    model: nn.Module,
    split: Split,
    preprocess: Preprocessor,
    device: torch.device,
    num_classes: int,
    batch_size: int = 1024,
    autocast_dtype: torch.dtype | str | None = AUTO,
) -> EvalResult:
    """Loss (without label smoothing), accuracy and confusion matrix of `model` on `split`."""
    was_training = model.training
    model.eval()
    confusion = torch.zeros(num_classes * num_classes, dtype=torch.int64, device=device)
    loss_sum = torch.zeros((), device=device)
    for images, labels in Batches(split, batch_size, device, preprocess):
        with autocast(device, autocast_dtype):
            logits = model(images)
        loss_sum += F.cross_entropy(logits.float(), labels, reduction="sum")
        confusion += torch.bincount(
            labels * num_classes + logits.argmax(1), minlength=num_classes * num_classes
        )
    model.train(was_training)
    confusion = confusion.view(num_classes, num_classes).cpu()
    count = len(split)
    return EvalResult(
        loss=loss_sum.item() / max(1, count),
        accuracy=confusion.diag().sum().item() / max(1, count),
        count=count,
        confusion=confusion.tolist(),
    )


# --- training ----------------------------------------------------------------------------------------


@dataclass
class EpochTotals:
    loss: float  # mean over the epoch's images
    accuracy: float
    images: int
    seconds: float


# The training loss: (model output, inputs, labels, label smoothing) -> (loss, logits scored for accuracy).
# A model kind whose loss needs more than its logits (a distillation token with a teacher that sees the
# same augmented inputs) brings its own through `Built.criterion`; the engine stays the same.
Criterion = Callable[[Any, Tensor, Tensor, float], tuple[Tensor, Tensor]]


def cross_entropy(outputs: Tensor, inputs: Tensor, labels: Tensor, smoothing: float) -> tuple[Tensor, Tensor]:
    """The default criterion: cross-entropy of the logits, with label smoothing."""
    return F.cross_entropy(outputs, labels, label_smoothing=smoothing), outputs


@dataclass
class Step:
    """What one training step needs besides the batch."""

    model: Callable  # the model, or its torch.compile'd form
    optimizer: torch.optim.Optimizer
    schedule: torch.optim.lr_scheduler.LRScheduler
    label_smoothing: float
    lr: float  # the peak learning rate, for the message when the loss diverges
    autocast_dtype: torch.dtype | str | None = AUTO
    criterion: Criterion = cross_entropy


def train_epoch(
    step: Step, batches: Batches, device: torch.device, epoch: int, emit: Listener
) -> EpochTotals:
    """One pass over `batches`; a StepDone every ~2% of the epoch (the only host syncs), and
    TrainingDiverged as soon as the loss is not finite."""
    steps = len(batches)
    log_every = max(1, steps // 50)
    loss_sum = torch.zeros((), device=device)
    correct = torch.zeros((), dtype=torch.int64, device=device)
    seen = 0
    start = time.perf_counter()
    for i, (images, labels) in enumerate(batches, start=1):
        with autocast(device, step.autocast_dtype):
            loss, logits = step.criterion(step.model(images), images, labels, step.label_smoothing)
        step.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        step.optimizer.step()
        step.schedule.step()
        loss_sum += loss.detach() * len(labels)
        correct += (logits.argmax(1) == labels).sum()
        seen += len(labels)
        if i % log_every == 0 or i == steps:
            mean_loss = loss_sum.item() / seen
            if not math.isfinite(mean_loss):
                raise TrainingDiverged(
                    f"the loss became {mean_loss} in epoch {epoch}, step {i}; "
                    f"lower --lr (now {step.lr:g}) or raise --warmup"
                )
            emit(
                StepDone(
                    epoch, i, steps, mean_loss, correct.item() / seen, seen / (time.perf_counter() - start)
                )
            )
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return EpochTotals(loss_sum.item() / seen, correct.item() / seen, seen, time.perf_counter() - start)


class BestWeights:
    """The weights of the best validation epoch so far: highest accuracy, then lowest loss."""

    def __init__(self, last_epoch: int):
        self.score: tuple[float, float] | None = None
        self.state: dict | None = None
        self.epoch = last_epoch  # with no validation split, the last epoch is the one kept

    def offer(self, model: nn.Module, epoch: int, val: EvalResult | None) -> None:
        if val is not None and (self.score is None or (val.accuracy, -val.loss) > self.score):
            self.score, self.epoch = (val.accuracy, -val.loss), epoch
            self.state = {k: v.detach().clone() for k, v in model.state_dict().items()}

    def restore(self, model: nn.Module, last_epoch: int) -> None:
        if self.state is not None and self.epoch != last_epoch:
            model.load_state_dict(self.state)


@dataclass
class FitResult:
    history: list[EpochMetrics]
    best_epoch: int
    seconds: float  # training steps only
    images: int  # training images seen, over all epochs
    peak_memory: int | None

    @property
    def images_per_s(self) -> float:
        return self.images / self.seconds


def _step(
    model,
    cfg: TrainConfig,
    steps: int,
    param_groups,
    optimizer_options,
    autocast_dtype,
    criterion,
    emit: Listener,
) -> Step:
    """The optimiser, the warmup-cosine schedule over every step of the run, and the model as stepped."""
    optimizer = make_optimizer(model, cfg, param_groups, optimizer_options)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, warmup_cosine(round(cfg.warmup * steps), cfg.epochs * steps)
    )
    if cfg.compile:
        emit(Status("compiling the model (the first steps are slow)"))
        model = torch.compile(model)
    return Step(
        model, optimizer, schedule, cfg.label_smoothing, cfg.lr, autocast_dtype, criterion or cross_entropy
    )


def fit(
    model: nn.Module,
    splits: Splits,
    cfg: TrainConfig,
    device: torch.device,
    preprocess: Preprocessor,
    *,
    augment: str | None = None,
    param_groups: list[dict] | None = None,
    on_event: Listener | None = None,
    autocast_dtype: torch.dtype | str | None = AUTO,
    optimizer_options: dict[str, Any] | None = None,
    criterion: Criterion | None = None,
) -> FitResult:
    """Train `model` on splits.train; after each epoch measure splits.val. At the end the model holds the
    weights of the best validation epoch (the last epoch when there is no validation split).
    `augment`: the augmentation family ("digits", "natural") or None; `param_groups`: optimiser groups
    with an optional "lr_scale" each, instead of the default ones; `criterion`: the loss, instead of
    cross-entropy."""
    emit = on_event or (lambda event: None)
    batches = Batches(
        splits.train,
        cfg.batch_size,
        device,
        preprocess,
        shuffle=True,
        augment=augment,
        drop_last=True,
        seed=cfg.seed,
    )
    step = _step(model, cfg, len(batches), param_groups, optimizer_options, autocast_dtype, criterion, emit)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    # Copied to the device once, not at every epoch's validation (a no-op on the CPU).
    val = Split(splits.val.images.to(device), splits.val.labels.to(device)) if splits.val else None
    history: list[EpochMetrics] = []
    images = 0
    best = BestWeights(cfg.epochs)
    model.train()
    for epoch in range(1, cfg.epochs + 1):
        emit(EpochStart(epoch, cfg.epochs, len(batches)))
        totals = train_epoch(step, batches, device, epoch, emit)
        images += totals.images
        measured = (
            evaluate(model, val, preprocess, device, len(splits.info.classes), autocast_dtype=autocast_dtype)
            if val is not None
            else None
        )
        metrics = EpochMetrics(
            epoch=epoch,
            train_loss=totals.loss,
            train_accuracy=totals.accuracy,
            val_loss=measured.loss if measured else None,
            val_accuracy=measured.accuracy if measured else None,
            lr=max(g["lr"] for g in step.optimizer.param_groups),  # the peak group's, with layer decay
            seconds=totals.seconds,
            images_per_s=totals.images / totals.seconds,
        )
        history.append(metrics)
        emit(metrics)
        best.offer(model, epoch, measured)
    best.restore(model, cfg.epochs)
    return FitResult(history, best.epoch, sum(m.seconds for m in history), images, peak_memory_bytes(device))
