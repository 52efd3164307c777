"""A run's attention snapshots read back (`vitcli inspect RUN --evolution`): the [CLS] attention of K fixed
validation images after every epoch, as `training/snapshots.py` wrote it during training."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, safe_open
from torch import Tensor

from vitcli.errors import CheckpointError, ConfigError
from vitcli.training.snapshots import EPOCH_FILE, IMAGES_FILE, SNAPSHOT_DIR, epoch_file


@dataclass
class Evolution:
    """A run's snapshots, read back: what `vitcli inspect RUN --evolution` draws."""

    run_dir: Path
    images: Tensor  # uint8 (K, C, H, W)
    labels: list[int]
    indices: list[int]  # positions in the validation split
    query: str  # "[CLS]", or "mean" for a model without it
    epochs: list[int]
    maps: Tensor  # float32 (epochs, K, blocks, rows, cols)

    @property
    def sources(self) -> list[str]:
        return [f"val[{i}]" for i in self.indices]


def load_evolution(run_dir: str | Path) -> Evolution:
    """The snapshots of `run_dir`, every finished epoch in order; one line when there are none."""
    run_dir = Path(run_dir)
    folder = run_dir / SNAPSHOT_DIR
    epochs = sorted(
        int(m.group(1)) for p in folder.glob("epoch-*.safetensors") if (m := EPOCH_FILE.fullmatch(p.name))
    )
    if not (folder / IMAGES_FILE).is_file() or not epochs:
        raise ConfigError(
            f"{run_dir} has no attention snapshots; train with --snapshot-attention K to keep them"
        )
    try:
        with safe_open(str(folder / IMAGES_FILE), "pt") as f:
            metadata = f.metadata() or {}
            images, labels = f.get_tensor("images"), f.get_tensor("labels")
        maps = torch.stack([load_file(str(folder / epoch_file(e)))["attention"].float() for e in epochs])
        indices = json.loads(metadata["indices"])
    except (SafetensorError, OSError, KeyError, ValueError, RuntimeError) as e:
        raise CheckpointError(
            f"the attention snapshots in {folder} cannot be read ({e}); train again"
        ) from None
    if maps.shape[1] != len(images):
        raise CheckpointError(f"the attention snapshots in {folder} do not match their images; train again")
    return Evolution(run_dir, images, labels.tolist(), indices, metadata.get("query", "[CLS]"), epochs, maps)
