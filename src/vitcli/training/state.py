"""A run's training state on disk, to resume it exactly: `state.safetensors` in the run directory.

One file, written atomically after every epoch and where a run is stopped, so the weights, the optimiser
and the position always belong together. Tensors (safetensors, never pickle):

    model.<name>         the weights now
    best.<name>          the weights of the best validation epoch so far (absent without validation)
    ema.<name>           the moving average of the weights (with --ema)
    optimizer.<i>.<key>  the optimiser's per-parameter state (AdamW: step, exp_avg, exp_avg_sq)
    rng.batches          the batches' generator as the epoch in progress began (order and augmentation)
    rng.torch            the global generator (dropout)

and one JSON document in the metadata ("state"): the epoch in progress and its steps and running sums, the
history of finished epochs, the best epoch, its score and which weights it kept (raw or ema), the
optimiser's hyperparameters per group and the schedule's position.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

from safetensors import SafetensorError, safe_open
from torch import Tensor

from vitcli.errors import CheckpointError
from vitcli.events import EpochMetrics
from vitcli.runtime.tensor_files import save_tensors
from vitcli.runtime.version import __version__
from vitcli.training.engine import EpochTotals, Snapshot

STATE_FILE = "state.safetensors"
FORMAT = "vitcli-state/1"


def save_state(path: str | Path, snapshot: Snapshot) -> None:
    tensors: dict[str, Tensor] = {f"model.{k}": v for k, v in snapshot.model.items()}
    if snapshot.best_model is not None:
        tensors.update({f"best.{k}": v for k, v in snapshot.best_model.items()})
    if snapshot.ema is not None:
        tensors.update({f"ema.{k}": v for k, v in snapshot.ema.items()})
    optimizer = snapshot.optimizer
    for index, per_param in optimizer["state"].items():
        tensors.update({f"optimizer.{index}.{key}": value for key, value in per_param.items()})
    tensors["rng.batches"], tensors["rng.torch"] = snapshot.batches_rng, snapshot.torch_rng
    document = {
        "epoch": snapshot.epoch,
        "totals": dataclasses.asdict(snapshot.totals),
        "history": [m.to_dict() for m in snapshot.history],
        "best_epoch": snapshot.best_epoch,
        "best_score": snapshot.best_score,
        "best_source": snapshot.best_source,
        "optimizer_groups": optimizer["param_groups"],
        "schedule": snapshot.schedule,
        "threads": snapshot.threads,
    }
    cpu = {k: v.detach().cpu().contiguous() for k, v in tensors.items()}
    metadata = {"format": FORMAT, "vitcli_version": __version__, "state": json.dumps(document)}
    save_tensors(path, cpu, metadata)


def load_state(path: str | Path) -> Snapshot:
    """The snapshot in `path`, its tensors on the CPU (loading them into the model and the optimiser puts
    them where the parameters are); CheckpointError when it is missing or damaged."""
    path = Path(path)
    try:
        with safe_open(str(path), "pt") as f:
            metadata = f.metadata() or {}
            tensors = {name: f.get_tensor(name) for name in f.keys()}  # noqa: SIM118 - safe_open has no iter
        if metadata.get("format") != FORMAT:
            raise ValueError(f"format {metadata.get('format')!r}, not {FORMAT}")
        return _snapshot(json.loads(metadata["state"]), tensors)
    except FileNotFoundError:
        raise CheckpointError(f"{path} does not exist: the run has no training state to resume") from None
    except (SafetensorError, OSError, ValueError, KeyError, TypeError) as e:
        raise CheckpointError(f"{path} is damaged ({e}); the run cannot be resumed from it") from None


def _snapshot(document: dict[str, Any], tensors: dict[str, Tensor]) -> Snapshot:
    def part(prefix: str) -> dict[str, Tensor]:
        return {k[len(prefix) :]: v for k, v in tensors.items() if k.startswith(prefix)}

    per_param: dict[int, dict[str, Tensor]] = {}
    for name, value in part("optimizer.").items():
        index, key = name.split(".", 1)
        per_param.setdefault(int(index), {})[key] = value
    groups = document["optimizer_groups"]
    for group in groups:
        if isinstance(group.get("betas"), list):
            group["betas"] = tuple(group["betas"])
    best_model = part("best.") or None
    score = document["best_score"]
    return Snapshot(
        epoch=document["epoch"],
        totals=EpochTotals(**document["totals"]),
        model=part("model."),
        optimizer={"state": per_param, "param_groups": groups},
        schedule=document["schedule"],
        batches_rng=tensors["rng.batches"],
        torch_rng=tensors["rng.torch"],
        history=[EpochMetrics(**m) for m in document["history"]],
        best_epoch=document["best_epoch"],
        best_score=None if score is None else tuple(score),
        best_model=best_model,
        ema=part("ema.") or None,
        best_source=document.get("best_source", "raw"),  # states written before --ema had raw weights only
        threads=document.get("threads"),  # None in states written before vitcli chose threads
    )
