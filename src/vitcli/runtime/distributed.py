"""Data-parallel training across processes, on PyTorch's own engine: torchrun starts the processes and
sets RANK, WORLD_SIZE and LOCAL_RANK; this module joins them into a process group (NCCL on CUDA, gloo
on the CPU) and holds the few collectives a run needs.

    with process_group(device) as device:    # this rank's device; a no-op in a single process
        current().rank, current().world       # 0 and 1 without torchrun

Every rank trains the same model on its own slice of each global batch (`Batches(shard=...)`), DDP
averages the gradients, and the metrics are summed over the ranks (`all_sum`), so every rank holds the
same weights and agrees on every number. Only rank 0 writes the run directory (`on_main`).

A rank whose process is gone (kill -9, a crash, an error only it hit) leaves the others failing in their
next collective; `lost_ranks` makes that one line (RankLost) instead of gloo's traceback.
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Callable
from typing import TypeVar

import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel

from vitcli.errors import ConfigError, RankLost
from vitcli.runtime.launch import NOT_STARTED
from vitcli.runtime.ranks import Ranks, launched

T = TypeVar("T")


def current() -> Ranks:
    """The ranks of the process group this process is in (one process when there is none)."""
    if dist.is_available() and dist.is_initialized():
        return Ranks(dist.get_rank(), dist.get_world_size(), launched().local_rank)
    return Ranks()


def rank_device(device: torch.device, ranks: Ranks) -> torch.device:
    """Each rank's device: its own GPU (cuda:LOCAL_RANK) on CUDA, the CPU otherwise."""
    if device.type != "cuda" or not ranks.distributed:
        return device
    if device.index not in (None, ranks.local_rank):
        raise ConfigError(
            f"--device {device}: each of the {ranks.world} processes takes the GPU of its local rank; "
            "pass --device cuda (or auto)"
        )
    if ranks.local_rank >= torch.cuda.device_count():
        raise ConfigError(
            f"local rank {ranks.local_rank} has no GPU: there are {torch.cuda.device_count()}; start at most "
            "that many processes per machine"
        )
    return torch.device("cuda", ranks.local_rank)


@contextlib.contextmanager
def process_group(device: torch.device):
    """Join torchrun's processes (when there are several) for the length of a run; yields this rank's
    device. A group the caller already made is used as it is and left open."""
    ranks = launched()
    if not ranks.distributed or dist.is_initialized():
        yield rank_device(device, current())
        return
    device = rank_device(device, ranks)
    if device.type == "cuda":
        torch.cuda.set_device(device)
    dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    try:
        # Before the run directory is made (a run's own lost_ranks says how to resume it once it is)
        with lost_ranks(NOT_STARTED):
            yield device
    finally:
        dist.destroy_process_group()


@contextlib.contextmanager
def lost_ranks(what_to_do: str):
    """A collective that fails because another rank's process is gone, as RankLost: one line ending in
    `what_to_do`, where the backend's error is a traceback of its internals. The ranks left cannot go on
    without the lost one, so they stop here; `--nproc`'s launcher names the lost rank (launch.py)."""
    try:
        yield
    except RuntimeError as e:
        if not _connection_lost(e):
            raise
        raise RankLost(
            f"another process of this data-parallel run is gone (killed, or ended by an error of its own); "
            f"{what_to_do}"
        ) from None


def _connection_lost(error: RuntimeError) -> bool:
    """Whether `error` says that the connection to another rank broke. gloo raises a plain RuntimeError,
    named by its transport's source file ("[.../gloo/transport/tcp/pair.cc:561] Connection closed by
    peer"); torch's own connection errors (the rendezvous store's) are DistNetworkError."""
    return isinstance(error, dist.DistNetworkError) or "gloo/transport" in str(error)


def data_parallel(model: torch.nn.Module, device: torch.device) -> torch.nn.Module:
    """The model as a training step runs it: wrapped in DistributedDataParallel across several ranks (which
    averages the gradients in backward), itself in one process."""
    if not current().distributed:
        return model

    # A gray image's patch projection (D, 1, k, k) has two stride layouts for the same memory; DDP warns
    # that its gradient's differs from its bucket's, which costs nothing here.
    warnings.filterwarnings("ignore", message="Grad strides do not match bucket view strides")
    return DistributedDataParallel(model, device_ids=[device] if device.type == "cuda" else None)


@contextlib.contextmanager
def local_main_first():
    """The block on each machine's first rank, then on its other ranks: the first downloads the data set
    or the pretrained weights and fills the cache, and the others find them there."""
    ranks = current()
    if ranks.distributed and ranks.local_rank != 0:
        dist.barrier()
    yield
    if ranks.distributed and ranks.local_rank == 0:
        dist.barrier()


def own_draws(seed: int, epoch: int, step: int, device: torch.device, ranks: Ranks):
    """The step's forward pass draws (dropout, drop path) from a generator of this rank's own, seeded by
    (seed, epoch, step, rank), and leaves the global generator as it was. Every rank's global generator
    must stay the same, since mixup draws from it for the whole global batch; without this, every rank
    would also draw the same dropout masks for its rows. In one process: nothing changes."""
    if not ranks.distributed:
        return contextlib.nullcontext()
    # A tuple of ints hashes the same in every process (only str and bytes hashes are salted).
    return _seeded(hash((seed, epoch, step, ranks.rank)) & 0xFFFF_FFFF, device)


@contextlib.contextmanager
def _seeded(seed: int, device: torch.device):
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        torch.manual_seed(seed)
        yield


def all_sum(values: torch.Tensor) -> torch.Tensor:
    """`values` summed over every rank (a no-op in one process): a float64 tensor, so counts stay exact."""
    if current().distributed:
        values = values.double()
        dist.all_reduce(values)
    return values


def any_rank(flag: bool, device: torch.device) -> bool:
    """Whether `flag` is true on some rank: decisions that every rank must take at the same step (stop
    after Ctrl-C, which may reach the ranks a step apart)."""
    if not current().distributed:
        return flag
    return bool(all_sum(torch.tensor([float(flag)], device=device)).item())


def host_sums(*values: torch.Tensor) -> list[float]:
    """Scalar tensors summed over every rank and read back to the host (in one process, as they are)."""
    if not current().distributed:
        return [value.item() for value in values]
    return all_sum(torch.stack([value.double() for value in values])).tolist()


def stop_here(stop: Callable[[], bool], logged: bool, device: torch.device, ranks: Ranks) -> bool:
    """Whether training stops after this step. One process asks `stop()` after every step; several ranks
    must stop at the same step, and a signal reaches them a step or two apart, so they ask each other, at
    the steps where they sum their metrics (`logged`) anyway."""
    if not ranks.distributed:
        return stop()
    return logged and any_rank(stop(), device)


def on_main(work: Callable[[], T]) -> T | None:
    """Run `work` on rank 0 only (the run directory's writes); the other ranks get None. An error raised
    there is raised on every rank, so that none goes on to wait for rank 0 in a collective."""
    ranks = current()
    if not ranks.distributed:
        return work()
    outcome: list = [None]
    result = None
    if ranks.main:
        try:
            result = work()
        except Exception as e:
            outcome[0] = e
    dist.broadcast_object_list(outcome, src=0)
    if outcome[0] is not None:
        if ranks.main:
            raise outcome[0]
        raise outcome[0] from None
    return result


def share(value: T) -> T:
    """Rank 0's `value` on every rank (the run directory it made)."""
    if not current().distributed:
        return value
    box = [value]
    dist.broadcast_object_list(box, src=0)
    return box[0]
