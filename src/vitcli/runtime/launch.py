"""`vitcli train --nproc N`: the same command in N processes on this machine, started by torchrun's own
launcher (`torch.distributed.launcher`, the elastic agent behind `torchrun --standalone`), so that one
process or N, and torchrun typed by hand, run the same code (`vitcli.runtime.distributed`).

    exit_code = launch(2, ["train", "--epochs", "3"])     # python -m vitcli train --epochs 3, twice

Rank 0 speaks for every rank; the launcher speaks where it cannot: a rank that is lost (killed by a
signal) is one line naming it and how to resume (RankLost), and an error that only another rank hit is
that rank's line, which its process, quiet like every rank but 0, left in a folder the launcher made.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import sys
import tempfile
import uuid
from pathlib import Path

from vitcli.errors import EXIT_ERROR, EXIT_RANK_LOST, EXIT_STOPPED, ConfigError, RankLost, VitcliError
from vitcli.runtime.ranks import launched

NPROC = "--nproc"

# The folder where the processes --nproc starts leave what the launcher may have to say for them: each
# rank's error line (`rank-N`) and, from rank 0 once it holds the run directory, what to do after a lost
# rank (AFTER_LOSS). Its path is in this variable, which only --nproc's processes have.
NOTES = "VITCLI_NPROC_NOTES"
AFTER_LOSS = "after-loss"
# after a rank lost before the run held its directory (a resume too: it had not started again)
NOT_STARTED = "the run had not started training: run the same command again"


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


def started_by_nproc() -> bool:
    """Whether --nproc's launcher started this process (and so reports a lost rank itself)."""
    return NOTES in os.environ


def leave_note(name: str, text: str) -> None:
    """Leave `text` for --nproc's launcher under `name`; nothing in a process it did not start."""
    if started_by_nproc():
        Path(os.environ[NOTES], name).write_text(text, encoding="utf-8")


def leave_error(message: str) -> None:
    """This rank's error line, for the launcher to print if only this rank hit it (the others are quiet)."""
    leave_note(f"rank-{launched().rank}", message)


@contextlib.contextmanager
def _notes_folder():
    """A folder for the processes' notes, named in their environment (which they inherit) for the length
    of the launch; the launcher's own environment is left as it was."""
    with tempfile.TemporaryDirectory(prefix="vitcli-nproc-") as folder:
        os.environ[NOTES] = folder
        try:
            yield Path(folder)
        finally:
            del os.environ[NOTES]


def launch(nproc: int, args: list[str]) -> int:
    """Run `python -m vitcli ARGS` in `nproc` processes joined as one data-parallel run; 0, 130 after
    Ctrl-C, else the exit code of the rank that failed first (see `failed`), which may raise the one line
    the launcher says for it."""
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
    with _threads_per_process(nproc), _notes_folder() as notes:
        try:
            elastic_launch(config, sys.executable)("-m", "vitcli", *args)
        except ChildFailedError as e:
            return failed({rank: failure.exitcode for rank, failure in e.failures.items()}, nproc, notes)
        except SignalException:
            return EXIT_STOPPED
    return 0


def failed(exit_codes: dict[int, int], nproc: int, notes: Path) -> int:
    """The exit code of a launch whose processes did not all succeed, from the failed ranks' exit codes (<0:
    killed by that signal) in the order the agent saw them end; RankLost, or a VitcliError with another
    rank's line, where the launcher is the one to say what happened.

    The agent sees the first rank end (it polls every 0.1 s), then stops the others (SIGTERM), so the
    first in that order is the cause, except the ranks that saw another one gone (EXIT_RANK_LOST): they
    may end before the agent's next look, and say nothing under --nproc."""
    causes = [(rank, code) for rank, code in exit_codes.items() if code != EXIT_RANK_LOST]
    if not causes:  # only ranks that lost another: the lost one ended without an error (exit 0)
        raise RankLost(f"a process of this run ended before the others; {_after_loss(notes)}")
    rank, code = causes[0]
    line = _read(notes / f"rank-{rank}")
    # A rank that left its error line failed by that error, even if the agent's SIGTERM then reached it
    # while it was still ending (a loaded machine): only one that left none was lost.
    if code < 0 and line is None:
        raise RankLost(f"rank {rank} of {nproc} was lost (killed by {_signal(-code)}); {_after_loss(notes)}")
    # Rank 0 printed its own line (an error, a stop, a traceback) when it ended by itself with an error;
    # else only the failed rank, quiet, knows what went wrong.
    zero = exit_codes.get(0, 0)
    if rank != 0 and (zero <= 0 or zero == EXIT_RANK_LOST) and line:
        raise VitcliError(f"rank {rank} of {nproc}: {line}")
    return code if code > 0 else EXIT_ERROR


def _signal(number: int) -> str:
    try:
        return f"signal {number}, {signal.Signals(number).name}"
    except ValueError:  # not one Python names
        return f"signal {number}"


def _after_loss(notes: Path) -> str:
    return _read(notes / AFTER_LOSS) or NOT_STARTED


def _read(path: Path) -> str | None:
    try:
        return path.read_text(encoding="utf-8")
    except OSError:  # not left
        return None
