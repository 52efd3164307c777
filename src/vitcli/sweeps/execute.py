"""Running a sweep: resume, one run at a time or several at once, each failure recorded with its kind.

    sweep = plan_sweep({"embed_dim": [8, 16, 32], "depth": [2, 4]}, out="sweeps")   # vitcli.sweeps.plan
    rows = run_sweep(sweep, on_event=print)
    rows = run_sweep(sweep, on_event=print, jobs=4)     # up to 4 runs at once (`sweep_jobs`)

Re-running a sweep skips runs recorded as finished and runs recorded as invalid (a bad combination of
values fails the same way every time); runs that failed for another reason (diverged, out of memory, data,
a file that could not be written, a job that ended without its row) are retried. The rows are written
after every run (`sweep_results.Recorder`); Slurm sweeps are `sweep_slurm`'s.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from vitcli.errors import OutputError
from vitcli.events import Event
from vitcli.runtime.lock import DirectoryLock
from vitcli.sweeps.attempt import INVALID, attempt
from vitcli.sweeps.jobs import job_gpus, run_in_processes
from vitcli.sweeps.plan import PlannedRun, Sweep
from vitcli.sweeps.results import FINISHED, Recorder, job_rows, load_results, merge_rows


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
    gathered: int = 0  # rows that jobs left in their run directories and results.jsonl lacks


def resume_state(sweep: Sweep) -> Resume:
    recorded = load_results(sweep.dir)
    gathered = job_rows(sweep.dir, recorded)
    rows = merge_rows(recorded, gathered)
    by_key = {row["key"]: row for row in rows}
    todo, skipped, retried = [], 0, 0
    for run in sweep.runs:
        row = by_key.get(run.key)
        if row is not None and (row["status"] == FINISHED or row.get("failure") == INVALID):
            skipped += 1
            continue
        retried += row is not None
        todo.append(run)
    return Resume(rows, todo, skipped, retried, len(gathered))


def run_sweep(sweep: Sweep, on_event: SweepListener | None = None, jobs: int = 1) -> list[dict[str, Any]]:
    """Train every run not yet recorded; return this sweep's rows (in plan order). A run that fails
    becomes a failed row and the sweep goes on; Ctrl-C stops it with the finished rows already saved.

    `jobs` > 1 trains up to that many runs at once, each in a worker process (`sweep_jobs`); the events
    are then only RunEnded, one per run as it ends. The workers are spawned, and a spawned process imports
    the main module: a script calls this under `if __name__ == "__main__":`."""
    emit = on_event or (lambda event: None)
    job_gpus(sweep, jobs)  # a bad --jobs is one error before anything is written
    with recording(sweep) as (state, recorder):
        total = len(sweep.runs)

        def record(run: PlannedRun, row: dict[str, Any]) -> None:
            recorder.record(row)  # a retried run's new row replaces the old one
            emit(RunEnded(run, total, row))

        if jobs > 1:
            run_in_processes(sweep, state.todo, jobs, record)
        else:
            for run in state.todo:
                emit(RunStarted(run, total))
                record(run, attempt(sweep, run, emit))
    return recorder.planned()


@contextlib.contextmanager
def recording(sweep: Sweep) -> Iterator[tuple[Resume, Recorder]]:
    """Hold the sweep directory for one invocation: what is recorded and still to run, and the one writer
    of its results (which first records the rows gathered from jobs' run directories)."""
    make_sweep_dir(sweep)
    # One process per sweep directory: two would rewrite each other's rows and runs.
    with DirectoryLock(sweep.dir, "sweep directory"):
        state = resume_state(sweep)
        recorder = Recorder(sweep.dir, [run.key for run in sweep.runs], state.rows)
        if state.gathered:
            recorder.write()
        yield state, recorder


def make_sweep_dir(sweep: Sweep) -> None:
    """Create the sweep directory before the first run, so a bad --out is one error, not a failed row
    per run."""
    try:
        sweep.dir.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise OutputError(
            f"cannot create sweep directory {sweep.dir}: {e.strerror or e}; choose another --out"
        ) from None
