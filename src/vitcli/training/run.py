"""A training run from a Config to a run directory.

These are the Python entry points the CLI calls (`vitcli.lab.evaluate` scores a finished checkpoint):

    result = train_run(Config(), on_event=print)

    result = resume_run("runs/vit-mnist-...")        # after Ctrl-C, kill -9 or a full disk

A run directory's files are in `run_dir`; what survives what is in README.md.
"""

from __future__ import annotations

import contextlib
import dataclasses
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from vitcli.data import load_splits
from vitcli.data.batches import Augmentation
from vitcli.data.datasets import DatasetInfo
from vitcli.data.preprocessing import Preprocessing
from vitcli.errors import OutOfMemory
from vitcli.events import EpochMetrics, Listener, Status, StepDone
from vitcli.models import count_parameters, num_tokens
from vitcli.models.build import build_model
from vitcli.models.built import Built
from vitcli.models.conv_tokenizer import resolve_conv
from vitcli.models.distillation import TeacherCost
from vitcli.models.pretrained import Adaptation
from vitcli.runtime.devices import precision_dtype, resolve_device, resolve_precision
from vitcli.runtime.distributed import (
    any_rank,
    current,
    local_main_first,
    lost_ranks,
    on_main,
    process_group,
    share,
)
from vitcli.runtime.files import atomic_write_text, writing
from vitcli.runtime.interrupt import GracefulStop
from vitcli.runtime.launch import AFTER_LOSS, leave_note
from vitcli.runtime.lock import DirectoryLock
from vitcli.runtime.ranks import check_batch, launched
from vitcli.runtime.threads import Threads
from vitcli.settings.config import Config
from vitcli.settings.specs import ModelSpec
from vitcli.training import provenance
from vitcli.training.checkpoint import save_checkpoint
from vitcli.training.engine import Snapshot, fit
from vitcli.training.evaluation import EvalResult, evaluate
from vitcli.training.resume import resume_point
from vitcli.training.run_dir import (
    CONFIG,
    METRICS,
    MODEL,
    MetricsLog,
    SnapshotWriter,
    clear,
    new_run_dir,
    remove_temporaries,
)
from vitcli.training.small_sets import for_training_set
from vitcli.training.snapshots import AttentionSnapshots, check_snapshots
from vitcli.training.teacher import with_teacher
from vitcli.training.tensorboard_log import TENSORBOARD, TensorBoardLog, check_tensorboard
from vitcli.training.transfer import Transfer, apply_init


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
    transfer: Transfer | None = None  # --init: the checkpoint it started from and what was changed
    weights: str = "raw"  # the kept weights: "raw", or "ema" when their moving average validated better
    teacher: TeacherCost | None = None  # a distilled ViT: its teacher and the time spent in it
    capped: dict[str, tuple[int, int]] = field(default_factory=dict)  # --subset: split -> (evaluated, of)
    threads: Threads | None = None  # the CPU threads it trained on, and how they followed the load
    precision: str = "fp32"  # --precision as resolved: "fp32" or "bf16"

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
            "weights": self.weights,
            "test_count": self.test.count,
            # Whatever the test set's size, so that readers need not check one (training/confidence.py).
            "test_accuracy_interval": list(self.test.interval) if self.test.interval else None,
            "precision": self.precision,
            **({"threads": self.threads.counts} if self.threads else {}),
            **({"capped": self.capped} if self.capped else {}),
            **({"teacher": dataclasses.asdict(self.teacher)} if self.teacher else {}),
        }


def train_run(
    config: Config, on_event: Listener | None = None, *, exact_name: bool = True, overwrite: bool = False
) -> RunResult:
    """Train the model `config` describes and write its run directory. Every check of the input
    (settings, data, model shape, weights) happens before the run directory is made. A run directory that
    holds a run is refused unless `overwrite`, or, when the name is not `exact_name` (it came with a
    config file), another name is taken."""
    emit = _main_only(on_event)
    started = time.perf_counter()
    config.validate()
    if config.train.tensorboard:  # before anything is loaded or made
        check_tensorboard()
    for note in config.notes:
        emit(Status(note))
    threads = _threads(config.train.threads, emit)
    with process_group(resolve_device(config.train.device)) as device:
        splits, built = _prepare(config, emit)
        check_snapshots(config.train.snapshot_attention, built.module, splits.val)
        train, chosen = for_training_set(config.train, len(splits.train), current().world)
        # What the data decided is written into config.toml as decided, as a small set's batch is: the
        # stages --conv-layers 0 chose too, so that config.toml and the checkpoint hold one model and a
        # resume rebuilds it, whatever a later vitcli's rule would choose.
        config = dataclasses.replace(config, model=resolve_conv(config.model, splits.info), train=train)
        if chosen:
            emit(Status(chosen))
        size, images = config.train.batch_size, len(splits.train)
        check_batch(size, current(), images)
        if size > images:
            emit(Status(f"--batch-size {size} is more than the {images} training images: one step per epoch"))
        made = on_main(lambda: new_run_dir(config, splits.info, exact_name=exact_name, overwrite=overwrite))
        return _train(config, splits, built, device, share(made), emit, started, threads)


def resume_run(
    run_dir: str | Path, overrides: dict[str, dict[str, Any]] | None = None, on_event: Listener | None = None
) -> RunResult:
    """Go on with the run in `run_dir` from its last state (the end of its last finished epoch, or where
    Ctrl-C stopped it), exactly as if it had not stopped. `overrides` may change only what does not
    change the run (`resume.MAY_CHANGE`: more --epochs, --device, --threads, --compile, --data-dir).
    Under torchrun the number of processes may differ from the run's start: the global batch is the same."""
    emit = _main_only(on_event)
    started = time.perf_counter()
    run_dir = Path(run_dir)
    config, snapshot = resume_point(run_dir, overrides or {})
    if config.train.tensorboard:
        check_tensorboard()
    started -= sum(m.seconds for m in snapshot.history) + snapshot.totals.seconds  # the training done before
    # The threads it had when it stopped, so that it goes on bit-identical; then they follow the load again.
    threads = _threads(config.train.threads, emit, snapshot.threads)
    with process_group(resolve_device(config.train.device)) as device:
        splits, built = _prepare(config, emit, resumed=True)
        check_batch(config.train.batch_size, current(), len(splits.train))
        steps = snapshot.totals.steps
        where = f"epoch {snapshot.epoch}" + (f", step {steps}" if steps else "")
        emit(Status(f"resuming {run_dir} at {where}"))
        return _train(config, splits, built, device, run_dir, emit, started, threads, snapshot)


def _threads(requested: int | None, emit: Listener, resumed_on: int | None = None) -> Threads:
    """The run's CPU threads, set before its first operation; a line when the machine is busy."""
    threads = Threads.start(requested, resumed_on=resumed_on)
    if threads.note:
        emit(Status(threads.note))
    return threads


def _following(threads: Threads, emit: Listener) -> Listener:
    """`emit`, which also looks at the load between steps (at every progress event) and changes the thread
    count to follow it; on every rank, not only the one that speaks."""
    if not threads.following:
        return emit

    def listen(event) -> None:
        if isinstance(event, StepDone):
            note = threads.check()
            if note:
                emit(Status(note))
        emit(event)

    return listen


def _result(config: Config, splits, built: Built, device, run_dir: Path, fitted, test, start) -> RunResult:
    """The finished run's record (total_seconds is filled in at the very end)."""
    result = RunResult(
        run_dir=run_dir,
        config=config,
        spec=built.spec,
        info=splits.info,
        preprocessing=built.preprocessing,
        device=str(device),
        parameters=count_parameters(built.module),
        tokens=num_tokens(built.module),
        history=fitted.history,
        best_epoch=fitted.best_epoch,
        test=test,
        train_seconds=fitted.seconds,
        total_seconds=0.0,
        images_per_s=fitted.images_per_s,
        peak_memory=fitted.peak_memory,
        adaptation=built.adaptation,
        transfer=built.transfer,
        weights=fitted.weights,
        capped=splits.capped,
    )
    if built.teacher is not None:
        before = sum(m.seconds for m in start.history) if start else 0.0  # trained by another process
        result.teacher = built.teacher.cost(max(fitted.seconds - before, 1e-9))
    return result


def _main_only(on_event: Listener | None) -> Listener:
    """The listener of rank 0; the other ranks of a data-parallel run say nothing (rank 0 speaks for all)."""
    if on_event is None or not launched().main:
        return lambda event: None
    return on_event


def _prepare(config: Config, emit: Listener, resumed: bool = False):
    emit(Status(f"loading {config.data.dataset}"))
    with local_main_first():  # one download and one cache write per machine
        splits = load_splits(config.data, on_note=lambda note: emit(Status(note)))
        # The seed fixes the initial weights and, through the batches' generator, order and augmentation.
        torch.manual_seed(config.train.seed)
        built = build_model(
            config.model,
            splits.info,
            splits.stats,
            weight_decay=config.train.weight_decay,
            emit=emit,
            drop_path=config.train.drop_path,
        )
        built = apply_init(built, splits.info, config.train.weight_decay, emit, resumed=resumed)
        built = with_teacher(built, splits.info)
    return splits, built


def _attention_snapshots(config: Config, built: Built, splits, run_dir: Path, emit: Listener):
    """With --snapshot-attention K: what keeps K validation images' attention after every epoch."""
    count = config.train.snapshot_attention
    if not count:
        return None
    snapshots = AttentionSnapshots(run_dir, built.module, built.preprocessing, splits.val, count)
    snapshots.start()
    size, where = snapshots.bytes_per_epoch, f"{snapshots.folder}/"  # where it is, from here
    emit(Status(f"attention snapshots: {count} validation images, {size:,} bytes an epoch, in {where}"))
    return snapshots


def _open(
    held: contextlib.ExitStack,
    run_dir: Path,
    config: Config,
    built: Built,
    splits,
    device,
    emit,
    start,
    precision: str,
):
    """Hold `run_dir` (for as long as `held`) and make it ready for the run's writes: its config, and the
    metrics log and snapshot writer that fit() feeds; those two are returned."""
    held.enter_context(DirectoryLock(run_dir, "run directory"))
    if start is None:
        clear(run_dir)  # what --overwrite replaces, and what a killed write left
    else:
        remove_temporaries(run_dir)
    with writing(run_dir / CONFIG) as path:
        atomic_write_text(path, config.to_toml())
    provenance.record(run_dir, splits, device, resumed=start is not None, precision=precision)
    attention = _attention_snapshots(config, built, splits, run_dir, emit)
    writer = SnapshotWriter(run_dir, built, config, splits.info, attention)
    log = held.enter_context(MetricsLog(run_dir / METRICS, emit, start.history if start else None))
    if config.train.tensorboard:  # a resumed run adds an events file to the same folder
        log = held.enter_context(TensorBoardLog(run_dir / TENSORBOARD, log))
    return log, writer


@contextlib.contextmanager
def out_of_memory(run_dir: Path):
    """CUDA out of memory as one line that says what to change; the last finished epoch's state stays."""
    try:
        yield
    except torch.cuda.OutOfMemoryError:
        torch.cuda.empty_cache()  # so that a sweep's next run has the memory back
        raise OutOfMemory(
            f"the GPU ran out of memory training {run_dir}; lower --batch-size or the model's size (or use "
            "--device cpu) and start again; the state of its last finished epoch is kept"
        ) from None


def _train(
    config: Config,
    splits,
    built: Built,
    device,
    run_dir: Path,
    emit: Listener,
    started: float,
    threads: Threads,
    start: Snapshot | None = None,
) -> RunResult:
    """Train in `run_dir`, held by this process, writing as the run goes; RunStopped after a signal
    (RunInterrupted, a KeyboardInterrupt too, after Ctrl-C). With several ranks, rank 0 holds and writes
    the run directory and the others only train."""
    model, preprocess = built.module.to(device), built.preprocessing.on(device)
    ranks = current()
    precision = resolve_precision(config.train.precision, device, config.model.kind)
    dtype = precision_dtype(precision)
    repeat_window = 2.0 if ranks.distributed else 0.0  # one Ctrl-C reaches a torchrun worker twice
    resume = f"vitcli {config.model.command} --resume {run_dir}"
    after_loss = f"the state of the last finished epoch is kept: resume with {resume}"
    with lost_ranks(after_loss), contextlib.ExitStack() as held, GracefulStop(repeat_window) as stop:
        opened = on_main(lambda: _open(held, run_dir, config, built, splits, device, emit, start, precision))
        if ranks.main:  # what --nproc's launcher says if a rank is lost from here on (runtime/launch.py)
            leave_note(AFTER_LOSS, after_loss)
        listen, writer = opened or (emit, None)
        with out_of_memory(run_dir):
            fitted = fit(
                model,
                splits,
                config.train,
                device,
                preprocess,
                augment=Augmentation.of(config.data, splits.info.family),
                param_groups=built.param_groups,
                criterion=built.criterion,
                on_event=_following(threads, listen),
                autocast_dtype=dtype,
                start=start,
                on_snapshot=writer,
                stop=stop,
            )
        # Stopped before the test set too: resuming evaluates it.
        if fitted.stopped or any_rank(stop(), device):
            raise stop.stopped(f"the state of {run_dir} is saved; go on with: {resume}")
        emit(Status("evaluating the best epoch on the test set"))
        test = evaluate(
            model,
            splits.test,
            preprocess,
            device,
            len(splits.info.classes),
            autocast_dtype=dtype,
            shard=ranks.shard,
        )
        result = _result(config, splits, built, device, run_dir, fitted, test, start)
        result.threads, result.precision = threads, precision
        on_main(lambda: save_checkpoint(run_dir / MODEL, built, config, splits.info, result.metrics()))
    result.total_seconds = time.perf_counter() - started
    return result
