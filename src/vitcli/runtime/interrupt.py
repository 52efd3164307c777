"""Stopping a run well: Ctrl-C, SIGTERM (what Slurm and other schedulers send) or SIGHUP (a closed
terminal) asks the run to stop after the step in hand, and the run writes its state before it ends; a
second signal stops at once.

    with GracefulStop() as stop:
        fit(..., stop=stop)      # stop() turns true at the first signal

Stopping at once corrupts nothing either: every file is written to a temporary file and renamed, and the
state of the last finished epoch stays on disk.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import time


class RunStopped(Exception):  # noqa: N818 - reads as what happened: the run stopped
    """A run stopped by a signal after writing its state; `str()` says how to resume it. SIGTERM and SIGHUP
    (a scheduler's stop, a closed terminal) end a run with this one; Ctrl-C with RunInterrupted."""


class RunInterrupted(RunStopped, KeyboardInterrupt):  # noqa: N818 - a Ctrl-C, as the rest of Python sees it
    """A run stopped by Ctrl-C (SIGINT) after writing its state. Also a KeyboardInterrupt, so that the code
    that called the run stops as at any other Ctrl-C: pytest ends its session at the first press (a
    RunStopped was one failed test, and the next test started), and a script stops.

    Still a RunStopped, and so an Exception, so that the handlers that took a stopped run take it as
    before: the command line's (one line saying how to resume, exit 130), a sweep's, submitit's (which
    saves a job's error only for an Exception); and it pickles by its message, as a sweep's worker sends
    it. CPython accepts the two bases: their instances have the same layout. Not a bare KeyboardInterrupt,
    for StoppedAtOnce's reason; uncaught, it therefore ends a script with its traceback and exit 1, not by
    SIGINT as a bare one does."""


class StoppedAtOnce(KeyboardInterrupt):  # noqa: N818 - a Ctrl-C, as the rest of Python sees it
    """Ctrl-C outside a run, or the second one in a run. A subclass, not KeyboardInterrupt itself: CPython
    (3.11 at least) marks a bare KeyboardInterrupt that passes through code run by eval/exec of a string
    (namedtuple does that, and imports reach it) as unhandled even when it is caught, and `python -m
    vitcli` then dies by SIGINT (exit -2) instead of exiting 130. It checks the exact type, so a subclass
    is left alone."""


# What a Ctrl-C that stops a command at once says: every file is written to a temporary name and renamed.
STOPPED = "stopped at once; no file was half-written (each is written whole or not at all)"
_stopping = False  # a StoppedAtOnce is on its way up
# Ctrl-C is ignored because vitcli ignored it (a StoppedAtOnce on its way up, a command ending), not because
# the process was started so (a pytest-xdist worker ignores SIGINT: its controller takes the Ctrl-C).
_ignoring = False
IMPORT_RETRY_S = 0.05  # a Ctrl-C that lands in an import is delivered again this much later


def stop_at_once(signum=None, frame=None) -> None:
    """Raise StoppedAtOnce, once. Further Ctrl-C are ignored from then on: a second one 0.1 s later would
    land in the first one's cleanup (removing a temporary file, printing its line) or, once Python shuts
    down and puts the default handler back, kill the process with no word (exit -2, not 130)."""
    global _stopping
    if signum is not None and _importing(frame):
        # Raised inside an import, it can leave a C extension half-initialised (numpy: "cannot load module
        # more than once per process" at the next import of it): delivered again once the import is done.
        threading.Timer(IMPORT_RETRY_S, os.kill, (os.getpid(), signal.SIGINT)).start()
        return
    _ignore_ctrl_c()
    _stopping = True
    raise StoppedAtOnce


def _importing(frame) -> bool:
    """Whether `frame` (where a signal landed) is inside Python's import machinery."""
    while frame is not None:
        if frame.f_code.co_filename.startswith("<frozen importlib"):
            return True
        frame = frame.f_back
    return False


def stopped_at_once() -> bool:
    """Whether a Ctrl-C has been raised as StoppedAtOnce (and may have come out as another error)."""
    return _stopping


def command_starting() -> None:
    """A command's work starts: a StoppedAtOnce that an earlier command in this process met (a test
    runner's process) is forgotten; one on its way up in this command (Ctrl-C then ignored by vitcli) is
    not."""
    global _stopping
    if not (_ignoring and signal.getsignal(signal.SIGINT) is signal.SIG_IGN):
        _stopping = False


def ctrl_c_stops_at_once() -> None:
    """Python's own SIGINT handler raises a bare KeyboardInterrupt; the command line uses this one, which
    GracefulStop also puts back when a run ends."""
    global _stopping, _ignoring
    _stopping = _ignoring = False
    signal.signal(signal.SIGINT, stop_at_once)
    sys.unraisablehook = _redeliver


def command_ending() -> None:
    """The command's work is done, or stopped, and what is left is saying so: a Ctrl-C now would cut that
    line, or kill the process as Python shuts down (exit -2), and stops nothing. A complete export, say,
    then ends with exit 0 and "wrote", not exit 130 after it."""
    if signal.getsignal(signal.SIGINT) is stop_at_once:  # the command line's, not a test runner's
        _ignore_ctrl_c()


def _ignore_ctrl_c() -> None:
    global _ignoring
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        _ignoring = True


def _redeliver(unraisable) -> None:
    """A Ctrl-C that lands in a destructor or a finaliser cannot stop anything there: Python prints it as
    "Exception ignored" and carries on. Deliver it again, to the code the destructor interrupted."""
    global _stopping
    if isinstance(unraisable.exc_value, StoppedAtOnce):
        if _stopping and not sys.is_finalizing():  # not while Python shuts down: stopping anyway
            _stopping = False
            signal.signal(signal.SIGINT, stop_at_once)
            # From a thread, a moment later: raised now, it would land in this hook, which cannot raise.
            threading.Timer(0.01, os.kill, (os.getpid(), signal.SIGINT)).start()
        return
    sys.__unraisablehook__(unraisable)


class GracefulStop:
    """`repeat_window`: seconds after the first signal in which another counts as the same one. Under
    torchrun one Ctrl-C reaches each worker twice, from the terminal and forwarded by torchrun's agent."""

    # SIGHUP: a closed terminal or an ended ssh session stops a run as a scheduler's SIGTERM does, with
    # its state saved, rather than killing it with the epoch in hand lost (Windows has no SIGHUP).
    SIGNALS = (signal.SIGINT, signal.SIGTERM, *((signal.SIGHUP,) if hasattr(signal, "SIGHUP") else ()))

    def __init__(self, repeat_window: float = 0.0) -> None:
        self.requested, self.first = False, 0.0
        self.signum: int | None = None  # the signal that asked for the stop
        self.repeat_window = repeat_window
        self.previous: dict = {}

    def __call__(self) -> bool:
        return self.requested

    def _handle(self, signum, frame) -> None:
        if not self.requested:
            self.requested, self.first, self.signum = True, time.monotonic(), signum
        elif time.monotonic() - self.first > self.repeat_window:
            stop_at_once()  # the second signal: stop now (atomic writes keep every file whole)

    def stopped(self, message: str) -> RunStopped:
        """What the run it stopped raises: RunInterrupted after a Ctrl-C, RunStopped after another signal
        (or when another rank of a data-parallel run got the signal)."""
        return (RunInterrupted if self.signum == signal.SIGINT else RunStopped)(message)

    def __enter__(self) -> GracefulStop:
        global _stopping
        _stopping = False
        # Python lets only the main thread set handlers; elsewhere a run keeps the default behaviour.
        if threading.current_thread() is threading.main_thread():
            for sig in self.SIGNALS:
                self.previous[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc) -> None:
        global _ignoring
        for sig, handler in self.previous.items():
            if _stopping and handler is stop_at_once:  # the command line's, and the run stopped at once:
                continue  # Ctrl-C stays ignored while the command ends (stop_at_once)
            signal.signal(sig, handler)
            if sig == signal.SIGINT:  # the handler from before the run is back, ignoring or not: not vitcli's
                _ignoring = False
