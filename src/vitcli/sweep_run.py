"""Running a sweep: resume, one run at a time, each failure recorded with its kind.

    sweep = plan_sweep({"embed_dim": [8, 16, 32], "depth": [2, 4]}, out="sweeps")   # vitcli.sweep
    rows = run_sweep(sweep, on_event=print)

Re-running a sweep skips runs recorded as finished and runs recorded as invalid (a bad combination of
values fails the same way every time); runs that failed for another reason (diverged, out of memory, data,
a file that could not be written) are retried. The rows are written after every run (`sweep_results`).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from vitcli.errors import CheckpointError, ConfigError, DataError, OutOfMemory, OutputError, TrainingDiverged
from vitcli.events import Event, Status
from vitcli.lock import DirectoryLock
from vitcli.sweep import PlannedRun, Sweep
from vitcli.sweep_results import FAILED, FINISHED, load_results, write_results
from vitcli.train_state import STATE_FILE

INVALID = "invalid"  # the kind of failure that is not retried: the same settings fail the same way
# Each error kind's name in a failed row; all but INVALID are retried when the sweep is run again.
FAILURES = (
    (ConfigError, INVALID),
    (DataError, "data"),
    (OutputError, "output"),
    (TrainingDiverged, "diverged"),
    (OutOfMemory, "out of memory"),
)


@dataclass
class RunStarted:
    run: PlannedRun
    total: int


@dataclass
class RunEnded:
    run: PlannedRun
    total: int
    row: dict[str, Any]


SweepEvent = RunStarted | RunEnded
SweepListener = Callable[[SweepEvent | Event], None]


@dataclass
class Resume:
    rows: list[dict[str, Any]]  # recorded results, from earlier invocations
    todo: list[PlannedRun]
    skipped: int  # recorded as finished or invalid
    retried: int  # recorded as failed for another reason, run again


def resume_state(sweep: Sweep) -> Resume:
    rows = load_results(sweep.dir)
    recorded = {row["key"]: row for row in rows}
    todo, skipped, retried = [], 0, 0
    for run in sweep.runs:
        row = recorded.get(run.key)
        if row is not None and (row["status"] == FINISHED or row.get("failure") == INVALID):
            skipped += 1
            continue
        retried += row is not None
        todo.append(run)
    return Resume(rows, todo, skipped, retried)


def run_sweep(sweep: Sweep, on_event: SweepListener | None = None) -> list[dict[str, Any]]:
    """Train every run not yet recorded; return this sweep's rows (in plan order). A run that fails
    becomes a failed row and the sweep goes on; Ctrl-C stops it with the finished rows already saved."""
    emit = on_event or (lambda event: None)
    make_sweep_dir(sweep)
    # One process per sweep directory: two would rewrite each other's rows and runs.
    with DirectoryLock(sweep.dir, "sweep directory"):
        state = resume_state(sweep)
        rows = {row["key"]: row for row in state.rows}
        total = len(sweep.runs)
        for run in state.todo:
            emit(RunStarted(run, total))
            row = _attempt(sweep, run, emit)
            rows.pop(run.key, None)  # a retried run's new row replaces the old one, at the end
            rows[run.key] = row
            write_results(sweep.dir, list(rows.values()))
            emit(RunEnded(run, total, row))
    return [rows[run.key] for run in sweep.runs if run.key in rows]


def _attempt(sweep: Sweep, run: PlannedRun, emit: SweepListener) -> dict[str, Any]:
    """Train one run, or go on with it from the state an interrupted attempt left; its row, finished or
    failed with the reason. Ctrl-C (RunStopped) passes through: the run's state is saved."""
    if run.invalid:
        return _failed_row(sweep, run, ConfigError(run.invalid))
    try:
        return _finished_row(sweep, run, _train_or_resume(sweep.dir / run.config.run.name, run, emit))
    except (
        ConfigError,
        DataError,
        OutputError,
        OutOfMemory,
        TrainingDiverged,
        torch.cuda.OutOfMemoryError,
        MemoryError,
    ) as e:
        if isinstance(e, torch.cuda.OutOfMemoryError):
            torch.cuda.empty_cache()  # so the next, perhaps smaller, run has the memory back
        return _failed_row(sweep, run, e)


def _train_or_resume(run_dir: Path, run: PlannedRun, emit: SweepListener):
    from vitcli.run import resume_run, train_run

    if (run_dir / STATE_FILE).is_file():
        try:
            return resume_run(run_dir, on_event=emit)
        except (ConfigError, CheckpointError) as e:  # finished, or a damaged state: train it afresh
            emit(Status(f"{run_dir} cannot be resumed ({e}); training it again"))
    # The sweep owns its run directories: what an earlier attempt left is replaced.
    return train_run(run.config, on_event=emit, overwrite=True)


def _base_row(sweep: Sweep, run: PlannedRun) -> dict[str, Any]:
    return {
        "key": run.key,
        "run": run.config.run.name,
        "index": run.index,
        "values": run.values,
        "axes": sweep.axes,
        "config": {k: v for k, v in run.config.to_dict().items() if k != "run"},
        "recorded_at": time.strftime("%Y-%m-%dT%H:%M:%S"),
    }


def _finished_row(sweep: Sweep, run: PlannedRun, result) -> dict[str, Any]:
    # The run's own summary, the one its checkpoint keeps: one list of metrics for both.
    return {**_base_row(sweep, run), "status": FINISHED, **result.metrics()}


def _failed_row(sweep: Sweep, run: PlannedRun, error: BaseException) -> dict[str, Any]:
    kind = next((name for cls, name in FAILURES if isinstance(error, cls)), "out of memory")
    reason = (str(error).strip().splitlines() or [type(error).__name__])[0]
    return {**_base_row(sweep, run), "status": FAILED, "failure": kind, "error": reason}


def make_sweep_dir(sweep: Sweep) -> None:
    """Create the sweep directory before the first run, so a bad --out is one error, not a failed row
    per run."""
    try:
        sweep.dir.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise OutputError(
            f"cannot create sweep directory {sweep.dir}: {e.strerror or e}; choose another --out"
        ) from None
