"""One run of a sweep, trained or resumed, as its row: finished with its metrics, or failed with the kind
of failure and its one-line reason. The same code runs in the sweep's process (`sweep_run`), in its worker
processes (`sweep_jobs`) and in Slurm jobs (`sweep_slurm`).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import torch

from vitcli.errors import CheckpointError, ConfigError, DataError, OutOfMemory, OutputError, TrainingDiverged
from vitcli.events import Listener, Status
from vitcli.sweeps.plan import PlannedRun, Sweep
from vitcli.sweeps.results import FAILED, FINISHED
from vitcli.training import run as training  # looked up per call, so a test can stand in for a run
from vitcli.training.state import STATE_FILE

INVALID = "invalid"  # the kind of failure that is not retried: the same settings fail the same way
# Each error kind's name in a failed row; all but INVALID are retried when the sweep is run again.
FAILURES = (
    (ConfigError, INVALID),
    (DataError, "data"),
    (OutputError, "output"),
    (TrainingDiverged, "diverged"),
    (OutOfMemory, "out of memory"),
)


def attempt(sweep: Sweep, run: PlannedRun, emit: Listener) -> dict[str, Any]:
    """Train one run, or go on with it from the state an interrupted attempt left; its row, finished or
    failed with the reason. Ctrl-C (RunStopped) passes through: the run's state is saved."""
    if run.invalid:
        return _error_row(sweep, run, ConfigError(run.invalid))
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
        return _error_row(sweep, run, e)


def _train_or_resume(run_dir: Path, run: PlannedRun, emit: Listener):

    if (run_dir / STATE_FILE).is_file():
        try:
            return training.resume_run(run_dir, on_event=emit)
        except (ConfigError, CheckpointError) as e:  # finished, or a damaged state: train it afresh
            emit(Status(f"{run_dir} cannot be resumed ({e}); training it again"))
    # The sweep owns its run directories: what an earlier attempt left is replaced.
    return training.train_run(run.config, on_event=emit, overwrite=True)


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
    # The run's own summary, the one its checkpoint keeps: one list of metrics for both. The whole run's
    # time (load, train, test) is known only once the checkpoint is saved, so the row alone has it.
    return {
        **_base_row(sweep, run),
        "status": FINISHED,
        **result.metrics(),
        "total_seconds": result.total_seconds,
    }


def failed_row(sweep: Sweep, run: PlannedRun, failure: str, error: str) -> dict[str, Any]:
    """The row of a run that failed: the kind of failure (FAILURES' names, or "job") and one line."""
    return {**_base_row(sweep, run), "status": FAILED, "failure": failure, "error": error}


def _error_row(sweep: Sweep, run: PlannedRun, error: BaseException) -> dict[str, Any]:
    kind = next((name for cls, name in FAILURES if isinstance(error, cls)), "out of memory")
    reason = (str(error).strip().splitlines() or [type(error).__name__])[0]
    return failed_row(sweep, run, kind, reason)
