"""The training loop. It knows nothing of the terminal or of files: progress goes out as events, and the
run's state as Snapshots that the caller writes.

The training step: AdamW (`optim`: fused where PyTorch has it, linear warmup then cosine decay per
step), bfloat16 autocast on CUDA, label smoothing (or the soft targets of mixup and cutmix), optional
gradient clipping and a moving average of the weights (`averaging`). Losses and accuracies are summed on
the device and read back only when an event is sent, so the GPU is not made to wait on every step.

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

from vitcli.data import Batches, Splits
from vitcli.data.batches import Augmentation
from vitcli.data.datasets import Split
from vitcli.data.mixing import hard_labels
from vitcli.data.preprocessing import Preprocessor
from vitcli.errors import TrainingDiverged
from vitcli.events import EpochMetrics, EpochStart, Listener, Status, StepDone
from vitcli.runtime.devices import AUTO, autocast, peak_memory_bytes
from vitcli.runtime.distributed import any_rank, current, data_parallel, host_sums, own_draws, stop_here
from vitcli.settings.config import TrainConfig
from vitcli.training.averaging import EMA, RAW, BestWeights, copy_state, moving_average
from vitcli.training.evaluation import evaluate
from vitcli.training.optim import make_optimizer, warmup_cosine
from vitcli.training.small_sets import for_training_set

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
    """The default criterion: cross-entropy of the logits, with label smoothing; `labels` are class
    indices (B,) or soft targets (B, classes) from mixup and cutmix."""
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
    clip_grad: float = 0.0  # the gradients' global norm is clipped to this; 0: not clipped
    ema: Any = None  # averaging.moving_average of the model, updated after every step; None: none
    module: nn.Module | None = None  # the module `model` runs, when that is its torch.compile'd form
    mix: bool = True  # mixup and cutmix in this epoch (off for the last --mix-off-epochs)
    seed: int = 0  # the run's; with several ranks, each rank's dropout draws are seeded from it per step


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
    ranks = current()
    # This rank's sums; rank 0 also carries the steps done before a resume, so that their sum over the
    # ranks is the epoch's.
    loss_sum = torch.tensor(done.loss_sum if ranks.main else 0.0, device=device)
    correct = torch.tensor(done.correct if ranks.main else 0, dtype=torch.int64, device=device)
    seen, start = done.images, time.perf_counter() - done.seconds  # images over every rank
    i = done.steps
    params = [p for group in step.optimizer.param_groups for p in group["params"]]
    for i, (images, labels) in enumerate(batches.epoch(skip=done.steps, mix=step.mix), start=done.steps + 1):
        with autocast(device, step.autocast_dtype), own_draws(step.seed, epoch, i, device, ranks):
            loss, logits = step.criterion(step.model(images), images, labels, step.label_smoothing)
        step.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if step.clip_grad:
            torch.nn.utils.clip_grad_norm_(params, step.clip_grad)
        step.optimizer.step()
        step.schedule.step()
        if step.ema is not None:
            step.ema.update(step.module or step.model)
        loss_sum += loss.detach() * len(labels)
        correct += (logits.argmax(1) == hard_labels(labels)).sum()
        seen += len(labels) * ranks.world
        logged = i % log_every == 0 or i == steps
        if logged:
            mean_loss, accuracy = (total / seen for total in host_sums(loss_sum, correct))
            if not math.isfinite(mean_loss):
                raise TrainingDiverged(
                    f"the loss became {mean_loss} in epoch {epoch}, step {i}; "
                    f"lower --lr (now {step.lr:g}) or raise --warmup"
                )
            elapsed = time.perf_counter() - start
            emit(StepDone(epoch, i, steps, mean_loss, accuracy, seen / elapsed))
        if stop_here(stop, logged, device, ranks) and i < steps:
            break
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    loss_total, correct_total = host_sums(loss_sum, correct)
    return EpochTotals(loss_total, int(correct_total), seen, time.perf_counter() - start, i)


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
    ema: dict[str, Tensor] | None = None  # the moving average of the weights now, with --ema
    best_source: str = RAW  # which weights best_model holds: "raw" or "ema"
    threads: int | None = None  # the CPU threads in use: a resume goes on with as many (bit-identical)

    @property
    def kept(self) -> dict[str, Tensor]:
        """The weights the run would keep if it ended now: the best so far, else (no validation split)
        the last epoch's average or raw weights."""
        if self.best_model is not None:
            return self.best_model
        return self.ema if self.ema is not None else self.model


@dataclass
class FitResult:
    history: list[EpochMetrics]
    best_epoch: int
    seconds: float  # training steps only
    images: int  # training images seen, over all epochs
    peak_memory: int | None
    stopped: bool = False  # stopped by `stop()` before the last epoch ended; the model is as it was then
    weights: str = RAW  # which weights the model holds at the end: "raw" or "ema" (their average)

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
    device: torch.device,
) -> Step:
    """The optimiser, the warmup-cosine schedule over every step of the run, the model as stepped (across
    ranks, and compiled) and its moving average."""
    optimizer = make_optimizer(model, cfg, param_groups, optimizer_options)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, warmup_cosine(round(cfg.warmup * steps), cfg.epochs * steps)
    )
    ema = moving_average(model, cfg.ema) if cfg.ema else None  # of the module itself, not its compiled form
    stepped = data_parallel(model, device)
    if cfg.compile:
        emit(Status("compiling the model (the first steps are slow)"))
        stepped = torch.compile(stepped)
    return Step(
        stepped,
        optimizer,
        schedule,
        cfg.label_smoothing,
        cfg.lr,
        autocast_dtype,
        criterion or cross_entropy,
        clip_grad=cfg.clip_grad,
        ema=ema,
        module=model,
        seed=cfg.seed,
    )


class Run:
    """The state of `fit` between epochs: what a Snapshot captures and a resumed run restores."""

    def __init__(self, model: nn.Module, step: Step, batches: Batches, epochs: int, validated: bool):
        self.model, self.step, self.batches = model, step, batches
        self.epoch, self.totals = 1, EpochTotals()
        self.epoch_rng = batches.generator.get_state()
        self.history: list[EpochMetrics] = []
        # Without a validation split the last epoch is kept: its average when there is one.
        self.best = BestWeights(epochs, EMA if step.ema is not None and not validated else RAW)

    def snapshot(self) -> Snapshot:
        best, ema = self.best, self.step.ema
        return Snapshot(
            self.epoch,
            self.totals,
            copy_state(self.model),
            self.step.optimizer.state_dict(),
            self.step.schedule.state_dict(),
            self.epoch_rng.clone(),
            torch.get_rng_state(),
            list(self.history),
            best.epoch,
            best.score,
            best.state,
            copy_state(ema.module) if ema is not None else None,
            best.source,
            torch.get_num_threads(),
        )

    def end_epoch(self, totals: EpochTotals, measured, averaged, emit: Listener) -> bool:
        """Record the finished epoch and its validation (of the weights, and of their average); whether
        the kept weights changed. The next epoch starts here."""
        lr = max(g["lr"] for g in self.step.optimizer.param_groups)  # the peak group's, with layer decay
        metrics = EpochMetrics(
            self.epoch,
            totals.loss,
            totals.accuracy,
            measured and measured.loss,
            measured and measured.accuracy,
            lr,
            totals.seconds,
            totals.images / totals.seconds,
            averaged and averaged.loss,
            averaged and averaged.accuracy,
        )
        self.history.append(metrics)
        emit(metrics)
        ema = self.step.ema
        candidates = [(RAW, self.model, measured)] + ([(EMA, ema.module, averaged)] if ema else [])
        improved = self.best.offer(self.epoch, candidates)
        self.epoch, self.totals, self.epoch_rng = (
            self.epoch + 1,
            EpochTotals(),
            self.batches.generator.get_state(),
        )
        return improved

    def restore(self, start: Snapshot) -> None:
        self.model.load_state_dict(start.model)
        self.step.optimizer.load_state_dict(start.optimizer)
        self.step.schedule.load_state_dict(start.schedule)
        if self.step.ema is not None:
            self.step.ema.module.load_state_dict(start.ema)
        self.batches.generator.set_state(start.batches_rng)
        torch.set_rng_state(start.torch_rng)
        self.epoch, self.totals, self.epoch_rng = start.epoch, start.totals, start.batches_rng
        self.history = list(start.history)
        if start.best_score is not None:  # else the last epoch is kept, however many there are now
            best = self.best
            best.epoch, best.score, best.state, best.source = (
                start.best_epoch,
                start.best_score,
                start.best_model,
                start.best_source,
            )


def _validate(run: Run, val: Split | None, preprocess, device, classes, autocast_dtype):
    """The epoch's validation of the raw weights and of their average: (raw, ema) results, None for
    what there is not."""
    if val is None:
        return None, None
    options = {"autocast_dtype": autocast_dtype, "shard": current().shard}
    measure = lambda m: evaluate(m, val, preprocess, device, classes, **options)
    ema = run.step.ema
    return measure(run.model), (measure(ema.module) if ema is not None else None)


def fit(
    model: nn.Module,
    splits: Splits,
    cfg: TrainConfig,
    device: torch.device,
    preprocess: Preprocessor,
    *,
    augment: Augmentation | None = None,
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
    weights of the best validation epoch (the last epoch when there is no validation split), or their
    moving average (`cfg.ema`) where that validated better.

    `augment`: how training batches are augmented (None: not at all); `param_groups`: optimiser groups
    with an optional "lr_scale" each, instead of the default ones; `criterion`: the loss, instead of
    cross-entropy. `on_snapshot(snapshot, improved)` gets the run's state after every epoch (`improved`:
    its kept weights changed) and where `stop()` stopped it; `start` resumes from such a snapshot.
    """
    emit, stop = on_event or (lambda event: None), stop or (lambda: False)
    classes, ranks = len(splits.info.classes), current()
    # train_run chooses an unset batch before config.toml is written; this is for callers of fit itself.
    cfg, _ = for_training_set(cfg, len(splits.train), ranks.world)
    batches = Batches(
        splits.train,
        cfg.batch_size,
        device,
        preprocess,
        shuffle=True,
        augment=augment,
        drop_last=True,
        seed=cfg.seed,
        num_classes=classes,
        shard=ranks.shard,
    )
    step = _step(
        model, cfg, len(batches), param_groups, optimizer_options, autocast_dtype, criterion, emit, device
    )
    run = Run(model, step, batches, cfg.epochs, validated=splits.val is not None)
    if start is not None:
        run.restore(start)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    # Copied to the device once, not at every epoch's validation (a no-op on the CPU).
    val = Split(splits.val.images.to(device), splits.val.labels.to(device)) if splits.val else None
    mix_until = cfg.epochs - (augment.mix_off_epochs if augment else 0)  # the last epoch with mixing
    model.train()
    while run.epoch <= cfg.epochs:
        emit(EpochStart(run.epoch, cfg.epochs, len(batches)))
        step.mix = run.epoch <= mix_until
        totals = train_epoch(step, batches, device, run.epoch, emit, run.totals, stop)
        if totals.steps < len(batches):  # stop() ended it
            run.totals = totals
            if on_snapshot:
                on_snapshot(run.snapshot(), False)
            break
        measured, averaged = _validate(run, val, preprocess, device, classes, autocast_dtype)
        improved = run.end_epoch(totals, measured, averaged, emit) or val is None  # no val: the last is kept
        if on_snapshot:
            on_snapshot(run.snapshot(), improved)
        if any_rank(stop(), device):
            break
    stopped = run.epoch <= cfg.epochs
    if not stopped:
        if val is None and step.ema is not None:
            model.load_state_dict(step.ema.module.state_dict())
        run.best.restore(model)
    seconds = sum(m.seconds for m in run.history)
    images = len(run.history) * batches.images_per_epoch
    return FitResult(
        run.history, run.best.epoch, seconds, images, peak_memory_bytes(device), stopped, run.best.source
    )
