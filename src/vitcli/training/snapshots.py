"""Attention as it forms: the [CLS] attention of K fixed validation images after every epoch of training
(`vitcli train --snapshot-attention K`); `lab/inspection/evolution.py` reads it back for `vitcli
inspect RUN --evolution`.

    RUN/attention-snapshots/images.safetensors       the K images (uint8), their labels and split indices
    RUN/attention-snapshots/epoch-0001.safetensors   (K, blocks, rows, cols) float16: each block's [CLS]
                                                     attention over the patches, the mean of its heads

The images are evenly spaced through the validation split (a folder's split is sorted by class, so the
first K would all be of one class) and do not depend on the seed, so runs with different seeds or
models snapshot the same images. Maps are averaged over heads and kept as float16 so that an epoch costs a
few KB: K x blocks x patches x 2 bytes plus the file's header, exactly `epoch_bytes` in all.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import torch
from safetensors.torch import save
from torch import Tensor, nn

from vitcli.data.datasets import Split
from vitcli.data.preprocessing import Preprocessor
from vitcli.errors import ConfigError
from vitcli.models.attention_maps import cls_attention, extract, has_attention, query_name
from vitcli.runtime.files import writing
from vitcli.runtime.tensor_files import save_tensors

SNAPSHOT_DIR = "attention-snapshots"
IMAGES_FILE = "images.safetensors"
EPOCH_FILE = re.compile(r"epoch-(\d+)\.safetensors")


def epoch_file(epoch: int) -> str:
    return f"epoch-{epoch:04d}.safetensors"


def epoch_bytes(count: int, blocks: int, grid: tuple[int, int]) -> int:
    """The exact size of one epoch's file: the float16 maps and safetensors' header (measured by writing
    the same tensor to memory, so it cannot drift from what __call__ writes)."""
    return len(save({"attention": torch.zeros(count, blocks, *grid, dtype=torch.float16)}))


def spaced_indices(size: int, count: int) -> list[int]:
    """`count` indices spread evenly over range(size), first and last included (distinct: count <= size)."""
    return [i * (size - 1) // max(count - 1, 1) for i in range(count)]


def check_snapshots(count: int, model: nn.Module, val: Split | None) -> None:
    """ConfigError, before a run directory is made, when `count` snapshots cannot be kept."""
    if not count:
        return
    if not has_attention(model):
        raise ConfigError(
            f"--snapshot-attention needs a ViT; a {type(model).__name__} has no attention to keep"
        )
    if val is None:
        raise ConfigError(
            "--snapshot-attention takes its images from the validation split; set --val-size above 0"
        )
    if count > len(val):
        raise ConfigError(
            f"--snapshot-attention {count} is more than the {len(val)} validation images; ask for fewer"
        )


class AttentionSnapshots:
    """fit's epoch-end companion (`run_dir.SnapshotWriter` calls it): one file per finished epoch."""

    def __init__(self, run_dir: Path, model: nn.Module, preprocessing: Preprocessor, val: Split, count: int):
        self.folder = Path(run_dir) / SNAPSHOT_DIR
        self.model, self.preprocessing = model, preprocessing
        self.indices = spaced_indices(len(val), count)
        self.images, self.labels = val.images[self.indices].cpu(), val.labels[self.indices].cpu()
        self.bytes_per_epoch = 0  # known once start() has seen how many blocks the model has

    def start(self) -> None:
        """Write the images once, so that the snapshots can be drawn without the data set."""
        blocks = self.maps().shape[1]
        self.bytes_per_epoch = epoch_bytes(len(self.indices), blocks, tuple(self.model.grid_size))
        metadata = {"indices": json.dumps(self.indices), "query": query_name(self.model.num_prefix_tokens)}
        tensors = {"images": self.images.contiguous(), "labels": self.labels.contiguous()}
        path = self.folder / IMAGES_FILE
        with writing(path):
            save_tensors(path, tensors, metadata)

    def maps(self) -> Tensor:
        """(K, blocks, rows, cols): each block's [CLS] (or mean-query) attention, mean of the heads."""
        device = next(self.model.parameters()).device
        inputs = self.preprocessing.on(device)(self.images.to(device))
        _, weights = extract(self.model, inputs)  # eval mode, no gradients, then back to training mode
        grid, prefix = tuple(self.model.grid_size), self.model.num_prefix_tokens
        return cls_attention(weights, grid, prefix).mean(dim=2).cpu()

    def __call__(self, epoch: int) -> None:
        attention = self.maps().to(torch.float16).contiguous()
        path = self.folder / epoch_file(epoch)
        with writing(path):
            save_tensors(path, {"attention": attention})
