"""The training loop. It knows nothing of the terminal or of files: progress goes out as events, and the
run's state as Snapshots that the caller writes.

The training step: AdamW (fused where PyTorch has it), linear warmup then cosine decay per step,
bfloat16 autocast on CUDA, label smoothing. Losses and accuracies are summed on the device and read
back only when an event is sent, so the GPU is not made to wait on every step.

    fit            epochs of `train_epoch`, each followed by `evaluate` (evaluation.py) on the validation
                   split; keeps the best-validation weights; a Snapshot after every epoch and where
                   `stop()` stopped it, and a resume from one (`start=`)
    train_epoch    one pass over the shuffled, augmented training batches, or the rest of one
    Run            what a Snapshot captures and a resumed run restores

The autocast dtype, the optimiser's options and the loss are parameters (`autocast_dtype`,
`optimizer_options`, `criterion`), so benchmarks and model kinds change them without touching this module.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from vitcli.config import TrainConfig
from vitcli.data import Batches, Splits
from vitcli.data.datasets import Split
from vitcli.devices import AUTO, autocast, peak_memory_bytes
from vitcli.errors import TrainingDiverged
from vitcli.evaluation import EvalResult, evaluate
from vitcli.events import EpochMetrics, EpochStart, Listener, Status, StepDone
from vitcli.preprocessing import Preprocessor

# --- optimiser and schedule --------------------------------------------------------------------------


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


# --- training ----------------------------------------------------------------------------------------


@dataclass
class EpochTotals:
    """An epoch's running sums; at its end, or where it was stopped."""

    loss_sum: float = 0.0  # loss x images
    correct: int = 0
    images: int = 0
    seconds: float = 0.0
    steps: int = 0  # steps done: fewer than the epoch's when `stop()` ended it early

    @property
    def loss(self) -> float:
        return self.loss_sum / max(1, self.images)

    @property
    def accuracy(self) -> float:
        return self.correct / max(1, self.images)


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
    step: Step,
    batches: Batches,
    device: torch.device,
    epoch: int,
    emit: Listener,
    done: EpochTotals | None = None,
    stop: Callable[[], bool] = lambda: False,
) -> EpochTotals:
    """One pass over `batches`, or the rest of one after `done`; a StepDone every ~2% of the epoch (the
    only host syncs), TrainingDiverged as soon as the loss is not finite. When `stop()` turns true, the
    step in hand finishes and the pass ends there (with fewer `steps` than the epoch has)."""
    done = done or EpochTotals()
    steps, log_every = len(batches), max(1, len(batches) // 50)
    loss_sum = torch.tensor(done.loss_sum, device=device)
    correct = torch.tensor(done.correct, dtype=torch.int64, device=device)
    seen, start = done.images, time.perf_counter() - done.seconds
    i = done.steps
    for i, (images, labels) in enumerate(batches.epoch(skip=done.steps), start=done.steps + 1):
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
            elapsed = time.perf_counter() - start
            emit(StepDone(epoch, i, steps, mean_loss, correct.item() / seen, seen / elapsed))
        if stop() and i < steps:
            break
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return EpochTotals(loss_sum.item(), int(correct.item()), seen, time.perf_counter() - start, i)


class BestWeights:
    """The weights of the best validation epoch so far: highest accuracy, then lowest loss."""

    def __init__(self, last_epoch: int):
        self.score: tuple[float, float] | None = None
        self.state: dict | None = None
        self.epoch = last_epoch  # with no validation split, the last epoch is the one kept

    def offer(self, model: nn.Module, epoch: int, val: EvalResult | None) -> bool:
        """Keep the model's weights if `val` is the best so far; whether it was."""
        if val is not None and (self.score is None or (val.accuracy, -val.loss) > self.score):
            self.score, self.epoch = (val.accuracy, -val.loss), epoch
            self.state = {k: v.detach().clone() for k, v in model.state_dict().items()}
            return True
        return False

    def restore(self, model: nn.Module, last_epoch: int) -> None:
        if self.state is not None and self.epoch != last_epoch:
            model.load_state_dict(self.state)


@dataclass
class Snapshot:
    """Where a run stands, with everything needed to go on from there exactly as if it had not stopped:
    taken after every epoch, and where a run is stopped. `train_state` writes and reads it."""

    epoch: int  # the epoch in progress, 1-based (epochs + 1 when the run has finished)
    totals: EpochTotals  # that epoch's steps so far (none at its start)
    model: dict[str, Tensor]
    optimizer: dict
    schedule: dict
    batches_rng: Tensor  # the batches' generator as the epoch began: its order and augmentation replay
    torch_rng: Tensor  # the global generator now (dropout)
    history: list[EpochMetrics]
    best_epoch: int
    best_score: tuple[float, float] | None
    best_model: dict[str, Tensor] | None


@dataclass
class FitResult:
    history: list[EpochMetrics]
    best_epoch: int
    seconds: float  # training steps only
    images: int  # training images seen, over all epochs
    peak_memory: int | None
    stopped: bool = False  # stopped by `stop()` before the last epoch ended; the model is as it was then

    @property
    def images_per_s(self) -> float:
        return self.images / max(self.seconds, 1e-9)


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


class Run:
    """The state of `fit` between epochs: what a Snapshot captures and a resumed run restores."""

    def __init__(self, model: nn.Module, step: Step, batches: Batches, epochs: int):
        self.model, self.step, self.batches = model, step, batches
        self.epoch, self.totals = 1, EpochTotals()
        self.epoch_rng = batches.generator.get_state()
        self.history: list[EpochMetrics] = []
        self.best = BestWeights(epochs)

    def snapshot(self) -> Snapshot:
        best = self.best
        return Snapshot(
            self.epoch,
            self.totals,
            {k: v.detach().clone() for k, v in self.model.state_dict().items()},
            self.step.optimizer.state_dict(),
            self.step.schedule.state_dict(),
            self.epoch_rng.clone(),
            torch.get_rng_state(),
            list(self.history),
            best.epoch,
            best.score,
            best.state,
        )

    def restore(self, start: Snapshot) -> None:
        self.model.load_state_dict(start.model)
        self.step.optimizer.load_state_dict(start.optimizer)
        self.step.schedule.load_state_dict(start.schedule)
        self.batches.generator.set_state(start.batches_rng)
        torch.set_rng_state(start.torch_rng)
        self.epoch, self.totals, self.epoch_rng = start.epoch, start.totals, start.batches_rng
        self.history = list(start.history)
        if start.best_score is not None:  # else the last epoch is kept, however many there are now
            self.best.epoch, self.best.score, self.best.state = (
                start.best_epoch,
                start.best_score,
                start.best_model,
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
    start: Snapshot | None = None,
    on_snapshot: Callable[[Snapshot, bool], None] | None = None,
    stop: Callable[[], bool] | None = None,
) -> FitResult:
    """Train `model` on splits.train; after each epoch measure splits.val. At the end the model holds the
    weights of the best validation epoch (the last epoch when there is no validation split).

    `augment`: the augmentation family ("digits", "natural") or None; `param_groups`: optimiser groups
    with an optional "lr_scale" each, instead of the default ones; `criterion`: the loss, instead of
    cross-entropy. `on_snapshot(snapshot, improved)` gets the run's state after every epoch (`improved`:
    its weights are the best so far) and where `stop()` stopped it; `start` resumes from such a snapshot.
    """
    emit, stop = on_event or (lambda event: None), stop or (lambda: False)
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
    run = Run(model, step, batches, cfg.epochs)
    if start is not None:
        run.restore(start)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    # Copied to the device once, not at every epoch's validation (a no-op on the CPU).
    val = Split(splits.val.images.to(device), splits.val.labels.to(device)) if splits.val else None
    classes = len(splits.info.classes)
    model.train()
    while run.epoch <= cfg.epochs:
        emit(EpochStart(run.epoch, cfg.epochs, len(batches)))
        totals = train_epoch(step, batches, device, run.epoch, emit, run.totals, stop)
        if totals.steps < len(batches):  # stop() ended it
            run.totals = totals
            if on_snapshot:
                on_snapshot(run.snapshot(), False)
            break
        measured = (
            evaluate(model, val, preprocess, device, classes, autocast_dtype=autocast_dtype) if val else None
        )
        lr = max(g["lr"] for g in step.optimizer.param_groups)  # the peak group's, with layer decay
        metrics = EpochMetrics(
            run.epoch,
            totals.loss,
            totals.accuracy,
            measured and measured.loss,
            measured and measured.accuracy,
            lr,
            totals.seconds,
            totals.images / totals.seconds,
        )
        run.history.append(metrics)
        emit(metrics)
        improved = run.best.offer(model, run.epoch, measured) or val is None  # no val: the last is kept
        run.epoch, run.totals, run.epoch_rng = run.epoch + 1, EpochTotals(), batches.generator.get_state()
        if on_snapshot:
            on_snapshot(run.snapshot(), improved)
        if stop():
            break
    stopped = run.epoch <= cfg.epochs
    if not stopped:
        run.best.restore(model, cfg.epochs)
    seconds = sum(m.seconds for m in run.history)
    images = len(run.history) * batches.images_per_epoch
    return FitResult(run.history, run.best.epoch, seconds, images, peak_memory_bytes(device), stopped)
