"""Runs side by side: what `vitcli compare` shows, from the files the runs left.

    comparison = compare_runs(["runs/vit-mnist-...", "runs/cnn-mnist-..."])   # or ["sweeps/depth-..."]
    console.print(compare_table(comparison.runs))
    write_comparison(comparison.curves(), "compare.png")                       # vitcli.training.curves

Each run is read from its run directory (`run_dir`): config.toml for the model, metrics.jsonl for the curves,
and model.safetensors's metadata for the summary (`RunResult.metrics`). A run stopped before its test set
was evaluated is shown with what it has (its epochs so far, "n/a" for the test), not refused. A sweep
directory stands for its finished runs (results.jsonl's rows).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vitcli.errors import ConfigError, OutputError
from vitcli.models import count_parameters, num_tokens
from vitcli.settings.config import Config, load_config
from vitcli.settings.specs import ModelSpec
from vitcli.sweeps.results import FINISHED, RESULTS_JSONL, recorded_rows
from vitcli.training.checkpoint import load_checkpoint, read_metadata
from vitcli.training.run_dir import CONFIG, METRICS, MODEL

PNG = "compare.png"


@dataclass
class RunSummary:
    """One run as the comparison shows it; None where the run did not get that far."""

    label: str  # the run directory's name (with its parent's where two would read the same)
    run_dir: Path
    model: str  # the kind and its key sizes: "vit d32 p7 x2", "cnn", a timm model's name
    dataset: str
    finished: bool  # its test set was evaluated
    epochs: int  # finished epochs
    parameters: int | None = None
    tokens: int | None = None
    best_epoch: int | None = None
    best_val: float | None = None  # validation accuracy of the kept weights
    test_accuracy: float | None = None
    test_loss: float | None = None
    train_seconds: float | None = None
    images_per_s: float | None = None
    history: list[dict[str, Any]] = field(default_factory=list, repr=False)  # metrics.jsonl's lines

    def to_dict(self) -> dict[str, Any]:
        return {
            **{k: v for k, v in self.__dict__.items() if k not in ("run_dir", "history")},
            "run_dir": str(self.run_dir),
            "history": self.history,
        }


@dataclass
class Comparison:
    runs: list[RunSummary]
    sweep_dir: Path | None = None  # when a sweep directory was given
    notes: list[str] = field(default_factory=list)  # runs left out and why

    def curves(self) -> list[tuple[str, list[dict[str, Any]]]]:
        return [(r.label, r.history) for r in self.runs]

    def default_png(self) -> Path | None:
        """compare.png in the sweep directory for a sweep, else in the folder that holds the runs; None
        for runs in different folders (there is no place for it that is plainly theirs)."""
        if self.sweep_dir is not None:
            return self.sweep_dir / PNG
        folders = {r.run_dir.resolve().parent: r.run_dir.parent for r in self.runs}  # as the user wrote it
        return next(iter(folders.values())) / PNG if len(folders) == 1 else None

    def to_dict(self) -> dict[str, Any]:
        return {"runs": [r.to_dict() for r in self.runs], "notes": self.notes}


def compare_runs(paths: list[str | Path]) -> Comparison:
    """The runs in `paths`: several run directories, or exactly one sweep directory (its finished runs).
    A path that is neither is a ConfigError, before anything is read."""
    paths = [Path(p) for p in paths]
    if not paths:
        raise ConfigError("nothing to compare; pass run directories or one sweep directory")
    kinds = [_kind(p) for p in paths]
    if "sweep" in kinds:
        if len(paths) > 1:
            raise ConfigError(
                f"{paths[kinds.index('sweep')]} is a sweep directory; pass exactly one sweep directory, "
                "or run directories only"
            )
        return _sweep(paths[0])
    comparison = Comparison(_labelled(paths))
    datasets = sorted({r.dataset for r in comparison.runs})
    if len(datasets) > 1:  # the table has no room for a data set column: say it once
        comparison.notes.append(
            f"the runs are on {len(datasets)} data sets ({', '.join(datasets)}): "
            "compare accuracies within one"
        )
    return comparison


def _kind(path: Path) -> str:
    if not path.exists():
        raise ConfigError(
            f"{path} does not exist; pass run directories (vitcli train) or one sweep directory "
            "(vitcli sweep)"
        )
    if path.is_dir() and (path / RESULTS_JSONL).is_file():
        return "sweep"
    if path.is_dir() and (path / CONFIG).is_file() and (path / METRICS).is_file():
        return "run"
    raise ConfigError(
        f"{path} is neither a run directory (config.toml, metrics.jsonl) nor a sweep directory "
        "(results.jsonl); pass the directories that vitcli train or vitcli sweep wrote"
    )


def _sweep(sweep_dir: Path) -> Comparison:
    rows = recorded_rows(sweep_dir)
    done = [r for r in rows if r["status"] == FINISHED]
    notes = [f"{len(rows) - len(done)} failed run(s) of the sweep left out"] if len(done) < len(rows) else []
    dirs = []
    for row in done:
        run_dir = sweep_dir / row["run"]
        if (run_dir / CONFIG).is_file() and (run_dir / METRICS).is_file():
            dirs.append(run_dir)
        else:
            notes.append(f"{run_dir} was recorded as finished but is gone; left out")
    if not dirs:
        raise ConfigError(
            f"{sweep_dir} has no finished runs to compare yet; run the sweep (or pass run directories)"
        )
    return Comparison(_labelled(dirs), sweep_dir, notes)


def _labelled(dirs: list[Path]) -> list[RunSummary]:
    # Two runs of the same name (--name a in two --out folders) are told apart by their folder.
    names = [d.resolve().name for d in dirs]
    return [
        load_run(d, f"{d.resolve().parent.name}/{name}" if names.count(name) > 1 else name)
        for d, name in zip(dirs, names)
    ]


def load_run(run_dir: str | Path, label: str | None = None) -> RunSummary:
    """A run directory's summary, finished or not."""
    run_dir = Path(run_dir)
    config = load_config(run_dir / CONFIG)
    history = read_history(run_dir / METRICS)
    metrics, spec = _checkpoint(run_dir)
    summary = RunSummary(
        label=label or run_dir.resolve().name,
        run_dir=run_dir,
        model=(spec or config.model).describe(),
        dataset=config.data.dataset,
        finished="test_accuracy" in metrics,
        epochs=len(history),
    )
    # A finished run's summary is in its checkpoint; a stopped run's best so far is there too (the metrics
    # of its kept epoch), and its size and time are worked out.
    summary.best_epoch = metrics.get("best_epoch", metrics.get("epoch"))
    summary.best_val = _kept_val(metrics, history, summary.best_epoch)
    if summary.finished:
        for key in ("parameters", "tokens", "test_accuracy", "test_loss", "train_seconds", "images_per_s"):
            setattr(summary, key, metrics.get(key))
    else:
        summary.parameters, summary.tokens = _size(run_dir) if metrics else (None, None)
        seconds = sum(m["seconds"] for m in history)
        if seconds > 0:
            summary.train_seconds = seconds
            summary.images_per_s = sum(m["images_per_s"] * m["seconds"] for m in history) / seconds
    summary.history = history
    return summary


def read_history(path: Path) -> list[dict[str, Any]]:
    """metrics.jsonl's lines; a line cut short by a killed write (the last, without its newline) is left
    out."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise OutputError(f"{path} cannot be read ({e}); check the run directory") from None
    lines = text.splitlines()
    if lines and not text.endswith("\n"):
        lines.pop()
    try:
        return [json.loads(line) for line in lines if line.strip()]
    except json.JSONDecodeError as e:
        raise OutputError(f"{path} is damaged ({e}); move the run away to leave it out") from None


def _checkpoint(run_dir: Path) -> tuple[dict[str, Any], ModelSpec | None]:
    """model.safetensors's metrics and the exact spec of its weights; ({}, None) before its first epoch."""
    if not (run_dir / MODEL).is_file():
        return {}, None

    metadata = read_metadata(run_dir / MODEL)
    try:
        metrics = json.loads(metadata.get("metrics", "{}"))
        spec = Config.from_dict(json.loads(metadata["config"]), source=f"{run_dir / MODEL} metadata").model
    except (KeyError, TypeError, ValueError) as e:
        raise OutputError(f"{run_dir / MODEL} has damaged metadata ({e}); move the run away") from None
    return metrics, spec


def _size(run_dir: Path) -> tuple[int, int | None]:
    """Parameters and tokens of a stopped run's model, rebuilt from its checkpoint (a finished run has
    them in its metrics)."""

    model = load_checkpoint(run_dir / MODEL).model
    return count_parameters(model), num_tokens(model)


def _kept_val(metrics: dict[str, Any], history: list[dict[str, Any]], epoch: int | None) -> float | None:
    """The validation accuracy of the kept weights: their moving average's when those were kept."""
    if metrics.get("weights") == "ema" and epoch and epoch <= len(history):
        return history[epoch - 1].get("ema_val_accuracy")
    return metrics.get("val_accuracy")
