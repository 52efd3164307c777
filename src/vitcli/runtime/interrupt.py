"""Stopping a run well: Ctrl-C, SIGTERM (what Slurm and other schedulers send) or SIGHUP (a closed
terminal) asks the run to stop after the step in hand, and the run writes its state before it ends; a
second signal stops at once.

    with GracefulStop() as stop:
        fit(..., stop=stop)      # stop() turns true at the first signal

Stopping at once corrupts nothing either: every file is written to a temporary file and renamed, and the
state of the last finished epoch stays on disk.
"""

from __future__ import annotations

import signal
import threading
import time


class RunStopped(Exception):  # noqa: N818 - reads as what happened: the run stopped
    """A run stopped by a signal after writing its state; `str()` says how to resume it."""


class StoppedAtOnce(KeyboardInterrupt):  # noqa: N818 - a Ctrl-C, as the rest of Python sees it
    """Ctrl-C outside a run, or the second one in a run. A subclass, not KeyboardInterrupt itself: CPython
    (3.11 at least) marks a bare KeyboardInterrupt that passes through code run by eval/exec of a string
    (namedtuple does that, and imports reach it) as unhandled even when it is caught, and `python -m
    vitcli` then dies by SIGINT (exit -2) instead of exiting 130. It checks the exact type, so a subclass
    is left alone."""


def stop_at_once(signum=None, frame=None) -> None:
    raise StoppedAtOnce


def ctrl_c_stops_at_once() -> None:
    """Python's own SIGINT handler raises a bare KeyboardInterrupt; the command line uses this one, which
    GracefulStop also puts back when a run ends."""
    signal.signal(signal.SIGINT, stop_at_once)


class GracefulStop:
    """`repeat_window`: seconds after the first signal in which another counts as the same one. Under
    torchrun one Ctrl-C reaches each worker twice, from the terminal and forwarded by torchrun's agent."""

    # SIGHUP: a closed terminal or an ended ssh session stops a run as a scheduler's SIGTERM does, with
    # its state saved, rather than killing it with the epoch in hand lost (Windows has no SIGHUP).
    SIGNALS = (signal.SIGINT, signal.SIGTERM, *((signal.SIGHUP,) if hasattr(signal, "SIGHUP") else ()))

    def __init__(self, repeat_window: float = 0.0) -> None:
        self.requested, self.first = False, 0.0
        self.repeat_window = repeat_window
        self.previous: dict = {}

    def __call__(self) -> bool:
        return self.requested

    def _handle(self, signum, frame) -> None:
        if not self.requested:
            self.requested, self.first = True, time.monotonic()
        elif time.monotonic() - self.first > self.repeat_window:
            stop_at_once()  # the second signal: stop now (atomic writes keep every file whole)

    def __enter__(self) -> GracefulStop:
        # Python lets only the main thread set handlers; elsewhere a run keeps the default behaviour.
        if threading.current_thread() is threading.main_thread():
            for sig in self.SIGNALS:
                self.previous[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc) -> None:
        for sig, handler in self.previous.items():
            signal.signal(sig, handler)
