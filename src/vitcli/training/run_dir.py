"""A run directory: made inside --out, held by one process, never overwritten unless asked, and written as
the run goes so that a stopped or killed run keeps what it did.

    config.toml         the settings (vitcli train --config RUN/config.toml repeats the run)
    metrics.jsonl       one line per finished epoch
    provenance.json     command line, date, versions, device, threads, git commit, data checksum
                        (`provenance`); a resume adds its own entry
    model.safetensors   the best-validation weights so far; at the end, with the test metrics
    last.safetensors    the weights of the last finished epoch
    state.safetensors   everything needed to resume exactly (`train_state`)
    curves.png          loss and accuracy, train and validation, against epoch (`curves`), after every epoch
    attention-snapshots/  with --snapshot-attention K: K images' attention after every epoch
                          (`inspection.snapshots`)
    tensorboard/        with --tensorboard: TensorBoard's event files (`tensorboard_log`)

Every file is written to a temporary file and renamed; a write killed half-way leaves a hidden `.*.tmp`
that the next command in the directory removes.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from vitcli.data.datasets import DatasetInfo
from vitcli.errors import ConfigError, OutputError
from vitcli.events import EpochMetrics, Listener
from vitcli.models.built import Built
from vitcli.runtime.files import atomic_write_text, writing
from vitcli.settings.config import Config
from vitcli.training.checkpoint import save_checkpoint
from vitcli.training.curves import CURVES, write_run_curves
from vitcli.training.engine import Snapshot
from vitcli.training.provenance import PROVENANCE
from vitcli.training.snapshots import SNAPSHOT_DIR, AttentionSnapshots
from vitcli.training.state import STATE_FILE, save_state
from vitcli.training.tensorboard_log import TENSORBOARD

MODEL, LAST, CONFIG, METRICS = "model.safetensors", "last.safetensors", "config.toml", "metrics.jsonl"
RUN_FILES = (MODEL, LAST, CONFIG, METRICS, STATE_FILE, CURVES, PROVENANCE)


def holds_a_run(run_dir: Path) -> bool:
    return any((run_dir / name).exists() for name in RUN_FILES)


def new_run_dir(
    config: Config, info: DatasetInfo, *, exact_name: bool = True, overwrite: bool = False
) -> Path:
    """The directory for a new run. A --name given on the command line (`exact_name`) that holds a run is
    refused unless `overwrite`; a name that only came with a config file is a default, and a taken one
    gets a suffix, as a generated name does."""
    out = Path(config.run.out).expanduser()
    if config.run.name:
        base = out / config.run.name
        if holds_a_run(base) and exact_name and not overwrite:
            raise ConfigError(
                f"{base} already holds a run; resume it with --resume {base}, replace it with --overwrite, "
                "or choose another --name"
            )
    else:
        dataset = Path(info.name[len("folder:") :]).name if info.name.startswith("folder:") else info.name
        base = out / f"{config.model.kind}-{dataset}-{time.strftime('%Y%m%d-%H%M%S')}"
    run_dir, n = base, 1
    while holds_a_run(run_dir) and not (overwrite and run_dir == base):
        n += 1  # two runs started in the same second, or a stored name taken
        run_dir = base.with_name(f"{base.name}-{n}")
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise OutputError(
            f"cannot create run directory {run_dir}: {e.strerror or e}; choose another --out"
        ) from None
    return run_dir


def clear(run_dir: Path) -> None:
    """Remove a run's own files (for --overwrite, once the directory is held) and any temporary file a
    killed write left; other files in the directory are the user's and stay."""
    remove_temporaries(run_dir)
    snapshots = list((run_dir / SNAPSHOT_DIR).glob("*.safetensors"))
    events = list((run_dir / TENSORBOARD).glob("events.out.tfevents.*"))
    for path in [run_dir / name for name in RUN_FILES] + snapshots + events:
        with writing(path):
            path.unlink(missing_ok=True)


def remove_temporaries(run_dir: Path) -> None:
    """The hidden `.*.tmp` files that a write killed half-way left (`files.atomic_write`)."""
    for path in [*run_dir.glob(".*.tmp"), *(run_dir / SNAPSHOT_DIR).glob(".*.tmp")]:
        with writing(path):
            path.unlink(missing_ok=True)


class MetricsLog:
    """A listener that appends each EpochMetrics to metrics.jsonl as one whole line, then passes every
    event on. Opened on a resumed run, it keeps the lines of the epochs the state holds."""

    def __init__(self, path: Path, emit: Listener, keep: list[EpochMetrics] | None = None):
        self.path, self.emit, self.keep = path, emit, keep or []

    def __enter__(self) -> MetricsLog:
        with writing(self.path):
            atomic_write_text(self.path, "".join(json.dumps(m.to_dict()) + "\n" for m in self.keep))
            self.file = self.path.open("a", encoding="utf-8")
        return self

    def __exit__(self, *exc) -> None:
        self.file.close()

    def __call__(self, event) -> None:
        if isinstance(event, EpochMetrics):
            with writing(self.path):
                self.file.write(json.dumps(event.to_dict()) + "\n")
                self.file.flush()
        self.emit(event)


class SnapshotWriter:
    """fit's `on_snapshot`: the state every epoch, last.safetensors for each finished epoch, and
    model.safetensors whenever the best weights change, so a stopped run always has an evaluable model;
    then curves.png of the epochs so far.

    The state goes last: a second Ctrl-C may stop the process between two of these writes, and a state on
    disk must never name an epoch whose weights are not there yet (the run could resume, but not be
    evaluated)."""

    def __init__(
        self,
        run_dir: Path,
        built: Built,
        config: Config,
        info: DatasetInfo,
        attention: AttentionSnapshots | None = None,
    ):
        self.run_dir, self.built, self.config, self.info = run_dir, built, config, info
        self.attention = attention

    def __call__(self, snapshot: Snapshot, improved: bool) -> None:
        if not snapshot.totals.steps:  # a finished epoch; stopped inside one, only the state moves on
            metrics = snapshot.history[-1].to_dict()
            save_checkpoint(self.run_dir / LAST, self.built, self.config, self.info, metrics, snapshot.model)
            if improved:
                kept = {**metrics, "weights": snapshot.best_source}
                save_checkpoint(self.run_dir / MODEL, self.built, self.config, self.info, kept, snapshot.kept)
            if self.attention is not None:
                self.attention(snapshot.history[-1].epoch)
        with writing(self.run_dir / STATE_FILE) as path:
            save_state(path, snapshot)
        if not snapshot.totals.steps:  # after the state: a picture must never keep a run from resuming
            title = f"{self.run_dir.name}: {self.config.model.kind} on {self.info.name}"
            write_run_curves([m.to_dict() for m in snapshot.history], self.run_dir / CURVES, title)
