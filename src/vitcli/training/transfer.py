"""Start a run from another run's weights: `vitcli train --init RUN_OR_CHECKPOINT_OR_NAME`.

Pretraining is the other half of the small-data answer (docs/small-data.md): a model that has seen
related images learns a small set faster than one that starts from noise. vitcli can fetch timm's
ImageNet weights only where the hub is reachable, and at 224 px; `--init` starts an in-house ViT or CNN
from any vitcli checkpoint instead, such as one trained on other classes of the same images.

Every tensor of the new model is taken from the checkpoint when it has the same name and shape. Where the
data differ, the parts that depend on them are made to fit with timm's functions, as `finetune` does for
timm's weights, and each change is recorded (`Transfer`) for the run table and the checkpoint:

    the head            new when the classes differ (their names, not only their number: a head that
                        learnt digits 0-4 knows nothing of 5-9)
    the positions       resampled to the new token grid (timm's resample_abs_pos_embed, bicubic)
    the patch kernels   resampled to another patch size (timm's resample_patch_embed)
    the first layer     adapted to another number of channels (timm's adapt_input_conv: RGB summed to gray,
                        gray repeated to RGB)
    the CNN's first fully connected layer   new when the image size changes its input

Anything else that differs (another width or depth) is refused in one line: the model settings not given
on the command line are the checkpoint's own (`model_of`), so that happens only when asked for.
`--freeze` and `--layer-decay` then work as in `finetune`.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import asdict, dataclass

import torch
from torch import nn

from vitcli.data.datasets import DatasetInfo
from vitcli.errors import CheckpointError, ConfigError
from vitcli.events import Status
from vitcli.models.built import Built, Emit
from vitcli.models.cnn import CNN
from vitcli.settings.specs import CNNSpec, ModelSpec, ViTSpec
from vitcli.training.checkpoint import Checkpoint, load_checkpoint

KINDS = (ViTSpec, CNNSpec)
HEADS = {ViTSpec: ("head.", "head_dist."), CNNSpec: ("classifier.7.",)}  # the class-dependent layers
FIRST_LAYER = {"patch_embed.proj.weight", "patch_embed.stages.0.0.weight", "features.0.0.weight"}
CNN_FIRST_FC = "classifier.1.weight"
STEM = ("patch_embed.", "cls_token", "dist_token", "pos_embed")  # a ViT's parts below the first block


@dataclass(frozen=True)
class Transfer:
    """Where a run's first weights came from and what was changed to fit them (JSON in the checkpoint)."""

    source: str  # --init as given: a path or a shipped model's name
    model: str  # the source's model, described ("vit d64 p4 x4")
    data: str  # what the source was trained on: "folder:cifar10-jpg, 6 classes"
    loaded: int  # tensors taken as they were
    tensors: int  # of the new model's
    changes: tuple[str, ...]  # one phrase per adapted or new part
    freeze: str = "none"
    trainable: int | None = None
    total: int | None = None
    layer_decay: float | None = None
    lowest_lr_scale: float | None = None

    def to_json(self) -> str:
        return json.dumps(asdict(self))


def source_of(init: str) -> Checkpoint:
    """The checkpoint `--init` names, loaded on the CPU; ConfigError in one line if it is not one vitcli
    can start from."""
    try:
        checkpoint = load_checkpoint(init)
    except CheckpointError as e:
        raise ConfigError(f"--init: {e}") from None
    if type(checkpoint.config.model) not in KINDS:
        raise ConfigError(
            f"--init {init} is a {checkpoint.config.model.kind} model; --init starts vitcli's own ViT or "
            "CNN. For a timm ViT's weights use vitcli finetune --pretrained FILE"
        )
    return checkpoint


def model_of(init: str) -> ModelSpec:
    """The model settings a run started from `init` has unless it is told otherwise: the checkpoint's own,
    less its teacher (distillation is a choice of the new run) and its own --init, --freeze and
    --layer-decay."""
    spec = source_of(init).config.model
    return dataclasses.replace(spec, init=init, freeze="none", layer_decay=None, **_no_teacher(spec))


def _no_teacher(spec: ModelSpec) -> dict:
    return {"teacher": None} if isinstance(spec, ViTSpec) else {}


def apply_init(
    built: Built, info: DatasetInfo, weight_decay: float, emit: Emit, resumed: bool = False
) -> Built:
    """`built` started from its spec's --init (nothing to do without one): the weights loaded and fitted,
    then --freeze and --layer-decay applied; the record goes in `built.transfer`. A `resumed` run fits them
    too, quietly: the record needs what changed, and the run's own state then replaces every weight."""
    spec = built.spec
    if getattr(spec, "init", None) is None:
        return built
    model = built.module
    source = source_of(spec.init)
    if type(source.config.model) is not type(spec):
        raise ConfigError(
            f"--init {spec.init} holds a {source.config.model.kind} and this run builds a {spec.kind}; leave "
            f"out --model (its kind is then the checkpoint's) or start from a {spec.kind}"
        )
    loaded, changes = fit_weights(model, source, spec, info)
    if not resumed:
        emit_line = f"starting from {spec.init}: {loaded} of {len(model.state_dict())} tensors as they were"
        emit(Status(emit_line + (f"; {'; '.join(changes)}" if changes else "")))
    total = sum(p.numel() for p in model.parameters())
    trainable = freeze(model, spec)
    groups, lowest = None, None
    if spec.layer_decay is not None:
        groups = layer_decay_groups(model, weight_decay, spec.layer_decay)
        lowest = min(g["lr_scale"] for g in groups)
    built.param_groups = groups
    built.transfer = Transfer(
        source=spec.init,
        model=source.config.model.describe(),
        data=f"{source.config.data.dataset}, {len(source.info.classes)} classes",
        loaded=loaded,
        tensors=len(model.state_dict()),
        changes=tuple(changes),
        freeze=spec.freeze,
        trainable=trainable,
        total=total,
        layer_decay=spec.layer_decay,
        lowest_lr_scale=lowest,
    )
    return built


def fit_weights(model: nn.Module, source: Checkpoint, spec: ModelSpec, info: DatasetInfo) -> tuple[int, list]:
    """Load `source`'s weights into `model`, fitted to it; returns (tensors loaded as they were, the
    changes in words). ConfigError for a part that differs in a way no function here adapts."""
    from timm.layers import resample_abs_pos_embed, resample_patch_embed  # timm is heavy: only here
    from timm.models import adapt_input_conv

    theirs, ours = source.model.state_dict(), model.state_dict()
    same_classes = list(source.info.classes) == list(info.classes)
    heads = HEADS[type(spec)]
    state, kept, changes = {}, 0, []
    for key, target in ours.items():
        weight = theirs.get(key)
        if key.startswith(heads) and not same_classes:
            continue  # a new head: the fresh initialisation stays
        if weight is None:
            continue  # a part the source has not (a distillation token): new, listed below
        if weight.shape == target.shape:
            state[key], kept = weight, kept + 1
            continue
        if key == "pos_embed":
            state[key] = resample_abs_pos_embed(
                weight,
                new_size=list(model.grid_size),
                old_size=list(source.model.grid_size),
                num_prefix_tokens=model.num_prefix_tokens,
            )
            changes.append(
                f"positions resampled from a {_grid(source.model.grid_size)} to a {_grid(model.grid_size)} "
                "grid (timm's resample_abs_pos_embed)"
            )
        elif key in FIRST_LAYER and weight.ndim == 4:
            if weight.shape[-2:] != target.shape[-2:]:
                weight = resample_patch_embed(weight, list(target.shape[-2:]))
                changes.append(
                    f"patch kernels resampled from {_grid(theirs[key].shape[-2:])} to "
                    f"{_grid(target.shape[-2:])} (timm's resample_patch_embed)"
                )
            if weight.shape[1] != target.shape[1]:
                weight = adapt_input_conv(target.shape[1], weight)
                changes.append(
                    f"first layer adapted from {theirs[key].shape[1]} channels to {target.shape[1]} "
                    "(timm's adapt_input_conv)"
                )
            if weight.shape != target.shape:
                raise _differs(key, theirs[key], target, source)
            state[key] = weight
        elif key in (CNN_FIRST_FC, CNN_FIRST_FC.replace("weight", "bias")):
            if key == CNN_FIRST_FC:
                changes.append(
                    f"first fully connected layer new: {source.info.height}x{source.info.width} images "
                    f"feed it {weight.shape[1]:,} numbers, these {target.shape[1]:,}"
                )
        else:
            raise _differs(key, weight, target, source)
    if not same_classes:
        had = f"it had {len(source.info.classes)}: {_names(source.info.classes)}"
        changes.insert(0, f"new head for {len(info.classes)} classes ({had})")
    new = [k for k in ours if k not in theirs and not (k.startswith(heads) and not same_classes)]
    if new:
        changes.append(f"new, not in it: {', '.join(new)}")
    model.load_state_dict(state, strict=False)
    return kept, changes


def _differs(key: str, theirs: torch.Tensor, ours: torch.Tensor, source: Checkpoint) -> ConfigError:
    return ConfigError(
        f"--init: {key} of the checkpoint is {tuple(theirs.shape)} and this model's is {tuple(ours.shape)}; "
        f"its model is {source.config.model.describe()}: leave out the model options that change it (unset "
        "ones are its own), or start from another checkpoint"
    )


def _grid(size) -> str:
    return f"{size[0]}x{size[1]}"


def _names(classes: list[str]) -> str:
    shown = ", ".join(classes[:6])
    return shown + (f", ... ({len(classes)})" if len(classes) > 6 else "")


# --- what trains ---------------------------------------------------------------------------------------


def layer_of(name: str, model: nn.Module) -> int:
    """The depth of a parameter, counted from the input: a ViT's stem 0, block i i+1, the rest (final
    norm, pooling, heads) the top; a CNN's conv stage s s, its fully connected layers the top."""
    if isinstance(model, CNN):
        if name.startswith("features."):
            return int(name.split(".")[1])
        return len(model.features)
    if name.startswith(STEM):
        return 0
    if name.startswith("blocks."):
        return int(name.split(".")[1]) + 1
    return len(model.blocks) + 1


def freeze(model: nn.Module, spec: ModelSpec) -> int:
    """Stop gradients to part of the model as --freeze says; returns the parameters that still train.
    backbone: only the head (ViT: head and head_dist; CNN: its last layer), a linear probe. N: a ViT's
    stem and first N blocks, a CNN's first N conv stages."""
    how = spec.freeze
    if how == "none":
        return sum(p.numel() for p in model.parameters())
    blocks = len(model.features) if isinstance(model, CNN) else len(model.blocks)
    if how != "backbone" and int(how) > blocks:
        unit = "conv stages" if isinstance(model, CNN) else "blocks"
        raise ConfigError(
            f"--freeze {how}: the model has only {blocks} {unit}; use 0 to {blocks} or backbone"
        )
    heads = HEADS[type(spec)]
    for name, p in model.named_parameters():
        if how == "backbone":
            p.requires_grad_(name.startswith(heads))
        elif isinstance(model, CNN):
            p.requires_grad_(not (name.startswith("features.") and layer_of(name, model) < int(how)))
        else:  # the stem is layer 0 and block i layer i + 1: frozen up to block N - 1
            p.requires_grad_(layer_of(name, model) > int(how))
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def _top(model: nn.Module) -> int:
    return len(model.features) if isinstance(model, CNN) else len(model.blocks) + 1


def layer_decay_groups(model: nn.Module, weight_decay: float, decay: float) -> list[dict]:
    """Optimiser groups with layer-wise lr decay (BEiT's, as timm's param_groups_layer_decay): the top at
    lr_scale 1, each layer below `decay` times the one above. Weight decay as the engine's groups: not on
    biases, norms, tokens or positions. Frozen parameters are left out."""
    top = _top(model)
    groups: dict[tuple[int, bool], dict] = {}
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        layer = layer_of(name, model)
        plain = p.ndim < 2 or name.endswith(("pos_embed", "cls_token", "dist_token"))
        scale, wd = decay ** (top - layer), 0.0 if plain else weight_decay
        group = groups.setdefault((layer, plain), {"params": [], "weight_decay": wd, "lr_scale": scale})
        group["params"].append(p)
    return [groups[key] for key in sorted(groups)]
