"""Parallel sweeps: up to N runs at once on this machine, each in a worker process (`vitcli sweep --jobs N`).

    rows = run_sweep(sweep, on_event=print, jobs=2)      # vitcli.sweeps.execute

The workers are a concurrent.futures ProcessPoolExecutor started with "spawn" (fresh interpreters: no
CUDA state or threads copied from this process). When the runs use a GPU, each worker gets a GPU of its
own (CUDA_VISIBLE_DEVICES, set before CUDA starts), so --jobs may not exceed the GPUs; on the CPU, N
workers get cores // N threads each. A worker trains a run (`sweep_attempt`) and returns its row; this
process records the rows as they arrive, so results.jsonl keeps its one writer.

Ctrl-C in a terminal reaches every process: an idle worker ignores it, a running run stops after its step
and saves its state (its GracefulStop), and this process starts no more runs, records the rows of runs
that finish meanwhile, and raises RunStopped. A second Ctrl-C stops the runs at once. SIGTERM is taken as
Ctrl-C. A signal to this process alone (`kill PID`) stops starting runs and lets the running ones finish;
a second one passes SIGTERM on to the workers, which stops their runs as a first Ctrl-C would.

kill -9 of this process (or its death by any other means) ends the workers too (vitcli.runtime.orphans):
a running run gets SIGTERM, stops after its step and saves its state, and its worker exits; an idle
worker exits at once. The next call goes on with the runs not recorded, a stopped one from its state.
"""

from __future__ import annotations

import contextlib
import dataclasses
import multiprocessing
import os
import signal
import threading
from collections.abc import Callable
from concurrent.futures import Future, ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool
from typing import Any

import torch

from vitcli.errors import ConfigError, VitcliError
from vitcli.runtime.devices import resolve_device
from vitcli.runtime.interrupt import RunStopped
from vitcli.runtime.orphans import die_with_parent, working
from vitcli.runtime.threads import cores
from vitcli.sweeps.attempt import attempt
from vitcli.sweeps.plan import PlannedRun, Sweep

SIGNALS = (signal.SIGINT, signal.SIGTERM)
Record = Callable[[PlannedRun, dict[str, Any]], None]

_stopping = None  # in a worker: the sweep's stop flag (a multiprocessing Event)


def job_gpus(sweep: Sweep, jobs: int) -> list[str] | None:
    """The GPUs `jobs` workers get, one each (CUDA_VISIBLE_DEVICES ids), or None when the runs train on
    the CPU; ConfigError for a --jobs this machine cannot give."""
    if jobs < 1:
        raise ConfigError(f"--jobs must be at least 1, got {jobs}; --jobs 1 trains one run at a time")
    devices = {run.config.train.device: resolve_device(run.config.train.device) for run in sweep.runs}
    if jobs == 1 or all(device.type != "cuda" for device in devices.values()):
        return None
    pinned = [name for name, device in devices.items() if device.type == "cuda" and device.index is not None]
    if pinned:
        raise ConfigError(
            f"--jobs {jobs} gives each job a GPU of its own, but --device {pinned[0]} names one; "
            "use --device cuda (or auto)"
        )
    gpus = _visible_gpus()
    if jobs > len(gpus):
        raise ConfigError(
            f"--jobs {jobs} is more than the {len(gpus)} GPU{'s' * (len(gpus) != 1)} here (one run per GPU); "
            f"use --jobs {len(gpus)} or fewer, or --device cpu for {jobs} CPU processes"
        )
    return gpus[:jobs]


def _visible_gpus() -> list[str]:
    """This process's GPUs as CUDA_VISIBLE_DEVICES names them, so a worker sees one of these, not GPU 0."""
    count = torch.cuda.device_count()
    listed = [g.strip() for g in os.environ.get("CUDA_VISIBLE_DEVICES", "").split(",") if g.strip()]
    return listed[:count] if listed else [str(i) for i in range(count)]


def run_in_processes(sweep: Sweep, todo: list[PlannedRun], jobs: int, record: Record) -> None:
    """Train `todo` in up to `jobs` worker processes; `record(run, row)` is called here as each run ends.
    Raises RunStopped when a Ctrl-C or a signal stopped the sweep (the rows of finished runs recorded)."""
    if not todo:
        return
    gpus = job_gpus(sweep, jobs)
    workers = min(jobs, len(todo))
    context = multiprocessing.get_context("spawn")
    gpu_ids, started, stopping = context.SimpleQueue(), context.SimpleQueue(), context.Event()
    for gpu in (gpus or [])[:workers]:
        gpu_ids.put(gpu)
    # The workers watch `alive` to end with this process; only this process holds `end` ("spawn" gives
    # a worker only the files passed to it), so the pipe closes when this process dies, however it dies.
    alive, end = context.Pipe(duplex=False)
    setup = (max(1, cores() // workers), gpu_ids if gpus else None, started, stopping, os.getpid(), alive)
    light = dataclasses.replace(sweep, runs=[])  # what a row needs of its sweep, without every planned run
    with signals_ignored():  # inherited: a worker that is still starting ignores Ctrl-C too
        pool = ProcessPoolExecutor(workers, context, initializer=_start_worker, initargs=setup)
        futures = {pool.submit(_run_in_worker, light, run): run for run in todo}
    try:
        with _sigterm_interrupts():
            try:
                _collect(futures, record)
            except (KeyboardInterrupt, RunStopped, BrokenProcessPool) as e:
                _stop(futures, record, stopping, started)
                raise _stopped(sweep, e) from None
            except BaseException:  # a results file that cannot be written, or a bug: stop, and say so
                _stop(futures, record, stopping, started)
                raise
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
        end.close()  # after the workers ended: closed sooner, it would end them
        alive.close()


def _collect(futures: dict[Future, PlannedRun], record: Record, stopping: bool = False) -> None:
    """Record each run's row as its worker returns it, taking its future out of `futures`; a worker's
    exception (a stopped run, a dead worker, a bug) is raised here, or, once `stopping`, passed over."""
    for future in as_completed(list(futures)):
        run = futures.pop(future)  # handled once, whether this pass ends normally or not
        if future.cancelled():
            continue
        error = future.exception()
        if error is None:
            record(run, future.result())
        elif not stopping:
            raise error


def _stop(futures, record: Record, stopping, started) -> None:
    """Start no more runs, and record the rows of the running ones that finish; a second Ctrl-C passes
    SIGTERM on to the workers (to each its first when the Ctrl-C reached only this process) and gives up."""
    stopping.set()
    for future in futures:
        future.cancel()  # those no worker has taken yet
    try:
        _collect(futures, record, stopping=True)
    except KeyboardInterrupt:
        while not started.empty():
            with contextlib.suppress(ProcessLookupError):
                os.kill(started.get(), signal.SIGTERM)
        raise


def _stopped(sweep: Sweep, reason: BaseException) -> VitcliError | RunStopped:
    if isinstance(reason, BrokenProcessPool):
        return VitcliError(
            "a worker process of the sweep died (killed, or out of memory: try fewer --jobs); finished "
            f"results are kept in {sweep.dir}; run the same command to go on"
        )
    return RunStopped(
        f"finished results are kept in {sweep.dir}, and stopped runs saved their state; "
        "run the same command to resume"
    )


# --- in the worker processes -------------------------------------------------------------------------


def _start_worker(threads: int, gpu_ids, started, stopping, parent: int, alive) -> None:
    """Set up a worker before its first run: its GPU before anything starts CUDA, its share of the CPU
    threads, Ctrl-C ignored between runs (an idle worker that died of it would break the pool), and its
    end when the sweep's process ends."""
    global _stopping
    for sig in SIGNALS:
        signal.signal(sig, signal.SIG_IGN)
    die_with_parent(parent, alive)
    if gpu_ids is not None:
        os.environ["CUDA_VISIBLE_DEVICES"] = gpu_ids.get()
    torch.set_num_threads(threads)
    os.environ["OMP_NUM_THREADS"] = str(threads)  # the ceiling of the thread count its runs choose
    started.put(os.getpid())
    _stopping = stopping


def _run_in_worker(sweep: Sweep, run: PlannedRun) -> dict[str, Any]:
    """A run's row, in a worker. While it runs, Ctrl-C and SIGTERM stop it: at once while it loads, after
    the step once it trains (its GracefulStop, which saves its state); a worker of a stopping sweep starts
    nothing."""
    previous = {sig: signal.signal(sig, signal.default_int_handler) for sig in SIGNALS}
    try:
        with working():  # inside the handlers: the sweep's process dying stops the run as SIGTERM does
            if _stopping is not None and _stopping.is_set():
                raise RunStopped(f"{run.label} was not started: the sweep is stopping")
            return attempt(sweep, run, lambda event: None)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


# --- signals in this process -------------------------------------------------------------------------


def _main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()  # the only thread that may set handlers


@contextlib.contextmanager
def signals_ignored():
    """Ctrl-C and SIGTERM ignored in the block, and so in the processes started in it: they inherit it."""
    previous = {sig: signal.signal(sig, signal.SIG_IGN) for sig in SIGNALS} if _main_thread() else {}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


@contextlib.contextmanager
def _sigterm_interrupts():
    """SIGTERM as a Ctrl-C while the workers run, so that it stops the sweep as Ctrl-C does."""
    previous = signal.signal(signal.SIGTERM, signal.default_int_handler) if _main_thread() else None
    try:
        yield
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
