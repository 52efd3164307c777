"""Training and evaluation loops. They know nothing of the terminal: progress goes out as events.

The training step: AdamW (fused where PyTorch has it), linear warmup then cosine decay per step,
bfloat16 autocast on CUDA, label smoothing. Losses and accuracies are summed on the device and read
back only when an event is sent, so the GPU is not made to wait on every step.
"""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from vitcli.config import TrainConfig
from vitcli.data import Batches, Splits
from vitcli.data.datasets import DatasetInfo, Split
from vitcli.errors import ConfigError, VitcliError


# --- events ------------------------------------------------------------------------------------------

@dataclass
class Status:
    message: str


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

    def to_dict(self) -> dict:
        return asdict(self)


Event = Status | EpochStart | StepDone | EpochMetrics
Listener = Callable[[Event], None]


class TrainingDiverged(VitcliError):
    pass


# --- devices and optimiser ---------------------------------------------------------------------------

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


def make_optimizer(
    model: nn.Module, cfg: TrainConfig, device: torch.device, param_groups: list[dict] | None = None
) -> torch.optim.Optimizer:
    """AdamW over the trainable parameters; `param_groups` (e.g. timm's layer-decay groups) replace the
    default two groups, each at cfg.lr times its "lr_scale", which the schedule then scales as a whole."""
    if param_groups is None:
        # Weight decay on weight matrices and conv kernels only: decaying biases, norms, the [CLS] token
        # or the positional embedding pulls them towards zero for no gain (as in timm and nanoGPT).
        decay, no_decay = [], []
        for name, p in model.named_parameters():
            if not p.requires_grad:
                continue
            plain = p.ndim < 2 or name.endswith(("pos_embed", "cls_token"))
            (no_decay if plain else decay).append(p)
        param_groups = [{"params": decay, "weight_decay": cfg.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    # LambdaLR multiplies each group's own starting lr, so the per-group scale survives the schedule.
    groups = [{**g, "lr": cfg.lr * g.get("lr_scale", 1.0)} for g in param_groups]
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


def autocast(device: torch.device):
    # bfloat16 on CUDA: as fast as float16 on current GPUs and needs no loss scaling. The CPU stays in
    # float32, where bfloat16 is slower on most processors.
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda")


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
def evaluate(model: nn.Module, split: Split, info: DatasetInfo, device: torch.device, batch_size: int = 1024) -> EvalResult:
    """Loss (without label smoothing), accuracy and confusion matrix of `model` on `split`."""
    was_training = model.training
    model.eval()
    classes = len(info.classes)
    confusion = torch.zeros(classes * classes, dtype=torch.int64, device=device)
    loss_sum = torch.zeros((), device=device)
    for images, labels in Batches(split, info, batch_size, device):
        with autocast(device):
            logits = model(images)
        loss_sum += F.cross_entropy(logits.float(), labels, reduction="sum")
        confusion += torch.bincount(labels * classes + logits.argmax(1), minlength=classes * classes)
    model.train(was_training)
    confusion = confusion.view(classes, classes).cpu()
    count = len(split)
    return EvalResult(
        loss=loss_sum.item() / max(1, count),
        accuracy=confusion.diag().sum().item() / max(1, count),
        count=count,
        confusion=confusion.tolist(),
    )


# --- training ----------------------------------------------------------------------------------------

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


def fit(
    model: nn.Module,
    splits: Splits,
    cfg: TrainConfig,
    device: torch.device,
    augment: bool = True,
    on_event: Listener | None = None,
    param_groups: list[dict] | None = None,
) -> FitResult:
    """Train `model` on splits.train; after each epoch measure splits.val. At the end the model holds the
    weights of the best validation epoch (the last epoch when there is no validation split).
    `param_groups`: optimiser groups with an optional "lr_scale" each, instead of the default ones."""
    emit = on_event or (lambda event: None)
    train_batches = Batches(
        splits.train, splits.info, cfg.batch_size, device,
        shuffle=True, augment=augment, drop_last=True, seed=cfg.seed,
    )
    steps = len(train_batches)
    optimizer = make_optimizer(model, cfg, device, param_groups)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, warmup_cosine(round(cfg.warmup * steps), cfg.epochs * steps)
    )
    step_fn = model
    if cfg.compile:
        emit(Status("compiling the model (the first steps are slow)"))
        step_fn = torch.compile(model)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)

    log_every = max(1, steps // 50)
    history: list[EpochMetrics] = []
    best: tuple[float, float] | None = None
    best_state, best_epoch = None, cfg.epochs
    train_seconds, train_images = 0.0, 0
    # Copied to the device once, not at every epoch's validation (a no-op on the CPU).
    val_split = Split(splits.val.images.to(device), splits.val.labels.to(device)) if splits.val is not None else None
    model.train()
    for epoch in range(1, cfg.epochs + 1):
        emit(EpochStart(epoch, cfg.epochs, steps))
        loss_sum = torch.zeros((), device=device)
        correct = torch.zeros((), dtype=torch.int64, device=device)
        seen = 0
        start = time.perf_counter()
        for step, (images, labels) in enumerate(train_batches, start=1):
            with autocast(device):
                logits = step_fn(images)
                loss = F.cross_entropy(logits, labels, label_smoothing=cfg.label_smoothing)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            schedule.step()
            loss_sum += loss.detach() * len(labels)
            correct += (logits.argmax(1) == labels).sum()
            seen += len(labels)
            if step % log_every == 0 or step == steps:
                mean_loss = loss_sum.item() / seen  # the only host sync, every ~2% of an epoch
                if not math.isfinite(mean_loss):
                    raise TrainingDiverged(
                        f"the loss became {mean_loss} in epoch {epoch}, step {step}; "
                        f"lower --lr (now {cfg.lr:g}) or raise --warmup"
                    )
                emit(StepDone(epoch, step, steps, mean_loss, correct.item() / seen,
                              seen / (time.perf_counter() - start)))
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        seconds = time.perf_counter() - start
        train_seconds += seconds
        train_images += seen
        val = evaluate(model, val_split, splits.info, device) if val_split is not None and len(val_split) else None
        metrics = EpochMetrics(
            epoch=epoch,
            train_loss=loss_sum.item() / seen,
            train_accuracy=correct.item() / seen,
            val_loss=val.loss if val else None,
            val_accuracy=val.accuracy if val else None,
            lr=max(g["lr"] for g in optimizer.param_groups),  # the peak group's, with layer decay
            seconds=seconds,
            images_per_s=seen / seconds,
        )
        history.append(metrics)
        emit(metrics)
        if val is not None and (best is None or (val.accuracy, -val.loss) > best):
            best, best_epoch = (val.accuracy, -val.loss), epoch
            best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
    if best_state is not None and best_epoch != cfg.epochs:
        model.load_state_dict(best_state)
    return FitResult(history, best_epoch, train_seconds, train_images, peak_memory_bytes(device))

