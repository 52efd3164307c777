"""Model kinds as specs: each kind's own settings, their options and checks, and what its model can do.

    [model]                      [model]                 [model]
    kind = "vit"                 kind = "cnn"            kind = "timm"
    embed_dim = 32               dropout = 0.0           name = "vit_small_patch16_224"
    patch_size = 7                                       pretrained = "imagenet"
    ...                                                  ...

A spec is a plain dataclass holding one kind's fields and nothing else. It checks its values once when it
is made (`check_values`) and how they combine (`validate`), and it answers what the rest of vitcli asks of
a kind (does its model have attention, positions, a timm equivalent; which command trains it), so that no
code outside the specs compares a kind's name. Building the module is the models' job
(`vitcli.models.build`); this module imports no torch, so the command line can read the options.

To add a kind: a dataclass below and an entry in SPECS, a builder in `vitcli.models.build`.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, ClassVar

from vitcli.errors import ConfigError
from vitcli.settings import fields
from vitcli.settings.choices import CHANNELS, POOLS, POS_EMBEDS, PRETRAINED, TOKENIZERS
from vitcli.settings.fields import MODEL_PANEL, TIMM_PANEL, TRANSFER_PANEL, VARIANTS_PANEL, option

MAX_DEPTH = 1024  # the deepest published ViTs have under 100 blocks
MAX_CONV_LAYERS = 8  # each stage halves the grid: 8 take a 256-pixel image down to one token
DROPOUT_HELP = "Dropout rate in the ViT's blocks or the CNN's classifier."


class ModelSpec:
    """What every kind shares: serialisation, the hooks a kind fills in and what its model can do."""

    kind: ClassVar[str]
    command: ClassVar[str] = "train"  # the vitcli command that trains this kind (and resumes its runs)
    residual: ClassVar[bool] = True  # has residual branches that --drop-path can drop
    has_attention: ClassVar[bool] = True  # its blocks attend, so attention maps and inspect apply
    teacher: str | None = None  # a checkpoint it is distilled from (ViTs only)

    def __post_init__(self) -> None:
        self.check_values()

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, **dataclasses.asdict(self)}

    def check_values(self) -> None:
        """Each value on its own; a ConfigError names the flag."""

    def validate(self) -> ModelSpec:
        """How the values combine, without the data (a sweep records a bad combination as one failed run)."""
        return self

    @property
    def has_positions(self) -> bool:
        """Whether the model adds a position embedding to its tokens."""
        return self.has_attention

    def describe(self) -> str:
        """The kind and its key sizes, short: "vit d32 p7 x2", "cnn", a timm model's name."""
        return self.kind

    def timm_refusal(self) -> str | None:
        """Why timm's VisionTransformer cannot hold this model with the same logits; None: it can."""
        return (
            f"--model {self.kind}: timm's format holds Vision Transformers and this is vitcli's {self.kind}"
        )


INIT_HELP = (
    "Start from the weights of an in-house ViT or CNN: a run directory, a model.safetensors or a shipped "
    "model's name (vitcli models). A new head when the classes differ, positions resampled when the token "
    "grid does, the first layer adapted when the channels do; model settings not given are its own."
)
FREEZE_HELP = (
    "With --init: none, backbone (only the head trains) or N (the tokenizer, positions and the first N "
    "blocks stay as loaded; the CNN's first N conv stages)."
)
LAYER_DECAY_HELP = (
    "With --init, layer-wise lr decay, e.g. 0.75: each block (CNN: stage) learns at 0.75 x the rate of "
    "the one above."
)


def _init_option():
    return option(None, INIT_HELP, TRANSFER_PANEL, unset="new random weights", metavar="<run>")


def _freeze_option():
    return option("none", FREEZE_HELP, TRANSFER_PANEL)


def _layer_decay_option():
    return option(None, LAYER_DECAY_HELP, TRANSFER_PANEL, unset="off, one learning rate for all layers")


def check_transfer(spec: ModelSpec) -> None:
    """--init, --freeze and --layer-decay of an in-house model: each value on its own."""
    if spec.init is not None and not str(spec.init).strip():
        raise ConfigError("--init must name a run directory, a model.safetensors or a shipped model")
    if spec.freeze not in ("none", "backbone") and not spec.freeze.isdigit():
        raise ConfigError(f"--freeze must be none, backbone or a number of blocks, got {spec.freeze!r}")
    if spec.layer_decay is not None and not 0 < spec.layer_decay <= 1:
        raise ConfigError(f"--layer-decay must be in (0, 1], e.g. 0.75, got {spec.layer_decay}")


def validate_transfer(spec: ModelSpec) -> None:
    """Freezing or decaying weights that were not loaded trains part of a random model slower or not at
    all: refused without --init."""
    if spec.init is None:
        for key, off in (("freeze", "none"), ("layer_decay", None)):
            if getattr(spec, key) != off:
                raise ConfigError(
                    f"{fields.flag(key)} acts on loaded weights, and this run starts from random ones; give "
                    f"--init RUN (or a shipped model) to start from, or leave {fields.flag(key)} out"
                )


@dataclass
class ViTSpec(ModelSpec):
    """The in-house ViT of `models/vit.py`, and its variants for small data (docs/small-data.md)."""

    kind: ClassVar[str] = "vit"
    embed_dim: int = option(32, "Token width of the ViT.", MODEL_PANEL)
    patch_size: int = option(
        7,
        "Patch side in pixels; must divide the image height and width (--tokenizer conv has none).",
        MODEL_PANEL,
    )
    depth: int = option(2, "Number of transformer blocks.", MODEL_PANEL)
    heads: int = option(
        2, "Attention heads; 1 uses single-head attention. Must divide --embed-dim.", MODEL_PANEL
    )
    mlp_dim: int | None = option(None, "Hidden size of each MLP.", MODEL_PANEL, unset="4 x embed_dim")
    pos_embed: str = option(
        "learned", "Positional embedding of the ViT (none: no positions).", MODEL_PANEL, choices=POS_EMBEDS
    )
    dropout: float = option(0.0, DROPOUT_HELP, MODEL_PANEL)
    tokenizer: str = option(
        "patch",
        "patch; spt: shifted patch tokenization (Lee et al.); conv: a convolutional stem (CCT).",
        VARIANTS_PANEL,
        choices=TOKENIZERS,
    )
    conv_layers: int = option(
        2,
        "Conv, ReLU, max-pool stages of --tokenizer conv; each halves the token grid. 0: chosen from the "
        "image size, the most that keep a 4x4 grid (8x8 images: 1, 32x32: 3).",
        VARIANTS_PANEL,
    )
    lsa: bool = option(
        False,
        "Locality self-attention: a learned softmax temperature, each token's own key masked.",
        VARIANTS_PANEL,
    )
    pool: str = option(
        "cls",
        "What the head reads: the [CLS] token, the mean token (gap), or CCT's sequence pooling.",
        VARIANTS_PANEL,
        choices=POOLS,
    )
    teacher: str | None = option(
        None,
        "A checkpoint with the same classes (e.g. the CNN's) to distil from, DeiT-style, through a "
        "distillation token.",
        VARIANTS_PANEL,
        path=True,
    )
    init: str | None = _init_option()
    freeze: str = _freeze_option()
    layer_decay: float | None = _layer_decay_option()

    def check_values(self) -> None:
        check_transfer(self)
        fields.positive(self, "embed_dim", "patch_size", "depth", "heads", "mlp_dim")
        if not 0 <= self.conv_layers <= MAX_CONV_LAYERS:  # 0: from the image size (models/conv_tokenizer.py)
            raise ConfigError(
                f"--conv-layers must be 0 (chosen from the image size) or 1 to {MAX_CONV_LAYERS} stages, "
                f"got {self.conv_layers}"
            )
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
        validate_transfer(self)
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

    @property
    def has_positions(self) -> bool:
        return self.pos_embed != "none"

    def describe(self) -> str:
        stages = self.conv_layers or "-auto"  # 0: chosen from the image size when the model is built
        tokens = f"conv{stages}" if self.tokenizer == "conv" else f"p{self.patch_size}"
        parts = ["vit", f"d{self.embed_dim}", *(["spt"] if self.tokenizer == "spt" else []), tokens]
        return " ".join([*parts, f"x{self.depth}", *(["distilled"] if self.teacher else [])])

    def timm_refusal(self) -> str | None:
        reasons = {
            "spt": "--tokenizer spt: timm's VisionTransformer has no shifted patch tokenizer",
            "conv": "--tokenizer conv: timm's VisionTransformer has no convolutional (CCT) stem",
        }
        if self.tokenizer in reasons:
            return reasons[self.tokenizer]
        if self.lsa:
            return "--lsa: timm's Attention has no learned temperature or masked diagonal"
        if self.pool == "seq":
            return "--pool seq: timm's VisionTransformer has no sequence pooling (CCT's attention pool)"
        if self.teacher is not None:
            return (
                "--teacher: timm's distilled ViT (deit) fixes LayerNorm's eps at 1e-6 where vitcli's is "
                "1e-5, so its logits would differ"
            )
        return None


@dataclass
class CNNSpec(ModelSpec):
    """The baseline CNN of `models/cnn.py`: its architecture is fixed, only its dropout is a setting."""

    kind: ClassVar[str] = "cnn"
    residual: ClassVar[bool] = False
    has_attention: ClassVar[bool] = False
    dropout: float = option(0.0, DROPOUT_HELP, MODEL_PANEL)
    init: str | None = _init_option()
    freeze: str = _freeze_option()
    layer_decay: float | None = _layer_decay_option()

    def check_values(self) -> None:
        check_transfer(self)
        fields.fraction("dropout", self.dropout)

    def validate(self) -> CNNSpec:
        validate_transfer(self)
        return self


@dataclass
class TimmSpec(ModelSpec):
    """A timm Vision Transformer, pretrained or not, adapted to the data (`vitcli finetune`)."""

    kind: ClassVar[str] = "timm"
    command: ClassVar[str] = "finetune"
    name: str = option(
        "vit_small_patch16_224",
        "A timm ViT (vit_*, deit_*); imagenet/dino map to its own tags.",
        TIMM_PANEL,
        flag="--model",
    )
    pretrained: str = option(
        "imagenet",
        "none, imagenet (for vit_small_patch16_224 the timm tag augreg_in21k_ft_in1k: ImageNet-21k, "
        "fine-tuned on ImageNet-1k), dino (the tag dino, self-supervised) or a local .safetensors/.pth/.bin "
        "state dict in timm's key names. imagenet and dino come through timm from the Hugging Face hub or "
        "its cache (HF_HUB_OFFLINE=1 works with a filled cache).",
        TIMM_PANEL,
    )
    img_size: int | None = option(
        None,
        "Side the images are resized to on the device; the position table is resampled to match. The "
        "default, the pretrained resolution, is the accurate choice but slow: hours per MNIST epoch on a "
        "CPU. For small images on a CPU use --img-size 28 --patch-size 4.",
        TIMM_PANEL,
        unset="the model's pretrained resolution, 224 for ViT-S/16",
    )
    patch_size: int | None = option(
        None,
        "Patch side; another than the model's resamples the patch embedding.",
        TIMM_PANEL,
        unset="the model's own, 16 for ViT-S/16",
    )
    channels: str = option(
        "adapt",
        "Gray data: adapt (sum the input conv's RGB weights into one channel) or repeat (copy gray to RGB).",
        TIMM_PANEL,
        choices=CHANNELS,
    )
    adapt: bool = option(
        True,
        "--no-adapt: the model exactly as pretrained; data of another shape is refused with the reason.",
        TIMM_PANEL,
    )
    freeze: str = option(
        "none",
        "none (full fine-tune), backbone (linear probe: only the head trains) or N (freeze patch "
        "embedding, positions and the first N blocks).",
        TIMM_PANEL,
    )
    layer_decay: float | None = option(
        None,
        "Layer-wise lr decay, e.g. 0.75: each block learns at 0.75 x the rate of the one above.",
        TIMM_PANEL,
        unset="off, one learning rate for all layers",
    )

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

    def describe(self) -> str:
        return self.name

    def timm_refusal(self) -> str | None:
        return None


SPECS: dict[str, type[ModelSpec]] = {spec.kind: spec for spec in (ViTSpec, CNNSpec, TimmSpec)}
