"""Checkpoints: one safetensors file that rebuilds its own model and prepares its own inputs.

The tensors are the model's state dict; the safetensors header's metadata (string to string) holds

    format          "vitcli/2"
    vitcli_version  the version that wrote it
    config          the full Config as JSON; its model section is the exact spec of the weights
    dataset         facts about the data it was trained on, as JSON: name, shape, classes, family
    preprocessing   how images become its input, as JSON: normalisation, resize, channels
    metrics         final metrics as JSON
    adaptation      (timm models) the pretrained weights and what was changed to fit them, as JSON data
    transfer        (--init) the checkpoint its first weights came from and what was changed, as JSON

so `load_checkpoint` rebuilds the model from the file alone. Checkpoints of vitcli 0.1.0 ("vitcli/1")
load too (`compat`). Writes are atomic. Wherever a checkpoint is asked for, the name of a model shipped
with vitcli (`models/shipped/`) that is not an existing path stands for its file.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, safe_open
from torch import nn

from vitcli.data.datasets import DatasetInfo
from vitcli.data.preprocessing import Preprocessing
from vitcli.errors import CheckpointError, VitcliError
from vitcli.models.build import build_module
from vitcli.models.built import Built
from vitcli.models.pretrained import Adaptation
from vitcli.models.shipped import shipped_checkpoint, shipped_model_of, shipped_names
from vitcli.runtime.files import writing
from vitcli.runtime.tensor_files import save_tensors
from vitcli.runtime.version import __version__
from vitcli.settings import compat
from vitcli.settings.config import Config
from vitcli.settings.suggest import did_you_mean

FORMAT = "vitcli/2"
READS = ("vitcli/1", FORMAT)  # 0.1.0 wrote vitcli/1


@dataclass
class Checkpoint:
    model: nn.Module
    config: Config
    info: DatasetInfo
    preprocessing: Preprocessing
    metrics: dict[str, Any]
    vitcli_version: str
    adaptation: Adaptation | None = None


def save_checkpoint(
    path: str | Path,
    built: Built,
    config: Config,
    info: DatasetInfo,
    metrics: dict[str, Any],
    weights: dict[str, torch.Tensor] | None = None,
) -> None:
    """Write `built`'s module (or `weights`, a state dict of it) with everything needed to rebuild it; the
    config's model section is `built.spec`, the spec the weights belong to."""
    # Detached, contiguous CPU copies: what safetensors can write, whatever device trained the model.
    state = built.module.state_dict() if weights is None else weights
    tensors = {k: v.detach().cpu().contiguous() for k, v in state.items()}
    settings = {**config.to_dict(), "model": built.spec.to_dict()}
    metadata = {
        "format": FORMAT,
        "vitcli_version": __version__,
        "config": json.dumps(settings, sort_keys=True),
        "dataset": json.dumps(info.to_dict()),
        "preprocessing": json.dumps(built.preprocessing.to_dict()),
        "metrics": json.dumps(metrics),
    }
    if built.adaptation is not None:
        metadata["adaptation"] = json.dumps(built.adaptation.to_dict())
    if built.transfer is not None:  # --init: where its first weights came from (training/transfer.py)
        metadata["transfer"] = built.transfer.to_json()
    with writing(path):
        save_tensors(path, tensors, metadata)


def checkpoint_file(path: str | Path) -> Path:
    """The checkpoint file for `path`: the file itself, a run directory's model.safetensors, or the file of
    the shipped model of that name (`vitcli models`). A path that exists wins over a name."""
    path = Path(path)
    if not path.exists():
        shipped = shipped_checkpoint(str(path))
        if shipped is not None:
            return shipped
        known = shipped_names()
        raise CheckpointError(
            f"checkpoint {path} does not exist: no such file or run directory, nor a shipped model; "
            f"{did_you_mean(path, known)}pass a model.safetensors, its run directory or the name of a "
            f"shipped model ({', '.join(known)}; vitcli models)"
        )
    if path.is_dir():
        if not (path / "model.safetensors").is_file():
            shipped = shipped_checkpoint(str(path))
            raise CheckpointError(
                f"{path} is a directory without model.safetensors; pass the checkpoint file"
                + ("" if shipped is None else f" (the shipped model {path} is {shipped})")
            )
        path = path / "model.safetensors"
    return path


def outputs_home(file: Path) -> Path:
    """Where the commands that read checkpoint `file` write by default (attention/, inspect/, an export):
    its run directory, or for a shipped model, whose folder is inside the installed package, NAME-outputs
    in the current directory (not NAME, which would then be a path that wins over the name)."""
    shipped = shipped_model_of(file)
    return file.parent if shipped is None else Path(f"{shipped.name}-outputs")


def read_metadata(path: str | Path) -> dict[str, str]:
    """The header metadata of a vitcli checkpoint; CheckpointError for anything else."""
    path = checkpoint_file(path)
    try:
        with safe_open(str(path), "pt") as f:
            metadata = f.metadata() or {}
    except (SafetensorError, OSError, ValueError) as e:
        raise CheckpointError(
            f"{path} is not a safetensors file ({e}); pass a model.safetensors written by vitcli"
        ) from None
    written = metadata.get("format", "")
    if written.startswith("vitcli/") and written not in READS:
        raise CheckpointError(
            f"{path} was written by vitcli {metadata.get('vitcli_version', '?')} (format {written}), "
            f"newer than this vitcli {__version__}; upgrade vitcli to read it"
        )
    if written not in READS:
        raise CheckpointError(
            f"{path} is a safetensors file without vitcli metadata (format {written or None!r}); "
            "only checkpoints written by vitcli train carry the config needed to rebuild the model"
        )
    return metadata


def load_checkpoint(path: str | Path, device: torch.device | str = "cpu") -> Checkpoint:
    path = checkpoint_file(path)
    metadata = read_metadata(path)
    try:
        settings, dataset = json.loads(metadata["config"]), json.loads(metadata["dataset"])
        if metadata["format"] == "vitcli/1":
            settings = compat.upgrade_settings(settings)
            preprocessing = compat.upgrade_preprocessing(settings, dataset)
        else:
            preprocessing = json.loads(metadata["preprocessing"])
        config = for_its_data(path, Config.from_dict(settings, source=f"{path} metadata").validate())
        info = _checked(DatasetInfo(**dataset))
        adaptation = (
            Adaptation.from_dict(json.loads(metadata["adaptation"]))
            if (metadata["format"] == FORMAT and "adaptation" in metadata)
            else None
        )
        checkpoint = Checkpoint(
            model=build_module(config.model, info),
            config=config,
            info=info,
            preprocessing=Preprocessing.from_dict(preprocessing),
            metrics=json.loads(metadata.get("metrics", "{}")),
            vitcli_version=metadata.get("vitcli_version", "?"),
            adaptation=adaptation,
        )
    except (KeyError, TypeError, ValueError, VitcliError) as e:
        raise CheckpointError(
            f"{path} has damaged vitcli metadata ({e}); retrain or use another checkpoint"
        ) from None
    state = load_file(str(path))
    _check_shapes(path, checkpoint.model, state)
    checkpoint.model.load_state_dict(state)
    checkpoint.model.to(device).eval()
    return checkpoint


def for_its_data(file: Path, config: Config) -> Config:
    """A shipped model's config names the data set it is for, not the trainer's own copy of it (a
    folder:/tmp/cifar, a data dir users do not have): its images come from --dataset and --data-dir, or
    the defaults. The rest of the data settings (a classes selection) stay. Other configs are as written."""
    shipped = shipped_model_of(file)
    if shipped is None:
        return config
    data = dataclasses.replace(config.data, dataset=shipped.dataset, data_dir=None)
    return dataclasses.replace(config, data=data)


def _checked(info: DatasetInfo) -> DatasetInfo:
    """The data set description of a header, refused before a model is built from it."""
    if min(info.channels, info.height, info.width) < 1 or not info.classes:
        raise ValueError(f"the data set description {info.describe()} is impossible")
    return info


def _check_shapes(path: Path, model: nn.Module, state: dict[str, torch.Tensor]) -> None:
    """One line naming the first tensor that does not fit the model the metadata describes."""
    expected = model.state_dict()
    for name, tensor in expected.items():
        if name not in state:
            raise CheckpointError(
                f"{path} lacks tensor {name!r} that its config's model has; "
                "the file does not match its metadata"
            )
        if state[name].shape != tensor.shape:
            raise CheckpointError(
                f"{path}: tensor {name!r} is {tuple(state[name].shape)} but the config builds "
                f"{tuple(tensor.shape)}; the weights do not match the config in the metadata"
            )
        # load_state_dict would cast int8 (a quantised model) into the float weights without a word,
        # and the model would score as if untrained.
        if tensor.is_floating_point() and not state[name].is_floating_point():
            raise CheckpointError(
                f"{path}: tensor {name!r} is {str(state[name].dtype).replace('torch.', '')}, not a float; "
                "vitcli checkpoints hold float weights: pass the checkpoint vitcli train wrote"
            )
    extra = sorted(set(state) - set(expected))
    if extra:
        raise CheckpointError(
            f"{path} has tensor {extra[0]!r} that its config's model does not; "
            "the file does not match its metadata"
        )
