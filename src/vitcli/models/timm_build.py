"""What a timm spec builds for a training run (`vitcli finetune`): a timm ViT with its pretrained weights
loaded and adapted to the data, the parts that train, how its inputs are prepared, and a record of every
change. Everything is checked, and the weights fetched, before the model is built.
"""

from __future__ import annotations

from vitcli.data.datasets import ChannelStats, DatasetInfo
from vitcli.data.preprocessing import Preprocessing
from vitcli.errors import ConfigError
from vitcli.events import Status
from vitcli.models.built import Built, Emit
from vitcli.models.pretrained import adaptation, fetch, load, no_adapt_explanation
from vitcli.models.timm_vit import (
    Native,
    build_timm_vit,
    freeze,
    in_chans,
    layer_decay_groups,
    native,
    resolve_timm,
)
from vitcli.settings.specs import TimmSpec


def build_finetune(
    spec: TimmSpec,
    info: DatasetInfo,
    stats: ChannelStats,
    weight_decay: float,
    emit: Emit,
    drop_path: float = 0.0,
) -> Built:
    model_native = native(spec.name)
    spec = resolve_timm(spec)
    if not spec.adapt:
        _refuse_adaptation(spec, model_native, info)
    if spec.pretrained in ("imagenet", "dino"):
        emit(
            Status(f"loading timm's {spec.pretrained} weights of {spec.name} (Hugging Face hub or its cache)")
        )
    elif spec.pretrained != "none":
        emit(Status(f"reading weights from {spec.pretrained}"))
    weights = fetch(spec, lambda line: emit(Status(line)))
    vit = build_timm_vit(spec, info, drop_path)
    if weights.state is None:
        source = model_native.shapes  # what changed against the model as its authors built it
    else:
        source = {k: v.shape for k, v in weights.state.items()}
        load(vit, weights, f"--pretrained {spec.pretrained}")
    repeated = in_chans(spec, info) != info.channels
    total = sum(p.numel() for p in vit.parameters())
    trainable = freeze(vit, spec.freeze)
    groups, lowest = None, None
    if spec.layer_decay is not None:
        groups = layer_decay_groups(vit, weight_decay, spec.layer_decay)
        lowest = min(g["lr_scale"] for g in groups)

    if weights.mean is not None:
        # The statistics the weights were trained with; one gray channel takes their mean over RGB,
        # which is exact for the 0.5/0.5 of timm's augreg weights.
        mean, std = tuple(weights.mean), tuple(weights.std)
        if info.channels == 1:
            mean, std = (sum(mean) / len(mean),), (sum(std) / len(std),)
        normalisation = "weights"
    else:
        mean, std, normalisation = stats.mean, stats.std, "data"
    preprocessing = Preprocessing(mean, std, size=vit.img_size, channels=3 if repeated else None)
    record = adaptation(
        source,
        vit,
        info,
        weights,
        repeated,
        freeze=spec.freeze,
        trainable=trainable,
        total=total,
        layer_decay=spec.layer_decay,
        lowest_lr_scale=lowest,
        normalisation=normalisation,
    )
    return Built(spec, vit, preprocessing, groups, record)


def _refuse_adaptation(spec: TimmSpec, model: Native, info: DatasetInfo) -> None:
    explanation = no_adapt_explanation(model, info)
    if explanation:
        raise ConfigError(explanation)
    if (spec.img_size, spec.patch_size) != (model.img_size, model.patch_size):
        raise ConfigError(
            f"--no-adapt keeps {model.name} as pretrained ({model.img_size}x{model.img_size} images, "
            f"{model.patch_size}x{model.patch_size} patches); leave out --img-size and --patch-size, "
            "or --no-adapt"
        )
