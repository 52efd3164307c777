"""`vitcli train --nproc N`: the same command in N processes on this machine, started by torchrun's own
launcher (`torch.distributed.launcher`, the elastic agent behind `torchrun --standalone`), so that one
process or N, and torchrun typed by hand, run the same code (`vitcli.runtime.distributed`).

    exit_code = launch(2, ["train", "--epochs", "3"])     # python -m vitcli train --epochs 3, twice
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import uuid

from vitcli.errors import ConfigError

NPROC = "--nproc"


def without_nproc(args: list[str]) -> list[str]:
    """A command line without its --nproc N (the processes it starts are the N)."""
    kept, skip = [], False
    for arg in args:
        if skip:
            skip = False
        elif arg == NPROC:
            skip = True
        elif not arg.startswith(NPROC + "="):
            kept.append(arg)
    return kept


def check_nproc(nproc: int) -> None:
    if nproc < 1:
        raise ConfigError(f"--nproc must be at least 1, got {nproc}")
    if "WORLD_SIZE" in os.environ:
        raise ConfigError("--nproc starts its own processes; under torchrun leave it out")


@contextlib.contextmanager
def _threads_per_process(nproc: int):
    """The CPU's threads divided between the processes (torchrun's own default is one each), unless the
    user set OMP_NUM_THREADS; the processes inherit the environment."""
    if "OMP_NUM_THREADS" in os.environ:
        yield
        return
    os.environ["OMP_NUM_THREADS"] = str(max(1, (os.cpu_count() or 1) // nproc))
    try:
        yield
    finally:
        del os.environ["OMP_NUM_THREADS"]


def launch(nproc: int, args: list[str]) -> int:
    """Run `python -m vitcli ARGS` in `nproc` processes joined as one data-parallel run; the exit code of
    the first that failed (each prints its own error: rank 0 speaks for all), 130 after Ctrl-C, else 0."""
    # torchrun's launcher, needed only for --nproc
    from torch.distributed.elastic.multiprocessing import SignalException
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.launcher.api import LaunchConfig, elastic_launch

    config = LaunchConfig(
        min_nodes=1,
        max_nodes=1,
        nproc_per_node=nproc,
        run_id=str(uuid.uuid4()),
        rdzv_backend="c10d",  # torchrun --standalone: a rendezvous on a free local port
        rdzv_endpoint="localhost:0",
        max_restarts=0,
        monitor_interval=0.1,
    )
    # The agent logs a worker's failure, and Ctrl-C, with pids and its own source lines; the workers' own
    # lines say what happened. Its loggers each have their own level, so each is quietened.
    for name in list(logging.root.manager.loggerDict):
        if name.startswith("torch.distributed.elastic"):
            logging.getLogger(name).setLevel(logging.CRITICAL)
    with _threads_per_process(nproc):
        try:
            elastic_launch(config, sys.executable)("-m", "vitcli", *args)
        except ChildFailedError as e:
            _, failure = e.get_first_failure()
            return failure.exitcode if failure.exitcode > 0 else 130  # < 0: killed by a signal
        except SignalException:
            return 130
    return 0
