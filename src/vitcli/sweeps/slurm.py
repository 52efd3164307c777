"""Sweeps on Slurm: one submitit job per run, submitted as a job array (`vitcli sweep --executor slurm`).

    options = SlurmOptions(partition="gpu", gpus_per_job=1, max_parallel=8)
    rows = run_on_slurm(sweep, options, on_event=print)

submitit (optional: pip install 'vitcli[slurm]') keeps each job's pickled call, its logs and its result in
SWEEP_DIR/slurm, and this process each run's job id in SWEEP_DIR/slurm/job_ids.json. A job trains or
resumes one run in its own run directory, as a local sweep does (`sweep_attempt`), writes the run's row to
RUN_DIR/row.json and returns it. This process waits for the jobs and records their rows as they end (the
one writer of results.jsonl); a job that ends without its row becomes a failed row of kind "job" saying
why: the exception it raised, or, without one, that its process was killed (kill -9, out of memory) or
what Slurm's state says (cancelled, time limit, lost node).

If this process stops (Ctrl-C, kill, a closed ssh session), the jobs go on: `vitcli report` and the next
`vitcli sweep` with the same options gather the rows they leave in their run directories
(`sweep_results.job_rows`), and that sweep attaches to the jobs still pending or running (their ids in
job_ids.json) rather than submit their runs again. Where there is no Slurm (no `srun`), submitit runs the
jobs as local processes; then at most --max-parallel run at a time.
"""

from __future__ import annotations

import dataclasses
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from vitcli.errors import ConfigError, OutputError
from vitcli.events import Status
from vitcli.runtime.files import atomic_write_text, writing
from vitcli.runtime.interrupt import RunStopped
from vitcli.runtime.threads import cores
from vitcli.settings.choices import EXECUTORS
from vitcli.sweeps.attempt import attempt, failed_row
from vitcli.sweeps.execute import RunEnded, SweepListener, recording
from vitcli.sweeps.jobs import job_gpus, signals_ignored
from vitcli.sweeps.plan import PlannedRun, Sweep
from vitcli.sweeps.results import ROW_FILE

SLURM_DIR = "slurm"  # in the sweep directory: submitit's pickles and the jobs' logs
JOB = "job"  # the kind of failure of a job that ended without its row; retried like the others
JOB_IDS = "job_ids.json"  # in SLURM_DIR: {run key: {"job": id, "cluster": "slurm" or "local"}}
# Slurm's states of a job that may still give its run's row: an earlier call's job in one is attached to.
# UNKNOWN (sacct does not know the id) is not one: waiting for it could last for ever.
QUEUED_OR_RUNNING = ("PENDING", "CONFIGURING", "RUNNING", "COMPLETING", "REQUEUED", "SUSPENDED")
# What Slurm's state of a job that ended without its result says happened to it. Any other state (FAILED,
# or a local job's) means that its process was killed: an exception in the job is pickled as its result.
ENDED = {
    "CANCELLED": "was cancelled (scancel)",
    "TIMEOUT": "ran past its time limit (--timeout-min)",
    "OUT_OF_MEMORY": "ran out of memory",
    "NODE_FAIL": "lost its node",
    "BOOT_FAIL": "lost its node",
    "PREEMPTED": "was preempted",
    "DEADLINE": "passed its deadline",
}
KILLED = "'s process was killed (kill -9, or out of memory)"
RESUME = "resume: run the same vitcli sweep command again"
DEFAULT_TIMEOUT_MIN = 24 * 60  # submitit's own default is 5 minutes: too short for training
NO_SLURM = "no Slurm here: submitit runs the jobs as local processes"
INSTALL = "--executor slurm needs submitit: pip install 'vitcli[slurm]'"
FLAGS = {
    "partition": "--partition",
    "gpus_per_job": "--gpus-per-job",
    "max_parallel": "--max-parallel",
    "timeout_min": "--timeout-min",
}


@dataclass
class SlurmOptions:
    partition: str | None = None  # None: the cluster's default partition
    gpus_per_job: int | None = None  # None: no GPU asked for
    max_parallel: int | None = None  # jobs of the array running at once; None: submitit's default (256)
    timeout_min: int | None = None  # None: DEFAULT_TIMEOUT_MIN


@dataclass
class JobsSubmitted:
    runs: list[PlannedRun]
    job_ids: list[str]
    folder: Path  # their logs
    cluster: str  # "slurm", or "local" without Slurm


@dataclass
class JobsAttached:
    """Jobs an earlier call submitted that are still pending or running: this call waits for their rows
    instead of submitting their runs again."""

    runs: list[PlannedRun]
    job_ids: list[str]
    folder: Path  # their logs
    cluster: str


def check_executor(sweep: Sweep, executor: str, jobs: int, options: SlurmOptions) -> None:
    """Refuse options that do not go with `executor` or with the sweep's runs (a --jobs this machine cannot
    give, a GPU device for jobs without GPUs), and Slurm without submitit, before anything is written."""
    if executor not in EXECUTORS:
        raise ConfigError(f"--executor must be one of {', '.join(EXECUTORS)}, got {executor!r}")
    given = [flag for name, flag in FLAGS.items() if getattr(options, name) is not None]
    if executor == "local":
        if given:
            one = len(given) == 1
            raise ConfigError(
                f"{', '.join(given)} {'applies' if one else 'apply'} to --executor slurm only; "
                f"add --executor slurm, or leave {'it' if one else 'them'} out"
            )
        job_gpus(sweep, jobs)
        return
    if jobs != 1:
        raise ConfigError(
            f"--jobs {jobs} is for --executor local; on Slurm, --max-parallel N sets how many jobs run "
            "at once"
        )
    for name, least in (("gpus_per_job", 0), ("max_parallel", 1), ("timeout_min", 1)):
        value = getattr(options, name)
        if value is not None and value < least:
            raise ConfigError(f"{FLAGS[name]} must be at least {least}, got {value}")
    _check_devices(sweep, options.gpus_per_job or 0)
    submitit_module()


def _check_devices(sweep: Sweep, gpus: int) -> None:
    """A job sees only the GPUs it asks for: a run on cuda:N without them would fail there, as invalid."""
    for name in sorted({run.config.train.device for run in sweep.runs if run.config.train.device != "auto"}):
        needed = int(name.partition(":")[2] or 0) + 1 if name.startswith("cuda") else 0
        if needed > gpus:
            raise ConfigError(
                f"--device {name} needs {needed} GPU{'s' * (needed > 1)} in each job; add --gpus-per-job "
                f"{needed}, or use --device auto"
            )


def submitit_module():
    try:
        # extra vitcli[slurm]
        import submitit
    except ImportError:
        raise ConfigError(INSTALL) from None
    return submitit


def run_on_slurm(
    sweep: Sweep,
    options: SlurmOptions | None = None,
    on_event: SweepListener | None = None,
    poll_s: float | None = None,
) -> list[dict[str, Any]]:
    """Run every run not yet recorded as a submitit job and record the rows as the jobs end; return this
    sweep's rows (in plan order). Runs known to be invalid get their row here, without a job, and runs
    whose job from an earlier call is still pending or running are waited for, not submitted again.
    Events: a Status (without Slurm), JobsAttached, JobsSubmitted, and RunEnded for each run. Ctrl-C stops
    the waiting, not the jobs: RunStopped says how to gather their rows."""
    options = options or SlurmOptions()
    check_executor(sweep, "slurm", 1, options)
    emit = on_event or (lambda event: None)
    with recording(sweep) as (state, recorder):
        total = len(sweep.runs)

        def record(run: PlannedRun, row: dict[str, Any]) -> None:
            recorder.record(row)
            emit(RunEnded(run, total, row))

        todo = [run for run in state.todo if not run.invalid]
        executor = slurm_executor(sweep, options) if todo else None
        if executor is not None and executor.cluster != "slurm":
            emit(Status(NO_SLURM))
        for run in [run for run in state.todo if run.invalid]:
            record(run, attempt(sweep, run, emit))
        if executor is not None:
            poll_s = poll_s or (10.0 if executor.cluster == "slurm" else 1.0)
            running = attach(executor, todo)
            if running:
                ids = [job.job_id for _, job in running]
                emit(JobsAttached([run for run, _ in running], ids, executor.folder, executor.cluster))
            attached = {run.key for run, _ in running}
            waiting = [run for run in todo if run.key not in attached]
            try:
                _wait_for_jobs(executor, sweep, waiting, running, options.max_parallel, record, emit, poll_s)
            except KeyboardInterrupt:
                raise RunStopped(
                    "stopped waiting for the jobs; those still running go on and leave their rows in "
                    f"their run directories: vitcli report {sweep.dir} shows them, and the same command "
                    "waits for them again and submits the rest"
                ) from None
    return recorder.planned()


def slurm_executor(sweep: Sweep, options: SlurmOptions):
    """submitit's AutoExecutor for the sweep's jobs: Slurm where there is one, else local processes."""
    executor = submitit_module().AutoExecutor(folder=sweep.dir / SLURM_DIR)
    parameters: dict[str, Any] = {
        "name": f"vitcli-{sweep.name}",
        "timeout_min": options.timeout_min or DEFAULT_TIMEOUT_MIN,
    }
    if options.gpus_per_job is not None:
        parameters["gpus_per_node"] = options.gpus_per_job  # one task per job, so per job
    if options.partition is not None:
        parameters["slurm_partition"] = options.partition
    if options.max_parallel is not None:
        parameters["slurm_array_parallelism"] = options.max_parallel
    executor.update_parameters(**parameters)
    return executor


def _wait_for_jobs(executor, sweep: Sweep, todo, running, max_parallel, record, emit, poll_s) -> None:
    """Submit the runs, on Slurm as one array (Slurm keeps --max-parallel of them running), locally at
    most --max-parallel at a time (the `running` jobs attached to among them), and record each job's row
    as it ends."""
    on_slurm = executor.cluster == "slurm"
    every = len(todo) + len(running)
    window = every if on_slurm else max_parallel or every
    # Local jobs share this machine's cores, as --jobs workers do; a Slurm job has its own.
    threads = None if on_slurm else max(1, cores() // window)
    light = dataclasses.replace(sweep, runs=[])  # what a job needs of its sweep, without every planned run
    waiting, running = list(todo), list(running)
    while waiting or running:
        if waiting and len(running) < window:
            batch, waiting = waiting[: window - len(running)], waiting[window - len(running) :]
            # Local jobs are this process's children: without this, a Ctrl-C in the terminal would kill
            # their submitit controllers (a traceback each) and stop the runs at once. Ignoring it, they
            # go on as Slurm jobs do, and a run that is training stops after its step (its GracefulStop).
            with signals_ignored():
                jobs = executor.map_array(run_job, [light] * len(batch), batch, [threads] * len(batch))
            running += list(zip(batch, jobs))
            _save_job_ids(executor.folder, batch, jobs, executor.cluster)
            emit(JobsSubmitted(batch, [job.job_id for job in jobs], executor.folder, executor.cluster))
        ended = [(run, job) for run, job in running if job.done()]
        for run, job in ended:
            running.remove((run, job))
            record(run, job_row(sweep, run, job, executor.cluster))
        if not ended:
            time.sleep(poll_s)


def run_job(sweep: Sweep, run: PlannedRun, threads: int | None = None) -> dict[str, Any]:
    """A job's work, on its node: train or resume `run` (with `threads` CPU threads, if given), write its
    row to RUN_DIR/row.json, return it. Module-level, so that submitit pickles it by name."""
    if threads is not None:
        torch.set_num_threads(threads)
        os.environ["OMP_NUM_THREADS"] = str(threads)  # the ceiling of the thread count the run chooses
    path = sweep.dir / run.config.run.name / ROW_FILE
    with writing(path):
        path.unlink(missing_ok=True)  # an earlier attempt's row must not outlive this attempt
    row = attempt(sweep, run, lambda event: None)
    with writing(path):
        atomic_write_text(path, json.dumps(row))
    return row


def job_row(sweep: Sweep, run: PlannedRun, job, cluster: str = "slurm") -> dict[str, Any]:
    """The row an ended job returned, or a failed row of kind "job" saying why it has none, and its log."""
    # extra vitcli[slurm]
    from submitit.core.utils import FailedJobError, UncompletedJobError

    # A local job's result is on this machine's disk: none now is none at all (submitit would wait 15 s
    # for it, as for a shared file system that shows it late).
    if cluster == "local" and not job.paths.result_pickle.exists():
        return failed_row(sweep, run, JOB, _lost(job, cluster))
    try:
        return job.result()
    except FailedJobError as e:  # the job raised: its exception line says why
        error = f"job {job.job_id} raised {_raised(str(e))}; log: {job.paths.stderr}"
    except UncompletedJobError:  # no result at all: the process or the job was ended from outside
        error = _lost(job, cluster)
    except Exception as e:  # a result that cannot be read: one failed run all the same
        error = f"job {job.job_id} ended without a row ({type(e).__name__}: {e}); log: {job.paths.stderr}"
    return failed_row(sweep, run, JOB, error)


def _lost(job, cluster: str) -> str:
    """Why a job ended without its result, what is kept and what to do. A local job's own state says
    nothing here (its controller ended well after the run's process was killed: "FINISHED")."""
    state = job.state if cluster == "slurm" else ""
    ended = ENDED.get(state.split(" ")[0].upper())  # "CANCELLED by 1234": the state is the first word
    what = f" {ended}" if ended else KILLED
    seen = f" (Slurm state {state})" if state else ""
    return f"job {job.job_id}{what} before it wrote its result{seen}; log: {job.paths.stderr}; {RESUME}"


def attach(executor, todo: list[PlannedRun]) -> list[tuple[PlannedRun, Any]]:
    """The runs of `todo` whose job, submitted by an earlier call (job_ids.json), is still pending or
    running, each with that job: the sweep waits for them rather than submit them a second time. The
    other jobs have ended: their rows were gathered from the run directories, and the runs without one
    are submitted again."""
    saved = _saved_job_ids(executor.folder)
    found = [
        (run, saved[run.key]["job"])
        for run in todo
        if saved.get(run.key, {}).get("cluster") == executor.cluster  # a local pid is no Slurm id
    ]
    if not found:
        return []
    submitit = submitit_module()
    if executor.cluster != "slurm":
        jobs = [
            submitit.LocalJob(executor.folder, job_id, process=_EarlierController(job_id, executor.folder))
            for _, job_id in found
        ]
        return [(run, job) for (run, _), job in zip(found, jobs) if job.state == "RUNNING"]
    jobs = [submitit.SlurmJob(executor.folder, job_id) for _, job_id in found]
    submitit.SlurmJob.watcher.update()  # one sacct call for them all
    return [
        (run, job)
        for (run, _), job in zip(found, jobs)
        if job.watcher.get_state(job.job_id, mode="cache").split(" ")[0].upper() in QUEUED_OR_RUNNING
    ]


class _EarlierController:
    """The controller process of a local job an earlier call started, as submitit's LocalJob polls it (it
    expects a Popen): not this process's child, so its pid (the job's id) and /proc say whether it still
    runs. Where there is no /proc (not Linux) it reads as ended, and the run is submitted again."""

    def __init__(self, job_id: str, folder: Path):
        self.cmdline = Path("/proc", job_id, "cmdline")
        self.folder = str(folder)

    def poll(self) -> int | None:
        try:
            args = self.cmdline.read_bytes().split(b"\0")
        except OSError:  # no such process
            return 0
        # The pid may be another process's since; a zombie's command line is empty.
        return None if self.folder.encode() in args else 0


def _save_job_ids(folder: Path, runs: list[PlannedRun], jobs, cluster: str) -> None:
    """Add the runs' job ids to job_ids.json as soon as they are submitted: if this process is stopped,
    the next call finds the jobs there."""
    saved = _saved_job_ids(folder)
    saved.update({run.key: {"job": job.job_id, "cluster": cluster} for run, job in zip(runs, jobs)})
    with writing(folder / JOB_IDS) as path:
        atomic_write_text(path, json.dumps(saved, indent=1) + "\n")


def _saved_job_ids(folder: Path) -> dict[str, dict[str, str]]:
    path = folder / JOB_IDS
    if not path.exists():
        return {}
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise OutputError(
            f"{path} cannot be read ({e}); move it away (runs whose jobs still run would then be "
            "submitted again) and run the command again"
        ) from None


def _raised(message: str) -> str:
    """The exception line of the traceback a FailedJobError quotes between two rules of dashes."""
    lines = [line.strip() for line in message.splitlines() if line.strip()]
    rules = [i for i, line in enumerate(lines) if set(line) == {"-"}]
    trace = lines[rules[0] + 1 : rules[1]] if len(rules) > 1 else lines
    return trace[-1] if trace else "an exception"
