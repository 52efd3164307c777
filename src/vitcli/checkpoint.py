"""Checkpoints: one safetensors file that carries its own config.

The tensors are the model's state dict; the safetensors header's metadata (string to string) holds

    format          "vitcli/1"
    vitcli_version  the version that wrote it
    config          the full Config as JSON (model, data, train, run)
    dataset         the DatasetInfo as JSON: shape, class names, normalisation, augmentation family
    metrics         final metrics as JSON
    adaptation      (finetune runs) the pretrained weights and each change made to fit them, as JSON

so `load_checkpoint` rebuilds the model from the file alone. Writes are atomic.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, safe_open, save_file
from torch import nn

from vitcli import __version__
from vitcli.config import Config
from vitcli.data.datasets import DatasetInfo
from vitcli.errors import CheckpointError, VitcliError
from vitcli.files import atomic_write

FORMAT = "vitcli/1"


@dataclass
class Checkpoint:
    model: nn.Module
    config: Config
    info: DatasetInfo
    metrics: dict[str, Any]
    vitcli_version: str
    adaptation: list[dict[str, str]] = field(default_factory=list)  # finetune: {part, change} rows


def save_checkpoint(
    path: str | Path,
    model: nn.Module,
    config: Config,
    info: DatasetInfo,
    metrics: dict[str, Any],
    adaptation: list[dict[str, str]] | None = None,
) -> None:
    # Detached, contiguous CPU copies: what safetensors can write, whatever device trained the model.
    tensors = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    metadata = {
        "format": FORMAT,
        "vitcli_version": __version__,
        "config": config.to_json(),
        "dataset": json.dumps(info.to_dict()),
        "metrics": json.dumps(metrics),
    }
    if adaptation:
        metadata["adaptation"] = json.dumps(adaptation)
    atomic_write(path, lambda tmp: save_file(tensors, str(tmp), metadata=metadata))


def checkpoint_file(path: str | Path) -> Path:
    """The checkpoint file for `path`: the file itself, or a run directory's model.safetensors."""
    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"checkpoint {path} does not exist; pass a model.safetensors from a run directory")
    if path.is_dir():
        if not (path / "model.safetensors").is_file():
            raise CheckpointError(f"{path} is a directory without model.safetensors; pass the checkpoint file")
        path = path / "model.safetensors"
    return path


def read_metadata(path: str | Path) -> dict[str, str]:
    """The header metadata of a vitcli checkpoint; CheckpointError for anything else."""
    path = checkpoint_file(path)
    try:
        with safe_open(str(path), "pt") as f:
            metadata = f.metadata() or {}
    except (SafetensorError, OSError, ValueError) as e:
        raise CheckpointError(f"{path} is not a safetensors file ({e}); pass a model.safetensors written by vitcli") from None
    if metadata.get("format") != FORMAT:
        raise CheckpointError(
            f"{path} is a safetensors file without vitcli metadata (format {metadata.get('format')!r}); "
            "only checkpoints written by vitcli train carry the config needed to rebuild the model"
        )
    return metadata


def load_checkpoint(path: str | Path, device: torch.device | str = "cpu") -> Checkpoint:
    from vitcli.models import build_model

    path = checkpoint_file(path)
    metadata = read_metadata(path)
    try:
        config = Config.from_dict(json.loads(metadata["config"]), source=f"{path} metadata")
        info = DatasetInfo(**json.loads(metadata["dataset"]))
        metrics = json.loads(metadata.get("metrics", "{}"))
        adaptation = json.loads(metadata.get("adaptation", "[]"))
    except (KeyError, TypeError, json.JSONDecodeError, VitcliError) as e:
        raise CheckpointError(f"{path} has damaged vitcli metadata ({e}); retrain or use another checkpoint") from None
    model = build_model(config.model, info, config.finetune)
    state = load_file(str(path))
    _check_shapes(path, model, state)
    model.load_state_dict(state)
    return Checkpoint(model.to(device).eval(), config, info, metrics, metadata.get("vitcli_version", "?"), adaptation)


def _check_shapes(path: Path, model: nn.Module, state: dict[str, torch.Tensor]) -> None:
    """One line naming the first tensor that does not fit the model the metadata describes."""
    expected = model.state_dict()
    for name, tensor in expected.items():
        if name not in state:
            raise CheckpointError(f"{path} lacks tensor {name!r} that its config's model has; the file does not match its metadata")
        if state[name].shape != tensor.shape:
            raise CheckpointError(
                f"{path}: tensor {name!r} is {tuple(state[name].shape)} but the config builds {tuple(tensor.shape)}; "
                "the weights do not match the config in the metadata"
            )
    extra = sorted(set(state) - set(expected))
    if extra:
        raise CheckpointError(f"{path} has tensor {extra[0]!r} that its config's model does not; the file does not match its metadata")
