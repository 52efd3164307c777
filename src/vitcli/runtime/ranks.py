"""Which process this is among those training together (torchrun's RANK, WORLD_SIZE and LOCAL_RANK), read
without torch so that the command line can ask before anything heavy is imported; `distributed.py` does
the rest."""

from __future__ import annotations

import os
from dataclasses import dataclass

from vitcli.errors import ConfigError


@dataclass(frozen=True)
class Ranks:
    rank: int = 0  # this process among all of them; rank 0 prints and writes
    world: int = 1  # how many processes train together
    local_rank: int = 0  # this process on its machine: its GPU's index

    @property
    def main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world > 1

    @property
    def shard(self) -> tuple[int, int]:
        """(rank, world): which part of the data this rank takes (`Batches`, `evaluate`)."""
        return self.rank, self.world


def launched() -> Ranks:
    """This process's place as torchrun's environment gives it (one process without torchrun)."""
    env = os.environ
    return Ranks(int(env.get("RANK", 0)), int(env.get("WORLD_SIZE", 1)), int(env.get("LOCAL_RANK", 0)))


def check_batch(batch_size: int, ranks: Ranks, images: int | None = None) -> None:
    """Several ranks split every global batch evenly and never train on a partial one (the gradients they
    average would weigh images unevenly); ConfigError where that cannot be."""
    if not ranks.distributed:
        return
    if batch_size % ranks.world:
        raise ConfigError(
            f"--batch-size {batch_size} is the global batch, split over {ranks.world} processes: "
            f"pass a multiple of {ranks.world}"
        )
    if images is not None and images < batch_size:
        raise ConfigError(
            f"--batch-size {batch_size} is more than the {images} training images, and several processes "
            "train on whole batches only; lower --batch-size"
        )
