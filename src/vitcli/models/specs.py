"""Model kinds as specs: each kind's own settings, its checks, and what it builds for a run.

    [model]                      [model]                 [model]
    kind = "vit"                 kind = "cnn"            kind = "timm"
    embed_dim = 32               dropout = 0.0           name = "vit_small_patch16_224"
    patch_size = 7                                       pretrained = "imagenet"
    ...                                                  ...

A spec is a plain dataclass holding one kind's fields and nothing else. It checks its values once when it
is made (`check_values`), checks how they combine (`validate`), builds its module from the data's shape
alone (`module`: what a checkpoint rebuilds), and builds everything a training run needs (`build`: the
module, how its inputs are prepared, its optimiser parameter groups and a record of what was adapted).
The engine, the run directory and the reports never ask which kind they have.

To add a kind: a dataclass below (kind, fields, check_values, validate, module, build) and an entry in
SPECS; its options in `cli/train.py` if `vitcli train` should offer them.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

from torch import nn

from vitcli import fields
from vitcli.errors import ConfigError
from vitcli.models.pooling import POOLS
from vitcli.models.vit import POS_EMBEDS, TOKENIZERS
from vitcli.preprocessing import Preprocessing

if TYPE_CHECKING:  # the data package imports vitcli.config, which imports this module
    from vitcli.data.datasets import ChannelStats, DatasetInfo
    from vitcli.distillation import Teacher
    from vitcli.models.pretrained import Adaptation

PRETRAINED = ("none", "imagenet", "dino")  # or the path of a .safetensors, .pth or .bin state dict
CHANNELS = ("adapt", "repeat")
MAX_DEPTH = 1024  # the deepest published ViTs have under 100 blocks
MAX_CONV_LAYERS = 8  # each stage halves the grid: 8 take a 256-pixel image down to one token
Emit = Callable[[Any], None]


@dataclass
class Built:
    """What a spec builds for a training run."""

    spec: ModelSpec  # exactly the module's spec (a timm spec with its image and patch size resolved)
    module: nn.Module
    preprocessing: Preprocessing
    param_groups: list[dict] | None = None  # optimiser groups with an "lr_scale" each; None: the engine's
    adaptation: Adaptation | None = None  # what was changed to fit pretrained weights to the data
    criterion: Callable | None = None  # the training loss (engine.Criterion); None: cross-entropy
    teacher: Teacher | None = None  # the model a distilled ViT learns from (its cost goes in the report)


class ModelSpec:
    """What every kind shares: serialisation and the hooks a kind fills in."""

    kind: ClassVar[str]
    residual: ClassVar[bool] = True  # has residual branches that --drop-path can drop

    def __post_init__(self) -> None:
        self.check_values()

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, **dataclasses.asdict(self)}

    def check_values(self) -> None:
        """Each value on its own; a ConfigError names the flag."""

    def validate(self) -> ModelSpec:
        """How the values combine, without the data (a sweep records a bad combination as one failed run)."""
        return self

    def module(self, info: DatasetInfo, drop_path: float = 0.0) -> nn.Module:
        """The module for images shaped like `info`, with fresh weights; a ConfigError if they do not fit.
        `drop_path` (stochastic depth) acts in training only, so a checkpoint is rebuilt without it."""
        raise NotImplementedError

    def build(
        self,
        info: DatasetInfo,
        stats: ChannelStats,
        *,
        weight_decay: float,
        emit: Emit,
        drop_path: float = 0.0,
    ) -> Built:
        """Module, preprocessing and the rest for training; models trained from scratch normalise with
        the data's own statistics and use the engine's parameter groups."""
        return Built(self, self.module(info, drop_path), Preprocessing(stats.mean, stats.std))


@dataclass
class ViTSpec(ModelSpec):
    """The in-house ViT of `models/vit.py`, and its variants for small data (docs/small-data.md)."""

    kind: ClassVar[str] = "vit"
    embed_dim: int = 32
    patch_size: int = 7  # the patch and spt tokenizers'; the conv tokenizer's grid comes from its stem
    depth: int = 2
    heads: int = 2
    mlp_dim: int | None = None  # hidden size of the MLP; unset means 4 x embed_dim
    pos_embed: str = "learned"  # learned | sinusoidal | none
    dropout: float = 0.0
    tokenizer: str = "patch"  # patch | spt (shifted patches) | conv (CCT's convolutional stem)
    conv_layers: int = 2  # the conv tokenizer's conv, ReLU, max-pool stages
    lsa: bool = False  # locality self-attention: a learned temperature and the diagonal masked
    pool: str = "cls"  # what the head reads: cls | gap (mean of the tokens) | seq (CCT's sequence pooling)
    teacher: str | None = None  # a checkpoint to distil from, through a distillation token (DeiT)

    def check_values(self) -> None:
        fields.positive(self, "embed_dim", "patch_size", "depth", "heads", "mlp_dim", "conv_layers")
        if self.conv_layers > MAX_CONV_LAYERS:
            raise ConfigError(f"--conv-layers {self.conv_layers} is too many: at most {MAX_CONV_LAYERS}")
        fields.one_of("tokenizer", self.tokenizer, TOKENIZERS)
        fields.one_of("pool", self.pool, POOLS)
        if self.teacher is not None and not str(self.teacher).strip():
            raise ConfigError("--teacher must be the path of a vitcli checkpoint, e.g. runs/cnn-.../")
        if self.embed_dim < 2:  # layer norm over one number always gives 0: nothing could be learned
            raise ConfigError(f"--embed-dim {self.embed_dim} is too small: use 2 or more (8 and up to learn)")
        if self.depth > MAX_DEPTH:  # 100,000 blocks take minutes and gigabytes to build before any use
            raise ConfigError(f"--depth {self.depth} is more blocks than any ViT has; at most {MAX_DEPTH}")
        fields.one_of("pos_embed", self.pos_embed, POS_EMBEDS)
        fields.fraction("dropout", self.dropout)

    def validate(self) -> ViTSpec:
        if self.embed_dim % self.heads:
            divisors = [h for h in range(1, min(self.embed_dim, 16) + 1) if self.embed_dim % h == 0]
            raise ConfigError(
                f"--embed-dim {self.embed_dim} is not divisible by --heads {self.heads}: each head gets an "
                f"equal share of the embedding; use heads in {divisors} or change --embed-dim"
            )
        if self.teacher is not None and self.pool != "cls":
            raise ConfigError(
                f"--teacher needs --pool cls: the distillation token is read beside the [CLS] token, and "
                f"--pool {self.pool} has none"
            )
        return self

    def module(self, info: DatasetInfo, drop_path: float = 0.0) -> nn.Module:
        from vitcli.models.vit import ViT

        divides = info.height % self.patch_size == 0 and info.width % self.patch_size == 0
        if self.tokenizer != "conv" and not divides:
            fits = [
                p
                for p in range(2, max(info.height, info.width) + 1)
                if info.height % p == 0 and info.width % p == 0
            ]
            raise ConfigError(
                f"{info.name} images are {info.height}x{info.width}, not divisible by --patch-size "
                f"{self.patch_size}; use a patch size that divides both, "
                f"such as {', '.join(map(str, fits)) or '1'}"
            )
        return ViT(
            image_size=(info.height, info.width),
            in_channels=info.channels,
            num_classes=len(info.classes),
            embed_dim=self.embed_dim,
            patch_size=self.patch_size,
            depth=self.depth,
            heads=self.heads,
            mlp_dim=self.mlp_dim,
            pos_embed=self.pos_embed,
            dropout=self.dropout,
            drop_path=drop_path,
            tokenizer=self.tokenizer,
            conv_layers=self.conv_layers,
            lsa=self.lsa,
            pool=self.pool,
            distilled=self.teacher is not None,
        )

    def build(
        self,
        info: DatasetInfo,
        stats: ChannelStats,
        *,
        weight_decay: float,
        emit: Emit,
        drop_path: float = 0.0,
    ) -> Built:
        built = super().build(info, stats, weight_decay=weight_decay, emit=emit, drop_path=drop_path)
        if self.teacher is not None:
            from vitcli.distillation import DistillationLoss, load_teacher

            built.teacher = load_teacher(self.teacher, info, built.preprocessing)
            built.criterion = DistillationLoss(built.teacher)
        return built


@dataclass
class CNNSpec(ModelSpec):
    """The baseline CNN of `models/cnn.py`: its architecture is fixed, only its dropout is a setting."""

    kind: ClassVar[str] = "cnn"
    residual: ClassVar[bool] = False
    dropout: float = 0.0

    def check_values(self) -> None:
        fields.fraction("dropout", self.dropout)

    def module(self, info: DatasetInfo, drop_path: float = 0.0) -> nn.Module:
        from vitcli.models.cnn import CNN

        if min(info.height, info.width) < 8:
            raise ConfigError(
                f"the CNN needs images of at least 8x8 pixels; {info.name} has {info.height}x{info.width}"
            )
        return CNN(
            image_size=(info.height, info.width),
            in_channels=info.channels,
            num_classes=len(info.classes),
            dropout=self.dropout,
        )


@dataclass
class TimmSpec(ModelSpec):
    """A timm Vision Transformer, pretrained or not, adapted to the data (`vitcli finetune`)."""

    kind: ClassVar[str] = "timm"
    name: str = "vit_small_patch16_224"  # a timm Vision Transformer
    pretrained: str = "imagenet"  # none | imagenet | dino | path of a .safetensors / .pth / .bin state dict
    img_size: int | None = None  # unset: the model's pretrained resolution (224 for vit_small_patch16_224)
    patch_size: int | None = None  # unset: the model's own (16 for vit_small_patch16_224)
    channels: str = "adapt"  # gray input: adapt (input conv summed over RGB) | repeat (gray copied to RGB)
    adapt: bool = True  # false: the model exactly as pretrained, and data that does not fit is refused
    freeze: str = "none"  # none | backbone (linear probe) | N (patch embedding, positions and first N blocks)
    layer_decay: float | None = None  # unset: one learning rate for all layers

    def check_values(self) -> None:
        if not self.name:
            raise ConfigError("--model must name a timm ViT, e.g. vit_small_patch16_224")
        if not self.pretrained:
            raise ConfigError(f"--pretrained must be {', '.join(PRETRAINED)} or a weights file")
        fields.one_of("channels", self.channels, CHANNELS)
        fields.positive(self, "img_size", "patch_size")
        if self.freeze not in ("none", "backbone") and not self.freeze.isdigit():
            raise ConfigError(f"--freeze must be none, backbone or a number of blocks, got {self.freeze!r}")
        if self.layer_decay is not None and not 0 < self.layer_decay <= 1:
            raise ConfigError(f"--layer-decay must be in (0, 1], e.g. 0.75, got {self.layer_decay}")

    def validate(self) -> TimmSpec:
        size, patch = self.img_size, self.patch_size
        if size and patch and size % patch:
            divisors = ", ".join(str(p) for p in range(2, size + 1) if size % p == 0)
            raise ConfigError(
                f"--img-size {size} is not a multiple of --patch-size {patch}: the image is cut into whole "
                f"patches; use a patch size that divides {size}, such as {divisors}"
            )
        return self

    def resolved(self) -> TimmSpec:
        """Unset image and patch sizes made the model's own, so that a checkpoint does not depend on
        timm's defaults staying the same."""
        if self.img_size is not None and self.patch_size is not None:
            return self
        from vitcli.models.timm_vit import native

        model = native(self.name)
        return dataclasses.replace(
            self, img_size=self.img_size or model.img_size, patch_size=self.patch_size or model.patch_size
        ).validate()

    def module(self, info: DatasetInfo, drop_path: float = 0.0) -> nn.Module:
        from vitcli.models.timm_vit import build_timm_vit

        return build_timm_vit(self.resolved(), info, drop_path)

    def build(
        self,
        info: DatasetInfo,
        stats: ChannelStats,
        *,
        weight_decay: float,
        emit: Emit,
        drop_path: float = 0.0,
    ) -> Built:
        from vitcli.models.finetune import build_finetune  # timm is imported only for timm models

        return build_finetune(self, info, stats, weight_decay, emit, drop_path)


SPECS: dict[str, type[ModelSpec]] = {spec.kind: spec for spec in (ViTSpec, CNNSpec, TimmSpec)}
