"""The model side of `vitcli finetune`: from a config with a [finetune] section and the data's shape to
a timm ViT with its weights loaded and adapted, the parts that train, the normalisation and a record
of every change. `train_run` calls `setup` where `train` calls `build_model`; the rest of a run (the
engine, progress, run directory, checkpoint, summary) is the same for both.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass

from torch import nn

from vitcli.config import Config, FinetuneConfig
from vitcli.data.datasets import DatasetInfo
from vitcli.engine import Status
from vitcli.errors import ConfigError
from vitcli.models.pretrained import adaptation, fetch, load, no_adapt_explanation
from vitcli.models.timm_vit import Native, build_timm_vit, freeze, layer_decay_groups, native


@dataclass
class FinetuneSetup:
    config: Config  # img_size and patch_size resolved, as the checkpoint must record them
    model: nn.Module
    info: DatasetInfo  # with the normalisation the model trains with
    param_groups: list[dict] | None  # layer-wise lr decay groups; None: the engine's default
    adaptation: list[dict[str, str]]  # {part, change} rows for the summary table and the checkpoint


def resolve(cfg: FinetuneConfig, model: Native) -> FinetuneConfig:
    """Unset image and patch sizes become the model's own, so the checkpoint does not depend on timm's
    defaults staying the same."""
    return dataclasses.replace(cfg, img_size=cfg.img_size or model.img_size, patch_size=cfg.patch_size or model.patch_size)


def setup(config: Config, info: DatasetInfo, emit: Callable[[Status], None]) -> FinetuneSetup:
    """Everything is checked, and the weights fetched, before the model is built."""
    model_native = native(config.finetune.model)
    cfg = resolve(config.finetune, model_native)
    config = dataclasses.replace(config, finetune=cfg).validate()
    if not cfg.adapt:
        _refuse_adaptation(cfg, model_native, info)
    if cfg.pretrained in ("imagenet", "dino"):
        emit(Status(f"loading timm's {cfg.pretrained} weights of {cfg.model} (Hugging Face hub or its cache)"))
    elif cfg.pretrained != "none":
        emit(Status(f"reading weights from {cfg.pretrained}"))
    weights = fetch(cfg)
    vit = build_timm_vit(cfg, info)
    if weights.state is None:
        source = model_native.shapes  # what changed against the model as its authors built it
    else:
        source = {k: v.shape for k, v in weights.state.items()}
        load(vit, weights, f"--pretrained {cfg.pretrained}")
    steps = [{"part": "weights", "change": weights.label}] + adaptation(source, vit, info, loaded=weights.state is not None)

    total = sum(p.numel() for p in vit.parameters())
    trainable = freeze(vit, cfg.freeze)
    if cfg.freeze != "none":
        what = "backbone (linear probe)" if cfg.freeze == "backbone" else f"stem and the first {cfg.freeze} blocks"
        steps.append({"part": "frozen", "change": f"{what}: {trainable:,} of {total:,} parameters train"})
    groups = None
    if cfg.layer_decay is not None:
        groups = layer_decay_groups(vit, config.train.weight_decay, cfg.layer_decay)
        lowest = min(g["lr_scale"] for g in groups)
        steps.append({"part": "layer decay", "change": f"{cfg.layer_decay:g} per block: lr x1 at the head down to x{lowest:.3g}"})

    if weights.mean is not None:
        # The statistics the weights were trained with; one gray channel takes their mean over RGB,
        # which is exact for the 0.5/0.5 of timm's augreg weights.
        mean, std = list(weights.mean), list(weights.std)
        if info.channels == 1:
            mean, std = [sum(mean) / len(mean)], [sum(std) / len(std)]
        info = dataclasses.replace(info, mean=mean, std=std)
        source_name = "the pretrained weights'"
    else:
        source_name = f"{info.name}'s own"
    steps.append({"part": "normalisation", "change": f"{source_name}: mean {_numbers(info.mean)}, std {_numbers(info.std)}"})
    return FinetuneSetup(config, vit, info, groups, steps)


def _refuse_adaptation(cfg: FinetuneConfig, model: Native, info: DatasetInfo) -> None:
    explanation = no_adapt_explanation(model, info)
    if explanation:
        raise ConfigError(explanation)
    if (cfg.img_size, cfg.patch_size) != (model.img_size, model.patch_size):
        raise ConfigError(
            f"--no-adapt keeps {model.name} as pretrained ({model.img_size}x{model.img_size} images, "
            f"{model.patch_size}x{model.patch_size} patches); leave out --img-size and --patch-size, or --no-adapt"
        )


def _numbers(values: list[float]) -> str:
    return ", ".join(f"{v:.4g}" for v in values)
