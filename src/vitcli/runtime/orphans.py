"""Worker processes that end with the process that started them: `kill -9` of a sweep must not leave its
workers alive, adopted by PID 1 and blocked for ever on a pipe to the dead process, each holding its
memory.

    alive, end = context.Pipe(duplex=False)  # in the parent, which keeps `end` open while workers live
    die_with_parent(os.getpid(), alive)      # in each worker (the parent's pid and `alive` passed to it)
    with working():                          # in the worker, around each task, its SIGTERM handler set
        ...

However the parent ends, the system closes its end of the pipe, and a watchdog thread in the worker sees
the end of the pipe (on every OS). An idle worker then exits at once. A working one is sent SIGTERM, which
stops a run after its step with its state saved (GracefulStop), and exits when its task ends, or after
GRACE_S whatever it is doing. On Linux the kernel sends that SIGTERM the moment the parent dies
(PR_SET_PDEATHSIG); elsewhere the watchdog does.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import sys
import threading

from vitcli.runtime.interrupt import RunStopped

# Seconds a worker whose parent died has to finish its task: a run stops after its step, or after the
# validation pass in hand, then writes its state; one still going after that ends as kill -9 would end it,
# with the state of its last finished epoch on disk.
GRACE_S = 60.0
PR_SET_PDEATHSIG = 1  # <linux/prctl.h>

_parent: int | None = None  # in a worker: the pid of the process that started it
_idle = threading.Event()  # set while the worker does no task
_idle.set()


def die_with_parent(parent: int, alive) -> None:
    """In a worker process, first thing: end it when the process `parent` ends. `alive` is the read end of
    a pipe whose write end only the parent holds; nothing is ever sent on it."""
    global _parent
    _parent = parent
    # SIGTERM, not SIGKILL: a run in hand stops after its step and saves its state rather than losing the
    # epoch, and an idle worker (which ignores SIGTERM between runs, as it does Ctrl-C) is ended by the
    # watchdog below. The kernel sends it when the parent *thread* that started this process exits: a
    # "spawn" pool starts its workers from the thread that submits the tasks (concurrent.futures.process,
    # CPython 3.11 to 3.14; its management thread only replaces a worker, with max_tasks_per_child),
    # and both threads live until the pool is shut down, so here the thread's end is the parent's.
    signalled = _death_signal(signal.SIGTERM)
    if os.getppid() != parent:  # it died before the kernel was asked: no signal will come
        os._exit(1)
    threading.Thread(target=_watch, args=(alive, signalled), name="vitcli-parent-watch", daemon=True).start()


@contextlib.contextmanager
def working():
    """Around a task in a worker, once the task's SIGTERM handler is set (the watchdog may send SIGTERM as
    soon as the worker is not idle): no task starts after the parent died, and one that is running when
    it dies gets GRACE_S to end."""
    _idle.clear()
    try:
        # The kernel's SIGTERM may have come while this worker was idle, and been ignored.
        if _parent is not None and os.getppid() != _parent:
            raise RunStopped("the process that started this worker is gone")
        yield
    finally:
        _idle.set()


def _death_signal(signum: int) -> bool:
    """Ask Linux to send `signum` to this process when its parent ends; False where it cannot."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return libc.prctl(PR_SET_PDEATHSIG, ctypes.c_ulong(signum)) == 0
    except (OSError, AttributeError):  # no C library to call, or no prctl in it
        return False


def _watch(alive, signalled: bool) -> None:
    with contextlib.suppress(EOFError, OSError):  # POSIX says EOFError, Windows a broken pipe
        alive.recv()  # returns only when the parent's end closes: nothing is ever sent
    if not _idle.is_set():
        if not signalled:
            signal.raise_signal(signal.SIGTERM)  # the stop the kernel sends on Linux
        _idle.wait(GRACE_S)
    os._exit(1)  # no one is left to read the exit status, or a result
