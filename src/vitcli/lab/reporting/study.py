"""What a report is about: the runs and sweeps found under the paths given, read from their files.

    study = gather(["runs/vit-mnist-...", "runs/cnn-mnist-...", "sweeps/depth-..."])

A path is a run directory, a sweep directory, or a folder holding them (two levels down: `runs/`, or a
project folder with runs/ and sweeps/ in it). Every number comes from the function its command uses, so
the page says what `vitcli compare --json` (a run's summary) and `vitcli report --json` (a sweep's rows)
say. A run that cannot be read (a damaged metrics.jsonl, a checkpoint with damaged metadata) is left out
with a note; a path that holds nothing at all is refused in one line.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vitcli.errors import ConfigError, VitcliError
from vitcli.lab.comparison import RunSummary, load_run
from vitcli.settings.config import Config, load_config
from vitcli.sweeps.results import FAILED, FINISHED, RESULTS_JSONL, describe, recorded_rows
from vitcli.training import provenance
from vitcli.training.checkpoint import read_metadata
from vitcli.training.run_dir import CONFIG, METRICS, MODEL

DEPTH = 2  # how far below a given folder runs and sweeps are looked for


@dataclass
class ReportRun:
    summary: RunSummary  # what `vitcli compare` shows of the run
    config: Config
    provenance: dict[str, Any] | None  # provenance.json; None for runs made before it was written
    sweep: Path | None = None  # the sweep the run belongs to
    values: dict[str, Any] = field(default_factory=dict)  # its swept values, in a sweep
    test_count: int | None = None  # images in its test set
    capped: dict[str, list[int]] = field(default_factory=dict)  # --subset: split -> [kept, of]
    data: dict[str, Any] = field(default_factory=dict)  # the checkpoint's data set: shape, classes

    @property
    def label(self) -> str:
        return self.summary.label

    @property
    def seed(self) -> int:
        return self.config.train.seed

    @property
    def seedless(self) -> str:
        """The run's settings without its seed and its name: runs that share it differ only in seed."""
        settings = self.config.to_dict()
        settings["train"] = {k: v for k, v in settings["train"].items() if k != "seed"}
        settings["run"] = {k: v for k, v in settings["run"].items() if k not in ("name", "out")}
        return json.dumps(settings, sort_keys=True, default=str)


@dataclass
class ReportSweep:
    dir: Path
    axes: list[str]  # the swept options, seed included when it was swept
    rows: list[dict[str, Any]]  # results.jsonl's rows (`vitcli report --json`'s "runs")
    runs: list[ReportRun]  # its finished runs that could be read

    @property
    def failed(self) -> list[dict[str, Any]]:
        return [row for row in self.rows if row["status"] == FAILED]


@dataclass
class Study:
    runs: list[ReportRun]  # every run: the run directories given, then each sweep's
    sweeps: list[ReportSweep]
    notes: list[str] = field(default_factory=list)  # what was left out, and why


def gather(paths: list[str | Path]) -> Study:
    """The runs and sweeps under `paths`, each once."""
    if not paths:
        raise ConfigError("nothing to report; pass run directories, sweep directories or a folder of them")
    run_dirs: list[Path] = []
    sweep_dirs: list[Path] = []
    for path in map(Path, paths):
        if not path.exists():
            raise ConfigError(
                f"{path} does not exist; pass run directories, sweep directories or a folder of them"
            )
        found_runs, found_sweeps = _find(path, DEPTH)
        if not found_runs and not found_sweeps:
            raise ConfigError(
                f"{path} holds no runs (config.toml, metrics.jsonl) or sweeps (results.jsonl); pass the "
                "directories vitcli train or vitcli sweep wrote, or the folder holding them"
            )
        run_dirs += found_runs
        sweep_dirs += found_sweeps
    study = Study([], [])
    sweeps = _unique(sweep_dirs)
    inside = {d.resolve() for d in sweeps}
    # A run directory of a sweep given on its own as well is the sweep's.
    lone = [d for d in _unique(run_dirs) if d.resolve().parent not in inside]
    names = [d.resolve().name for d in lone]
    for run_dir, name in zip(lone, names):
        label = f"{run_dir.resolve().parent.name}/{name}" if names.count(name) > 1 else name
        run = _read_run(run_dir, label, study.notes)
        if run is not None:
            study.runs.append(run)
    for sweep_dir in sweeps:
        sweep = _read_sweep(sweep_dir, study.notes)
        study.sweeps.append(sweep)
        study.runs += sweep.runs
    if not study.runs and not any(s.rows for s in study.sweeps):
        raise ConfigError(
            f"no run under {', '.join(map(str, paths))} could be read ({'; '.join(study.notes)}); "
            "move the damaged runs away or pass others"
        )
    return study


def _find(path: Path, depth: int) -> tuple[list[Path], list[Path]]:
    if is_sweep(path):
        return [], [path]
    if is_run(path):
        return [path], []
    runs: list[Path] = []
    sweeps: list[Path] = []
    if depth > 0 and path.is_dir():
        for child in sorted(p for p in path.iterdir() if p.is_dir() and not p.name.startswith(".")):
            found_runs, found_sweeps = _find(child, depth - 1)
            runs += found_runs
            sweeps += found_sweeps
    return runs, sweeps


def is_sweep(path: Path) -> bool:
    return path.is_dir() and (path / RESULTS_JSONL).is_file()


def is_run(path: Path) -> bool:
    return path.is_dir() and (path / CONFIG).is_file() and (path / METRICS).is_file()


def _unique(dirs: list[Path]) -> list[Path]:
    seen: dict[Path, Path] = {}
    for d in dirs:
        seen.setdefault(d.resolve(), d)
    return list(seen.values())


def _read_run(run_dir: Path, label: str, notes: list[str], sweep: Path | None = None, values=None):
    """The run, or None with a note saying why it was left out."""
    try:
        summary = load_run(run_dir, label)
        config = load_config(run_dir / CONFIG)
        metrics, data = _metadata(run_dir)
    except VitcliError as e:
        notes.append(f"{run_dir} left out: {e}")
        return None
    if not summary.history:
        notes.append(f"{run_dir} stopped before its first epoch: it has no curves or results yet")
    elif not summary.finished:
        notes.append(
            f"{run_dir} stopped after {summary.epochs} epoch(s), before its test: shown with its "
            f"validation so far (resume it with vitcli train --resume {run_dir})"
        )
    return ReportRun(
        summary,
        config,
        provenance.read(run_dir),
        sweep,
        dict(values or {}),
        metrics.get("test_count"),
        metrics.get("capped") or {},
        data,
    )


def _metadata(run_dir: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """The checkpoint's metrics and data set (`load_run` has read them once: they parse)."""
    if not (run_dir / MODEL).is_file():
        return {}, {}
    metadata = read_metadata(run_dir / MODEL)
    return json.loads(metadata.get("metrics", "{}")), json.loads(metadata.get("dataset", "{}"))


def _read_sweep(sweep_dir: Path, notes: list[str]) -> ReportSweep:
    rows = recorded_rows(sweep_dir)
    axes = list(dict.fromkeys(k for row in rows for k in row.get("axes", row["values"])))
    runs = []
    for row in rows:
        if row["status"] != FINISHED:
            notes.append(f"{sweep_dir.name}: {row['run']} failed ({row.get('failure')}): {row.get('error')}")
            continue
        run_dir = sweep_dir / row["run"]
        if not is_run(run_dir):
            notes.append(f"{run_dir} was recorded as finished but is gone; left out")
            continue
        run = _read_run(run_dir, f"{sweep_dir.name}/{row['run']}", notes, sweep_dir, row["values"])
        if run is not None:
            runs.append(run)
    dirs = [r.summary.run_dir.name for r in runs]
    for run, label in zip(runs, sweep_labels(sweep_dir.name, axes, [r.values for r in runs], dirs)):
        run.summary.label = label
    return ReportSweep(sweep_dir, axes, rows, runs)


def sweep_labels(name: str, axes: list[str], values: list[dict[str, Any]], dirs: list[str]) -> list[str]:
    """Short names for a sweep's runs: the values by which each differs from most of the others.

    A run directory's name holds every swept value (`model=vit-randaugment=0-erase=0.25-...`), too long
    for a table or a legend. An option whose value most runs share (an ablation's 0) is named only where
    a run has another; an option without such a value (a grid's axis) always; one all of them share,
    never. A run at every common
    value is `base`; two runs that would read the same keep their directory's hash."""
    shown: dict[str, Any] = {}
    for axis in axes:
        counts: dict[str, int] = {}
        for v in values:
            counts[json.dumps(v.get(axis))] = counts.get(json.dumps(v.get(axis)), 0) + 1
        common, count = max(counts.items(), key=lambda item: item[1]) if counts else (None, 0)
        if len(counts) > 1:  # an option all these runs share tells none apart
            shown[axis] = common if count * 2 > len(values) else None
    labels = []
    for v in values:
        differs = {a: v.get(a) for a in shown if shown[a] is None or json.dumps(v.get(a)) != shown[a]}
        labels.append(f"{name}: {describe(differs) if differs else 'base'}")
    return [
        f"{label} ({d.rsplit('-', 1)[-1]})" if labels.count(label) > 1 else label
        for label, d in zip(labels, dirs)
    ]
