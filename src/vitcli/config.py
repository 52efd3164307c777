"""Every setting of a run, as plain dataclasses, with TOML in and out and every check of bad values.

Precedence: dataclass defaults < the TOML file (`--config`) < options given on the command line. The
same names are used everywhere: `embed_dim` here, `--embed-dim` on the command line, `embed_dim` in
`config.toml` and in checkpoint metadata.

    [model]  name, embed_dim, patch_size, depth, heads, mlp_dim, pos_embed, dropout
    [data]   dataset, data_dir, val_size, subset, augment
    [train]  epochs, batch_size, lr, weight_decay, warmup, label_smoothing, seed, device, compile
    [run]    out, name
    [finetune]  model, pretrained, img_size, patch_size, channels, adapt, freeze, layer_decay
             (only for `vitcli finetune`, where [model] name is "timm"; absent otherwise)
"""

from __future__ import annotations

import dataclasses
import json
import sys
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vitcli.errors import ConfigError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on Python 3.10 only
    import tomli as tomllib

MODELS = ("vit", "cnn", "timm")  # timm: a timm ViT described by the [finetune] section
POS_EMBEDS = ("learned", "sinusoidal")
DATASETS = ("mnist", "fashion-mnist", "cifar10", "cifar100")  # and folder:PATH
PRETRAINED = ("none", "imagenet", "dino")  # or the path of a .safetensors, .pth or .bin state dict
CHANNELS = ("adapt", "repeat")


@dataclass
class ModelConfig:
    name: str = "vit"  # vit | cnn | timm (finetune's model; the fields below are the in-house ViT's)
    embed_dim: int = 32
    patch_size: int = 7
    depth: int = 2
    heads: int = 2
    mlp_dim: int | None = None  # hidden size of the MLP; unset means 4 x embed_dim
    pos_embed: str = "learned"  # learned | sinusoidal
    dropout: float = 0.0


@dataclass
class DataConfig:
    dataset: str = "mnist"  # mnist | fashion-mnist | cifar10 | cifar100 | folder:PATH
    data_dir: str | None = None  # unset: $VITCLI_DATA_DIR, else ~/.cache/vitcli/data
    val_size: int | None = None  # images held out of train; unset: 5,000 (a tenth for sets under 50k)
    subset: int | None = None  # train on only this many training images
    augment: bool = True

    def for_evaluation(self, dataset: str | None = None, data_dir: str | None = None) -> DataConfig:
        """The data a checkpoint trained on these settings is evaluated on: the same held-out validation
        images, no augmentation, and every training image (a subset only shrinks training). `dataset`
        and `data_dir` replace the trained ones when given."""
        return DataConfig(dataset=dataset or self.dataset, data_dir=self.data_dir if data_dir is None else data_dir,
                          val_size=self.val_size, augment=False)


@dataclass
class TrainConfig:
    epochs: int = 5
    batch_size: int = 128
    lr: float = 1e-2  # right for the small default ViT; wider models (dim 256) want ~1e-3
    weight_decay: float = 0.05
    warmup: float = 0.2  # epochs of linear warmup before the cosine decay
    label_smoothing: float = 0.0
    seed: int = 0
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    compile: bool = False


@dataclass
class RunConfig:
    out: str = "runs"
    name: str | None = None  # unset: <model>-<dataset>-<date>-<time>


@dataclass
class FinetuneConfig:
    model: str = "vit_small_patch16_224"  # a timm Vision Transformer
    pretrained: str = "imagenet"  # none | imagenet | dino | path of a .safetensors / .pth / .bin state dict
    img_size: int | None = None  # unset: the model's pretrained resolution (224 for vit_small_patch16_224)
    patch_size: int | None = None  # unset: the model's own (16 for vit_small_patch16_224)
    channels: str = "adapt"  # gray input: adapt (input conv summed over RGB) | repeat (gray copied to RGB)
    adapt: bool = True  # false: the model exactly as pretrained, and data that does not fit is refused
    freeze: str = "none"  # none | backbone (linear probe) | N (patch embedding, positions and first N blocks)
    layer_decay: float | None = None  # unset: one learning rate for all layers


@dataclass
class Config:
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    run: RunConfig = field(default_factory=RunConfig)
    finetune: FinetuneConfig | None = None  # set by `vitcli finetune` only

    def to_dict(self) -> dict[str, dict[str, Any]]:
        values = dataclasses.asdict(self)
        if self.finetune is None:
            del values["finetune"]  # train's config.toml and metadata stay as they were
        if self.model.name == "timm":
            # The in-house ViT's settings mean nothing for a timm model; showing them would mislead.
            values["model"] = {"name": "timm"}
        return values

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    def to_toml(self) -> str:
        return dump_toml(self.to_dict())

    @classmethod
    def from_dict(cls, values: dict[str, Any], source: str = "config") -> Config:
        """Build from nested {section: {key: value}}; unknown sections or keys and wrong types fail."""
        sections = _sections()
        unknown = set(values) - set(sections)
        if unknown:
            raise ConfigError(
                f"{source}: unknown section [{sorted(unknown)[0]}]; the sections are {', '.join(sections)}"
            )
        parts = {}
        for section, section_cls in sections.items():
            if section in OPTIONAL_SECTIONS and section not in values:
                continue
            given = values.get(section, {})
            if not isinstance(given, dict):
                raise ConfigError(f"{source}: '{section}' must be a table ([{section}])")
            parts[section] = _build_section(section_cls, given, f"{source}: [{section}]")
        return cls(**parts)

    def merged(self, overrides: dict[str, dict[str, Any]]) -> Config:
        """A copy with `overrides` ({section: {key: value}}) applied; None values are skipped, so
        that command-line options left out keep the file's or the default value."""
        values = self.to_dict()
        for section, items in overrides.items():
            for key, value in items.items():
                if value is not None:
                    values.setdefault(section, {})[key] = value
        return Config.from_dict(values, source="options")

    def validate(self) -> Config:
        """Check every value that can be checked without the data; raise ConfigError on the first."""
        self.validate_values()
        m = self.model
        if m.embed_dim % m.heads:
            divisors = [h for h in range(1, m.embed_dim + 1) if m.embed_dim % h == 0 and h <= 16]
            raise ConfigError(
                f"--embed-dim {m.embed_dim} is not divisible by --heads {m.heads}: each head gets an equal "
                f"share of the embedding; use heads in {divisors} or change --embed-dim"
            )
        return self

    def validate_values(self) -> Config:
        """Check each value on its own, leaving out how values combine (heads dividing embed_dim): a
        sweep tells a bad value (an input error) from a bad combination (one failed run) by this."""
        m, d, t = self.model, self.data, self.train
        _one_of("--model", m.name, MODELS)
        _one_of("--pos-embed", m.pos_embed, POS_EMBEDS)
        for flag, value in [("--embed-dim", m.embed_dim), ("--patch-size", m.patch_size),
                            ("--depth", m.depth), ("--heads", m.heads), ("--mlp-dim", m.mlp_dim),
                            ("--epochs", t.epochs), ("--batch-size", t.batch_size), ("--subset", d.subset)]:
            if value is not None and value <= 0:
                raise ConfigError(f"{flag} must be a positive whole number, got {value}")
        if not 0 <= m.dropout < 1:
            raise ConfigError(f"--dropout must be in [0, 1), got {m.dropout}")
        if d.dataset not in DATASETS and not d.dataset.startswith("folder:"):
            raise ConfigError(
                f"unknown dataset {d.dataset!r}; use one of {', '.join(DATASETS)} or folder:PATH"
            )
        if d.dataset == "folder:":
            raise ConfigError("--dataset folder: needs a path, e.g. folder:./my-images")
        if d.val_size is not None and d.val_size < 0:
            raise ConfigError(f"--val-size must be 0 or more, got {d.val_size}")
        if not t.lr > 0:
            raise ConfigError(f"--lr must be positive, got {t.lr}")
        if t.weight_decay < 0:
            raise ConfigError(f"--weight-decay must be 0 or more, got {t.weight_decay}")
        if t.warmup < 0:
            raise ConfigError(f"--warmup must be 0 or more epochs, got {t.warmup}")
        if not 0 <= t.label_smoothing < 1:
            raise ConfigError(f"--label-smoothing must be in [0, 1), got {t.label_smoothing}")
        if not (t.device in ("auto", "cpu", "cuda") or t.device.startswith("cuda:")):
            raise ConfigError(f"--device must be auto, cpu, cuda or cuda:N, got {t.device!r}")
        if (m.name == "timm") != (self.finetune is not None):
            raise ConfigError(
                "timm models are trained with `vitcli finetune` (a [finetune] section with [model] name = \"timm\"); "
                "`vitcli train` trains vit or cnn"
            )
        if self.finetune is not None:
            _validate_finetune(self.finetune)
        return self


def load_toml(path: str | Path) -> dict[str, Any]:
    """Read a TOML file into a dict; a missing or malformed file is a ConfigError."""
    path = Path(path)
    try:
        with path.open("rb") as f:
            return tomllib.load(f)
    except FileNotFoundError:
        raise ConfigError(f"config file {path} does not exist") from None
    except IsADirectoryError:
        raise ConfigError(f"config file {path} is a directory; pass a .toml file") from None
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"config file {path} is not valid TOML: {e}") from None
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(f"config file {path} cannot be read: {e}") from None


def _validate_finetune(f: FinetuneConfig) -> None:
    if not f.model:
        raise ConfigError("--model must name a timm ViT, e.g. vit_small_patch16_224")
    if not f.pretrained:
        raise ConfigError(f"--pretrained must be {', '.join(PRETRAINED)} or a weights file")
    _one_of("--channels", f.channels, CHANNELS)
    for flag, value in [("--img-size", f.img_size), ("--patch-size", f.patch_size)]:
        if value is not None and value <= 0:
            raise ConfigError(f"{flag} must be a positive whole number, got {value}")
    if f.img_size and f.patch_size and f.img_size % f.patch_size:
        raise ConfigError(
            f"--img-size {f.img_size} is not a multiple of --patch-size {f.patch_size}: the image is cut into "
            f"whole patches; use a patch size that divides {f.img_size}, such as "
            + ", ".join(str(p) for p in range(2, f.img_size + 1) if f.img_size % p == 0)
        )
    if f.freeze not in ("none", "backbone") and not f.freeze.isdigit():
        raise ConfigError(f"--freeze must be none, backbone or a number of blocks, got {f.freeze!r}")
    if f.layer_decay is not None and not 0 < f.layer_decay <= 1:
        raise ConfigError(f"--layer-decay must be in (0, 1], e.g. 0.75, got {f.layer_decay}")


def finetune_defaults() -> Config:
    """The defaults of `vitcli finetune`: a timm ViT-S, and a learning rate for pretrained weights.

    lr 1e-4: DeiT's rule, 5e-4 x batch / 512, gives 1.25e-4 at batch 128. The train default (1e-2, right
    for the width-32 teaching ViT) would throw pretrained weights far from where they were learned.
    """
    return Config(model=ModelConfig(name="timm"), train=TrainConfig(lr=1e-4), finetune=FinetuneConfig())


def load_config(
    path: str | Path | None,
    overrides: dict[str, dict[str, Any]] | None = None,
    defaults: Config | None = None,
) -> Config:
    """`defaults` (Config() unless given), then the TOML file (if any), then `overrides`; validated."""
    config = defaults or Config()
    if path:
        values = config.to_dict()
        for section, items in load_toml(path).items():
            merged = {**values[section], **items} if isinstance(items, dict) and section in values else items
            values[section] = merged
        config = Config.from_dict(values, source=str(path))
    return config.merged(overrides or {}).validate()


# What an unset (None) value means, written as a comment in TOML files so that every setting shows.
UNSET_MEANS = {
    "mlp_dim": "4 x embed_dim",
    "data_dir": "$VITCLI_DATA_DIR, else ~/.cache/vitcli/data",
    "val_size": "5000 for the 50k/60k sets, a tenth of smaller ones",
    "subset": "every training image",
    "name": "<model>-<dataset>-<date>-<time>",
    "img_size": "the model's pretrained resolution",
    "patch_size": "the model's own",
    "layer_decay": "off, one learning rate for all layers",
}


def dump_toml(values: dict[str, dict[str, Any]]) -> str:
    """TOML for our flat sections of str/int/float/bool values; unset (None) values become comments so
    the file still shows every setting."""
    lines = []
    for section, items in values.items():
        lines.append(f"[{section}]")
        for key, value in items.items():
            if value is None:
                lines.append(f"# {key} = ...  (unset: {UNSET_MEANS.get(key, 'the default')})")
            else:
                lines.append(f"{key} = {_toml_value(value)}")
        lines.append("")
    return "\n".join(lines)


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)  # a JSON string is a valid TOML basic string
    raise TypeError(f"cannot write {type(value).__name__} to TOML")


OPTIONAL_SECTIONS = ("finetune",)  # absent from a file or dict: None


def _sections() -> dict[str, type]:
    hints = typing.get_type_hints(Config)
    # `FinetuneConfig | None` -> FinetuneConfig
    return {f.name: next(k for k in typing.get_args(hints[f.name]) or (hints[f.name],) if k is not type(None))
            for f in dataclasses.fields(Config)}


def _build_section(section_cls: type, given: dict[str, Any], where: str) -> Any:
    hints = typing.get_type_hints(section_cls)
    names = [f.name for f in dataclasses.fields(section_cls)]
    for key in given:
        if key not in hints:
            raise ConfigError(f"{where}: unknown key {key!r}; the keys are {', '.join(names)}")
    return section_cls(**{key: _coerce(value, hints[key], f"{where} {key}") for key, value in given.items()})


def _coerce(value: Any, hint: Any, where: str) -> Any:
    """Check a value against a field's type; ints are accepted where floats are expected."""
    is_union = typing.get_origin(hint) in (typing.Union, types.UnionType)
    allowed = typing.get_args(hint) if is_union else (hint,)
    if value is None and type(None) in allowed:
        return None
    for kind in allowed:
        if kind is bool and isinstance(value, bool):
            return value
        if kind is int and isinstance(value, int) and not isinstance(value, bool):
            return value
        if kind is float and isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if kind is str and isinstance(value, str):
            return value
    expected = " or ".join(k.__name__ for k in allowed if k is not type(None))
    raise ConfigError(f"{where} must be {expected}, got {value!r}")


def _one_of(flag: str, value: str, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise ConfigError(f"{flag} must be one of {', '.join(choices)}, got {value!r}")
