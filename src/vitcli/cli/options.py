"""The options of `vitcli train`, `finetune` and `sweep`, made from the settings' own fields.

Every setting is declared once, where it lives: a field of a config section (`vitcli.settings.config`) or
of a model spec (`vitcli.settings.specs`), with its help, its group in `--help`, its spelling and what an
unset value means (`vitcli.settings.fields.option`). This module turns those fields into the commands'
options, with the `[default: ...]` of each command's own defaults, and hands the values given back as
config overrides:

    TRAIN = command_settings("train")        # [model] kind and the ViT's and CNN's fields, data, train, run
    overrides = given_settings(ctx)          # {"model": {...}, "data": {...}, ...}; None is "not given"

Every option defaults to None ("not given"), so that a value from --config or --preset survives unless the
option is given on the command line. A command's class adds these options to the ones its function
declares (`cli.common.vitcli_command(settings=...)`) and takes their values out before the function is
called, so the function keeps only the options that are the command's own.
"""

from __future__ import annotations

import re
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Optional

import typer
from rich.markup import escape

from vitcli.cli.enums import choice, plain
from vitcli.settings.choices import TRAIN_KINDS
from vitcli.settings.config import Config, DataConfig, RunConfig, TrainConfig, finetune_defaults
from vitcli.settings.fields import MODEL_PANEL, OUTPUT_PANEL, TRAINING_PANEL, option_flag, options_of
from vitcli.settings.specs import CNNSpec, TimmSpec, ViTSpec

SETTINGS = "vitcli.settings"  # where a command's class puts the values of these options in ctx.meta


@dataclass(frozen=True)
class Setting:
    """One settings field as a command-line option."""

    section: str  # model | data | train | run
    key: str  # the field's name: the TOML key
    flag: str  # --embed-dim
    value_type: type  # int, float, str or bool
    help: str
    panel: str
    default: Any = None  # the field's own default, for a command whose default model lacks the field
    choices: tuple[str, ...] | None = None
    unset: str | None = None  # what an unset (None) value means
    path: bool = False
    metavar: str | None = None

    @property
    def param(self) -> str:
        """The option's name in the parser: its flag in snake case (--model -> model)."""
        return self.flag[2:].replace("-", "_")


# `--model vit|cnn` is `[model] kind`, which chooses the spec rather than being one of its fields.
KIND = Setting(
    "model", "kind", "--model", str, "The in-house ViT or the baseline CNN.", MODEL_PANEL, choices=TRAIN_KINDS
)


def settings_of(section: str, cls: type) -> list[Setting]:
    """The options declared on the fields of `cls`, a config section or a model spec."""
    hints = typing.get_type_hints(cls)
    out = []
    for f in options_of(cls):
        kinds = [t for t in typing.get_args(hints[f.name]) or (hints[f.name],) if t is not type(None)]
        meta = f.metadata
        out.append(
            Setting(
                section,
                f.name,
                option_flag(f),
                kinds[0],
                meta["help"],
                meta["panel"],
                f.default,
                meta.get("choices"),
                meta.get("unset"),
                meta.get("path", False),
                meta.get("metavar"),
            )
        )
    return out


def command_settings(command: str) -> list[Setting]:
    """The settings `command` offers as options: train's kind and every field of the ViT and the CNN;
    finetune's timm model; both the data, training and output sections. A sweep takes train's, but for
    the output ones, which are the sweep's own (--out and --name of the sweep directory)."""
    shared = [*settings_of("data", DataConfig), *settings_of("train", TrainConfig)]
    if command == "finetune":
        return [*settings_of("model", TimmSpec), *shared, *settings_of("run", RunConfig)]
    model = {s.key: s for s in [*settings_of("model", ViTSpec), *settings_of("model", CNNSpec)]}
    train = [KIND, *model.values(), *shared]  # the CNN's dropout is the ViT's option: one --dropout
    if command == "sweep":
        return train
    return [*train, *settings_of("run", RunConfig)]


def command_defaults(command: str) -> Config:
    return finetune_defaults() if command == "finetune" else Config()


def given_settings(ctx: typer.Context, command: str) -> dict[str, dict[str, Any]]:
    """{section: {key: value}} of every option of `command`'s settings; None where it was not given (a
    sweep's: a list of the values, empty where none was given)."""
    values = ctx.meta[SETTINGS]
    overrides: dict[str, dict[str, Any]] = {"model": {}, "data": {}, "train": {}, "run": {}}
    for s in command_settings(command):
        value = values.get(s.param)
        many = isinstance(value, (list, tuple))
        overrides[s.section][s.key] = [plain(v) for v in value] if many else plain(value)
    return overrides


# --- the options, through Typer ----------------------------------------------------------------------


def click_params(command: str, many: bool = False) -> list:
    """Click options for `command`'s settings, each made by Typer exactly as it makes an option declared
    in a function's signature (same types, choices, switches and help), but from the settings' table.
    With `many`, each option takes one or more values (a sweep's)."""
    defaults = command_defaults(command)
    return [_to_click(s, defaults, many) for s in command_settings(command)]


def _to_click(s: Setting, defaults: Config, many: bool):
    value_type: Any = choice(s.param, s.choices) if s.choices else (Path if s.path else s.value_type)
    decls = [s.flag] if many or s.value_type is not bool else [f"{s.flag}/--no-{s.flag[2:]}"]
    info = typer.Option(
        None,
        *decls,
        help=escape(s.help) + default_help(s, defaults),  # plain text: 'vitcli[tensorboard]' stays
        rich_help_panel=s.panel,
        metavar=s.metavar,
        show_default=False,
    )
    annotation = Optional[list[value_type]] if many else Optional[value_type]
    return _typer_param(typer.models.ParamMeta(name=s.param, default=info, annotation=annotation))


def _typer_param(meta):
    """Typer's own step from a declared parameter to a click option. Typer keeps it private; its name
    changed in Typer 0.2x, so both spellings are tried."""
    try:
        from typer.main import _get_param
    except ImportError:  # Typer before the rename
        from typer.main import get_click_param

        return get_click_param(meta)[0]
    return _get_param(meta)


def default_help(s: Setting, defaults: Config) -> str:
    """` [default: VALUE]` from the command's defaults; for an unset value, what unset means."""
    value = getattr(getattr(defaults, s.section), s.key, s.default)  # train's ViT has no CNN dropout
    if value is None:
        return f" \\[default: {escape(_placeholders(s.unset, defaults))}]" if s.unset else ""
    if isinstance(value, bool):
        value = s.flag[2:] if value else f"no-{s.flag[2:]}"
    return f" \\[default: {escape(str(value))}]"


def _placeholders(unset: str, defaults: Config) -> str:
    """`<model>-<dataset>-...` as --help writes it: MODEL-DATASET-..., with the model's kind where the
    command trains only one kind (finetune: timm-DATASET-...)."""
    fixed = defaults.model.kind if defaults.model.command == "finetune" else "MODEL"

    def word(m: re.Match) -> str:
        return fixed if m.group(1) == "model" else m.group(1).upper()

    return re.sub(r"<(\w+)>", word, unset)


# --- the options that are the commands' own, not settings ----------------------------------------------

ConfigFile = Annotated[
    Optional[Path],
    typer.Option(
        "--config",
        help="TOML file of settings; options given here override it.",
        rich_help_panel=OUTPUT_PANEL,
    ),
]
PresetName = Annotated[
    Optional[str],
    typer.Option(
        "--preset",
        help="A named recipe shipped with vitcli (see vitcli presets); options given here override it.",
        rich_help_panel=OUTPUT_PANEL,
    ),
]
PrintConfig = Annotated[
    bool,
    typer.Option(
        "--print-config", help="Print the resolved config as TOML and exit.", rich_help_panel=OUTPUT_PANEL
    ),
]

Nproc = Annotated[
    Optional[int],
    typer.Option(
        "--nproc",
        help="Train data-parallel in this many processes on this machine (torchrun's launcher; one per GPU, "
        "or CPU processes sharing the cores); --batch-size stays the global batch. See docs/scaling.md.",
        rich_help_panel=TRAINING_PANEL,
    ),
]
Resume = Annotated[
    Optional[Path],
    typer.Option(
        "--resume",
        help="Go on with the run in this directory from its last state (after Ctrl-C, kill -9, a full disk); "
        "only --epochs (more), --device, --threads, --compile, --tensorboard and --data-dir may change.",
        rich_help_panel=OUTPUT_PANEL,
    ),
]
Overwrite = Annotated[
    bool,
    typer.Option(
        "--overwrite", help="Replace the run in --out/--name if there is one.", rich_help_panel=OUTPUT_PANEL
    ),
]
