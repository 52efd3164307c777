"""How many CPU threads a run uses, and how that follows the load of the machine.

PyTorch's default is a thread per core, and its OpenMP threads meet at a barrier after every operation:
when another program takes one of the cores, every operation waits for the thread that lost its core, and
a small model (thousands of small operations a step) runs at a fraction of one core's speed (0.2-0.3x of
its speed alone, measured beside a one-thread busy loop on 2 cores; docs/performance.md). One thread per
core that is actually free avoids that.

    threads = Threads.start(requested=None)   # before the first operation; .note says a busy machine
    ... every few hundred steps:  note = threads.check()   # follows the load; None when unchanged

`requested`: None chooses (and follows the load); N > 0 is N threads for the whole run, never changed (a
bit-identical rerun on any load); OLD (0) is PyTorch's own default, whatever the load (the behaviour
before vitcli chose). The ceiling is the cores this process may use (its affinity: a container's or a
Slurm allocation's), or OMP_NUM_THREADS where that is set: a launcher's share (`--nproc`, a sweep's
workers) or the user's own.

The load is what the other processes use of this process's cores, from /proc/stat (Linux; elsewhere the
machine counts as idle): the cores' busy time less this process's own CPU time over the same interval.
"""

from __future__ import annotations

import contextlib
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch

OLD = 0  # --threads 0: PyTorch's default thread count, unchanged by the load
START_WINDOW_S = 0.2  # how long the load is looked at before a run starts (10 ms ticks: 20 per core)
CHECK_EVERY_S = 2.0  # how often a run looks again; a change needs two looks in a row that agree
BUSY = 0.5  # of a core used by other processes: counted as taken (round half up)

_TORCH_DEFAULT = torch.get_num_threads()  # before anything here changed it: what OLD puts back


def cores() -> int:
    """The CPU cores this process may use (its affinity: a Slurm or container allocation, not the machine)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def ceiling() -> int:
    """The most threads a chosen count may have: OMP_NUM_THREADS where it is set, else the cores."""
    try:
        given = int(os.environ.get("OMP_NUM_THREADS", ""))
    except ValueError:
        given = 0
    return given if given > 0 else cores()


class LoadMeter:
    """What other processes use of this process's cores, in cores, between two looks."""

    STAT = Path("/proc/stat")

    def __init__(self) -> None:
        mine = os.sched_getaffinity(0) if hasattr(os, "sched_getaffinity") else range(os.cpu_count() or 1)
        self.allowed = {f"cpu{i}" for i in mine}
        self.last = self._read()

    def _read(self) -> tuple[float, float, float] | None:
        """(busy ticks, all ticks, this process's CPU seconds) now; None without /proc/stat."""
        try:
            lines = self.STAT.read_text().splitlines()
        except OSError:
            return None
        busy = total = 0
        for line in lines:
            name, *values = line.split()
            if name not in self.allowed:
                continue
            # user nice system idle iowait irq softirq steal (guest time is already inside user): idle and
            # iowait are free; steal is a hypervisor's other guests, as taken as any process's time.
            ticks = [int(v) for v in values[:8]]
            busy += sum(ticks) - ticks[3] - ticks[4]
            total += sum(ticks)
        own = time.process_time()  # every thread of this process
        return (busy, total, own) if total else None

    def others(self) -> float | None:
        """Cores used by other processes since the last look (and look again from here)."""
        now = self._read()
        before, self.last = self.last, now
        if now is None or before is None or now[1] <= before[1]:
            return None
        per_core = (now[1] - before[1]) / max(1, len(self.allowed))  # ticks that passed, per core
        tick = 1 / os.sysconf("SC_CLK_TCK")
        others = (now[0] - before[0]) - (now[2] - before[2]) / tick
        return max(0.0, others / per_core)


def free_threads(top: int, available: int, others: float | None) -> int:
    """One thread per core the others leave free, at most `top`, at least 1."""
    taken = 0 if others is None else int(others + (1 - BUSY))  # 0.5 of a core counts as taken
    return max(1, min(top, available - taken))


@dataclass
class Threads:
    """The run's thread count, and (when chosen) how it followed the load."""

    count: int
    requested: int | None
    top: int = 1
    note: str | None = None  # the start's one line when the machine was busy
    changes: list[int] = field(default_factory=list)  # the counts it changed to after the start, in order
    meter: LoadMeter | None = None
    _pending: int | None = None  # a count one look asked for, which the next look must confirm
    _next: float = 0.0
    first: int = field(init=False)  # the count at the start

    @classmethod
    def start(
        cls, requested: int | None, window: float = START_WINDOW_S, resumed_on: int | None = None
    ) -> Threads:
        """Set this process's threads for a run (intra-op now, inter-op where PyTorch still allows).
        `resumed_on`: a chosen count's run resumes on the count it stopped on (bit-identical), and follows
        the load from there."""
        if requested == OLD:
            threads = cls(_TORCH_DEFAULT, requested)
        elif requested is not None:
            threads = cls(requested, requested)
        elif ceiling() == 1:  # nothing to choose (a launcher's or a test runner's share, one core)
            threads = cls(1, None)
        else:
            meter, top = LoadMeter(), ceiling()
            if resumed_on is not None:
                count = resumed_on
            else:
                time.sleep(window)
                others = meter.others()
                count = free_threads(top, cores(), others)
            threads = cls(count, None, top, meter=meter, _next=time.monotonic() + CHECK_EVERY_S)
            if resumed_on is None and count < top:
                threads.note = (
                    f"the CPU is busy: other programs use {others:.1f} of {cores()} cores, so this run "
                    f"trains on {_count(count)} (and more once they are free); --threads N fixes the count"
                )
        _set(threads.count)
        return threads

    @property
    def following(self) -> bool:
        return self.meter is not None

    def check(self) -> str | None:
        """Look at the load again (at most every CHECK_EVERY_S); a line when the thread count changed."""
        if self.meter is None or time.monotonic() < self._next:
            return None
        self._next = time.monotonic() + CHECK_EVERY_S
        others = self.meter.others()
        wanted = free_threads(self.top, cores(), others)
        if wanted == self.count:
            self._pending = None
            return None
        if self._pending != wanted:  # one look is a moment; two in a row are a load
            self._pending = wanted
            return None
        self._pending, before = None, self.count
        self.count = wanted
        _set(wanted)
        why = f"other programs use {others:.1f} of {cores()} cores"
        self.changes.append(wanted)
        if wanted < before:
            return f"the CPU got busy ({why}): training on {_count(wanted)} now"
        return f"the CPU is freer ({why}): training on {_count(wanted)} now"

    @property
    def counts(self) -> list[int]:
        """The thread counts the run trained on, in order (one when it never changed)."""
        return [self.first, *self.changes]

    def describe(self) -> str:
        """The run table's words, short enough for its narrow column: the counts and who chose them."""
        if self.requested == OLD:
            how = "--threads 0"
        elif self.requested is not None:
            how = "--threads"
        else:
            how = "auto"
        return " then ".join(str(n) for n in self.counts) + f" ({how})"

    def __post_init__(self) -> None:
        self.first = self.count


def _count(n: int) -> str:
    return f"{n} thread" + ("" if n == 1 else "s")


def _set(count: int) -> None:
    torch.set_num_threads(count)
    # Inter-op threads can be set only before the process's first inter-op work: a second run in the same
    # process keeps the first's.
    with contextlib.suppress(RuntimeError):
        torch.set_num_interop_threads(count)
