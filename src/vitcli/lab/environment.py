"""What `vitcli info` reports: the versions that matter, the device `--device auto` picks, where the
data and the caches are, which data sets are already there, and the size of the decoded-tensor cache."""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from vitcli.data import cache
from vitcli.data.datasets import TORCHVISION_SOURCES, default_data_dir
from vitcli.errors import DataError
from vitcli.runtime.devices import resolve_device
from vitcli.training.provenance import versions

PRESENT, INCOMPLETE, MISSING = "present", "incomplete", "missing"


@dataclass(frozen=True)
class DatasetState:
    name: str
    files: str  # PRESENT (every file torchvision reads), INCOMPLETE (some) or MISSING, in the data dir
    cached: bool  # decoded tensors in the tensor cache (from this data dir or another)


@dataclass(frozen=True)
class Info:
    versions: dict[str, str]  # vitcli, Python, torch, torchvision, timm
    device: str  # what --device auto resolves to: "cuda" or "cpu"
    gpus: list[str]  # the CUDA GPUs' names; empty without CUDA
    data_dir: str
    data_dir_exists: bool
    datasets: list[DatasetState]  # the torchvision data sets vitcli knows
    other_cached: list[str]  # other sources in the tensor cache (image folders: folder2-<name>)
    cache_dir: str  # the decoded-tensor cache
    cache_files: int
    cache_bytes: int
    hf_hub_cache: str  # where pretrained weights for `vitcli finetune` are kept
    hf_hub_offline: bool  # HF_HUB_OFFLINE is set: weights only from that cache

    def to_dict(self) -> dict:
        return asdict(self)


def dataset_files(name: str, data_dir: Path) -> str:
    """PRESENT when every file torchvision's class reads for `name` is in `data_dir`, INCOMPLETE when
    some are, MISSING when none is."""
    source = TORCHVISION_SOURCES[name]
    there = sum((data_dir / source.folder / f).is_file() for f in source.files)
    return PRESENT if there == len(source.files) else INCOMPLETE if there else MISSING


def gather(data_dir: str | Path | None = None) -> Info:
    """The facts `vitcli info` shows, for `data_dir` (default: $VITCLI_DATA_DIR or ~/.cache/vitcli/data)."""
    # timm's hub client, for the hub cache's folder
    from huggingface_hub import constants


    folder = Path(data_dir).expanduser() if data_dir is not None else default_data_dir()
    if folder.exists() and not folder.is_dir():
        raise DataError(f"--data-dir {folder} is a file; pass the folder that holds the data sets")
    device = resolve_device("auto")
    gpus = (
        [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
        if device.type == "cuda"
        else []
    )
    entries = cache.entries()
    cached = {e.name for e in entries}
    return Info(
        versions=versions(),  # training.provenance's: a run records the same
        device=device.type,
        gpus=gpus,
        data_dir=str(folder),
        data_dir_exists=folder.is_dir(),
        datasets=[DatasetState(n, dataset_files(n, folder), n in cached) for n in TORCHVISION_SOURCES],
        other_cached=sorted(cached - set(TORCHVISION_SOURCES)),
        cache_dir=str(cache.tensor_dir()),
        cache_files=len(entries),
        cache_bytes=sum(e.bytes for e in entries),
        hf_hub_cache=str(constants.HF_HUB_CACHE),
        # The variable as huggingface_hub reads it (at import): "1", "true", "yes", "on" mean offline.
        hf_hub_offline=bool(constants.HF_HUB_OFFLINE) or _is_true(os.environ.get("HF_HUB_OFFLINE")),
    )


def _is_true(value: str | None) -> bool:
    return (value or "").strip().upper() in {"1", "ON", "YES", "TRUE"}
