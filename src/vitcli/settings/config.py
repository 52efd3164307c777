"""Every setting of a run, as plain dataclasses, with TOML in and out and the checks of each value.

Precedence: dataclass defaults < the TOML file (`--config`) < options given on the command line. The
same names are used everywhere: `embed_dim` here, `--embed-dim` on the command line, `embed_dim` in
`config.toml` and in checkpoint metadata.

    [model]  kind = "vit" | "cnn" | "timm", then that kind's own fields (`settings/specs.py`)
    [data]   dataset, data_dir, val_size, subset, classes, per_class, augment, and the small-data
             augmentations:
             randaugment, erase, mixup, cutmix, mix_off_epochs
    [train]  epochs, batch_size, lr, weight_decay, warmup, label_smoothing, seed, device, threads,
             precision, compile,
             and the regularisers: drop_path, ema, clip_grad
    [run]    out, name

Values are checked as a section is made, each on its own; `Config.validate()` checks how they combine
(heads dividing the embedding), which a sweep records as one failed run rather than an input error.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vitcli.errors import ConfigError
from vitcli.settings import compat, fields
from vitcli.settings.choices import DATASETS, DEVICES, PRECISIONS
from vitcli.settings.fields import DATA_PANEL, LEVERS_PANEL, OUTPUT_PANEL, TRAINING_PANEL, option
from vitcli.settings.presets import load_preset
from vitcli.settings.specs import SPECS, ModelSpec, TimmSpec, ViTSpec
from vitcli.settings.suggest import did_you_mean
from vitcli.settings.toml_files import load_toml, write_toml

MAX_MAGNITUDE = 30  # RandAugment's strongest, on torchvision's scale of 31 bins


@dataclass
class DataConfig:
    dataset: str = option("mnist", "mnist, fashion-mnist, cifar10, cifar100 or folder:PATH.", DATA_PANEL)
    data_dir: str | None = option(
        None,
        "Where data sets are (or are downloaded to).",
        DATA_PANEL,
        unset="$VITCLI_DATA_DIR, else ~/.cache/vitcli/data",
        path=True,
    )
    val_size: int | None = option(
        None,
        "Training images held out for validation; 0 trains on all.",
        DATA_PANEL,
        unset="5000 for the 50k/60k sets, a tenth of smaller ones",
    )
    subset: int | None = option(
        None,
        "Train on only N training images, for quick tries; validation and test are then capped at "
        "max(N, 500) images each (drawn with a fixed seed, every class kept; an explicit --val-size "
        "wins). `vitcli eval` still uses the whole test split.",
        DATA_PANEL,
        unset="every training image",
    )
    augment: bool = option(
        True, "Shifts for digits; crops with padding and flips for natural images.", DATA_PANEL
    )
    classes: str | None = option(
        None,
        "Train and test on these classes only, comma-separated names or numbers (e.g. "
        "airplane,automobile,ship,truck or 0,1,2,3,4), relabelled in the order given.",
        DATA_PANEL,
        unset="every class",
    )
    per_class: int | None = option(
        None,
        "Train on N images of each class (a seeded draw, the same for every --seed); validation is then "
        "capped at max(total, 500) images, and the test split stays whole.",
        DATA_PANEL,
        unset="every training image",
    )
    # The small-data levers (docs/small-data.md); 0 turns each off.
    randaugment: int = option(
        0,
        "RandAugment magnitude 0-30 (9 is usual): two ops per image, each image its own ops and strength "
        "up to M; digits get shape ops only.",
        LEVERS_PANEL,
    )
    erase: float = option(0.0, "Random erasing: the chance an image gets one noise box.", LEVERS_PANEL)
    mixup: float = option(0.0, "mixup alpha (e.g. 0.8); soft targets.", LEVERS_PANEL)
    cutmix: float = option(
        0.0, "cutmix alpha (e.g. 1.0); with --mixup, one of the two per batch.", LEVERS_PANEL
    )
    mix_off_epochs: int = option(0, "Train the last N epochs without mixup and cutmix.", LEVERS_PANEL)

    def __post_init__(self) -> None:
        if self.dataset not in DATASETS and not self.dataset.startswith("folder:"):
            raise ConfigError(
                f"unknown dataset {self.dataset!r}; {did_you_mean(self.dataset, DATASETS)}"
                f"use one of {', '.join(DATASETS)} or folder:PATH"
            )
        if self.dataset == "folder:":
            raise ConfigError("--dataset folder: needs a path, e.g. folder:./my-images")
        if self.val_size is not None and self.val_size < 0:
            raise ConfigError(f"--val-size must be 0 or more, got {self.val_size}")
        fields.positive(self, "subset", "per_class")
        if self.subset is not None and self.per_class is not None:
            raise ConfigError("--subset and --per-class both choose the training images; give one of them")
        if self.classes is not None:
            fields.class_list("classes", self.classes)
        if not 0 <= self.randaugment <= MAX_MAGNITUDE:
            raise ConfigError(
                f"--randaugment must be a magnitude from 0 (off) to {MAX_MAGNITUDE}, got {self.randaugment}; "
                "9 is RandAugment's usual strength"
            )
        if not 0 <= self.erase <= 1:  # NaN fails this too
            raise ConfigError(f"--erase must be a probability in [0, 1], got {self.erase}")
        for key in ("mixup", "cutmix"):
            value = getattr(self, key)
            fields.finite(key, value)
            if value < 0:
                raise ConfigError(f"{fields.flag(key)} must be 0 (off) or a positive alpha, got {value}")
        if self.mix_off_epochs < 0:
            raise ConfigError(f"--mix-off-epochs must be 0 or more, got {self.mix_off_epochs}")

    @property
    def mixing(self) -> bool:
        return self.mixup > 0 or self.cutmix > 0

    def for_evaluation(self, dataset: str | None = None, data_dir: str | None = None) -> DataConfig:
        """The data a checkpoint trained on these settings is evaluated on: the same held-out validation
        images of the same classes, no augmentation, and every training image (a subset only shrinks
        training). `dataset` and `data_dir` replace the trained ones when given."""
        return DataConfig(
            dataset=dataset or self.dataset,
            data_dir=self.data_dir if data_dir is None else data_dir,
            val_size=self.val_size,
            classes=self.classes,
            augment=False,
        )


@dataclass
class TrainConfig:
    epochs: int = option(5, "Passes over the training images.", TRAINING_PANEL)
    batch_size: int | None = option(
        None,
        "Images per step.",
        TRAINING_PANEL,
        unset="128; on a training set under 5,120 images, fewer, lr and warmup scaled to match "
        "(docs/small-data.md)",
    )
    lr: float = option(
        1e-2,
        "Peak AdamW learning rate: ~1e-2 for small ViTs like train's default, ~1e-3 at width 256, ~1e-4 "
        "for pretrained weights at batch 128 (DeiT's 5e-4 x batch/512; larger rates undo what they learned).",
        TRAINING_PANEL,
    )
    weight_decay: float = option(0.05, "AdamW weight decay on weight matrices.", TRAINING_PANEL)
    warmup: float = option(0.2, "Epochs of linear warmup before the cosine decay.", TRAINING_PANEL)
    label_smoothing: float = option(0.0, "Label smoothing of the loss.", TRAINING_PANEL)
    seed: int = option(0, "Seed for the new weights, order and augmentation.", TRAINING_PANEL)
    device: str = option("auto", "auto, cpu, cuda or cuda:N.", TRAINING_PANEL)
    threads: int | None = option(
        None,
        "CPU threads for the whole run, never changed (a rerun on any load is bit-identical); 0 is "
        "PyTorch's default, a thread per core, whatever the load.",
        TRAINING_PANEL,
        unset="one per core that other programs leave free, followed as their load changes "
        "(at most OMP_NUM_THREADS)",
    )
    precision: str = option(
        "auto",
        "auto, fp32 or bf16 (bfloat16 autocast). auto: bf16 on CUDA, and on a CPU with native bf16 "
        "(AVX512-BF16 or AMX) for the models it speeds up (the CNN); fp32 otherwise.",
        TRAINING_PANEL,
    )
    compile: bool = option(False, "torch.compile the model (faster steps, slower start).", TRAINING_PANEL)
    drop_path: float = option(
        0.0,
        "Stochastic depth: the last block's drop rate, rising from 0 at the first (e.g. 0.1).",
        LEVERS_PANEL,
    )
    ema: float = option(
        0.0,
        "Decay of a moving average of the weights (e.g. 0.999), validated beside them; the better is kept.",
        LEVERS_PANEL,
    )
    clip_grad: float = option(0.0, "Clip the gradients' global norm to this (e.g. 1.0).", LEVERS_PANEL)
    snapshot_attention: int = option(
        0,
        "Keep the attention of K fixed validation images after every epoch, a few KB an epoch in the run "
        "directory's attention-snapshots/; vitcli inspect RUN --evolution draws it.",
        OUTPUT_PANEL,
        metavar="K",
    )
    tensorboard: bool = option(
        False,
        "Write loss, accuracy, learning rate and images/s (per epoch, and ~50 times an epoch) to "
        "RUN/tensorboard/ for TensorBoard; needs pip install 'vitcli[tensorboard]'.",
        OUTPUT_PANEL,
    )

    def __post_init__(self) -> None:
        fields.positive(self, "epochs", "batch_size")
        for key in ("lr", "weight_decay", "warmup", "clip_grad"):
            fields.finite(key, getattr(self, key))
        if not self.lr > 0:
            raise ConfigError(f"--lr must be positive, got {self.lr}")
        if self.weight_decay < 0:
            raise ConfigError(f"--weight-decay must be 0 or more, got {self.weight_decay}")
        if self.warmup < 0:
            raise ConfigError(f"--warmup must be 0 or more epochs, got {self.warmup}")
        fields.fraction("label_smoothing", self.label_smoothing)
        fields.fraction("drop_path", self.drop_path)
        fields.fraction("ema", self.ema)
        if self.clip_grad < 0:
            raise ConfigError(f"--clip-grad must be 0 (off) or a positive norm, got {self.clip_grad}")
        if self.snapshot_attention < 0:
            raise ConfigError(
                f"--snapshot-attention must be 0 (off) or a number of images, got {self.snapshot_attention}"
            )
        if self.threads is not None and self.threads < 0:
            raise ConfigError(
                f"--threads must be a number of threads, or 0 for PyTorch's default, got {self.threads}"
            )
        fields.one_of("precision", self.precision, PRECISIONS)
        if not (self.device in DEVICES or self.device.startswith("cuda:")):
            raise ConfigError(f"--device must be auto, cpu, cuda or cuda:N, got {self.device!r}")


@dataclass
class RunConfig:
    out: str = option("runs", "Folder for run directories.", OUTPUT_PANEL, path=True)
    name: str | None = option(
        None, "Run directory name.", OUTPUT_PANEL, unset="<model>-<dataset>-<date>-<time>"
    )

    def __post_init__(self) -> None:
        if self.name is not None:  # a run directory is made inside --out, never elsewhere
            fields.folder_name("name", self.name)


SECTIONS = {"data": DataConfig, "train": TrainConfig, "run": RunConfig}  # and "model", a ModelSpec


@dataclass
class Config:
    model: ModelSpec = field(default_factory=ViTSpec)
    data: DataConfig = field(default_factory=DataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    run: RunConfig = field(default_factory=RunConfig)
    # What reading the settings left out and why (another kind's options): shown, never saved or compared.
    notes: list[str] = field(default_factory=list, compare=False, repr=False)

    def to_dict(self) -> dict[str, dict[str, Any]]:
        return {
            "model": self.model.to_dict(),
            **{name: dataclasses.asdict(getattr(self, name)) for name in SECTIONS},
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    def to_toml(self) -> str:
        return dump_toml(self.to_dict())

    @classmethod
    def from_dict(cls, values: dict[str, Any], source: str = "config") -> Config:
        """Build from nested {section: {key: value}}; unknown sections or keys and wrong types fail.
        Settings written by vitcli 0.1.0 are read as they were meant."""
        return cls().merged(values, source)

    def merged(self, values: dict[str, dict[str, Any]], source: str = "options") -> Config:
        """A copy with `values` ({section: {key: value}}) applied over this config; None values are
        skipped, so that command-line options left out keep the file's or the default value."""
        values = compat.upgrade_settings(values)
        unknown = set(values) - {"model", *SECTIONS}
        if unknown:
            raise ConfigError(
                f"{source}: unknown section [{sorted(unknown)[0]}]; "
                f"{did_you_mean(sorted(unknown)[0], ['model', *SECTIONS])}"
                f"the sections are model, {', '.join(SECTIONS)}"
            )
        for section, given in values.items():
            if not isinstance(given, dict):
                raise ConfigError(f"{source}: '{section}' must be a table ([{section}])")
        given = {
            section: {k: v for k, v in items.items() if v is not None} for section, items in values.items()
        }
        notes = list(self.notes)
        model = merge_model(self.model, given.get("model", {}), source, notes)
        parts = {
            name: fields.build(
                cls, {**dataclasses.asdict(getattr(self, name)), **given.get(name, {})}, f"{source}: [{name}]"
            )
            for name, cls in SECTIONS.items()
        }
        return Config(model=model, notes=notes, **parts)

    def validate(self) -> Config:
        """Check how the values combine, where that needs no data; raise ConfigError on the first."""
        self.model.validate()
        if self.train.drop_path > 0 and not self.model.residual:
            raise ConfigError(
                f"--drop-path drops residual branches, and the {self.model.kind} model has none; "
                "leave it at 0 for this model"
            )
        off, epochs = self.data.mix_off_epochs, self.train.epochs
        if self.data.mixing and off >= epochs:
            raise ConfigError(
                f"--mix-off-epochs {off} leaves none of the {epochs} epochs to mixup and cutmix; "
                f"use fewer than {epochs}, or turn mixing off with --mixup 0 --cutmix 0"
            )
        return self


def merge_model(base: ModelSpec, given: dict[str, Any], source: str, notes: list[str]) -> ModelSpec:
    """The [model] spec `given` describes over `base`. Another kind than `base`'s starts from its own
    defaults (a ViT's patch_size means nothing to a timm model, whose unset patch size is its own); a
    setting only other kinds have is left out with a note, so that `--model cnn --heads 3` trains the CNN
    and says that heads are the ViT's."""
    kind = given.get("kind", base.kind)
    if kind not in SPECS:
        raise ConfigError(f"{source}: [model] kind must be one of {', '.join(SPECS)}, got {kind!r}")
    spec_cls = SPECS[kind]
    own = fields.field_names(spec_cls)
    values = dataclasses.asdict(base) if kind == base.kind else {}
    for key, value in given.items():
        if key == "kind":
            continue
        owners = [k for k, other in SPECS.items() if key in fields.field_names(other)]
        if key in own or not owners:  # an unknown key is refused by fields.build, with the list of keys
            values[key] = value
        else:
            said = fields.flag(key) if source == "options" else f"{source}: [model] {key}"
            notes.append(
                f"{said} is a setting of {' and '.join(owners)} models; "
                f"a {kind} model has none, so it is ignored"
            )
    return fields.build(spec_cls, values, f"{source}: [model]")


def finetune_defaults() -> Config:
    """The defaults of `vitcli finetune`: a timm ViT-S, and a learning rate for pretrained weights.

    lr 1e-4: DeiT's rule, 5e-4 x batch / 512, gives 1.25e-4 at batch 128. The train default (1e-2, right
    for the width-32 teaching ViT) would throw pretrained weights far from where they were learned.
    """
    return Config(model=TimmSpec(), train=TrainConfig(lr=1e-4))


def load_config(
    path: str | Path | None,
    overrides: dict[str, dict[str, Any]] | None = None,
    defaults: Config | None = None,
    preset: str | None = None,
) -> Config:
    """`defaults` (Config() unless given), then the named preset (`vitcli.settings.presets`), then the TOML
    file (if any), then `overrides`. Each value is checked here; how they combine is checked by
    `Config.validate()`, which `train_run` calls."""
    config = defaults or Config()
    if preset:
        config = config.merged(load_preset(preset).settings, source=f"preset {preset}")
    if path:
        config = config.merged(load_toml(path), source=str(path))
    return config.merged(overrides or {}, source="options")


def dump_toml(values: dict[str, dict[str, Any]]) -> str:
    """TOML of settings; an unset (None) value becomes a comment that says what unset means."""
    unset_means = {
        f.name: f.metadata["unset"]
        for cls in (*SECTIONS.values(), *SPECS.values())
        for f in dataclasses.fields(cls)
        if f.metadata.get("unset")
    }
    return write_toml(values, unset_means)
