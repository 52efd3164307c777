"""Settings dataclasses from TOML-like values, and the small checks every section uses.

`Config`'s sections and the model specs are plain dataclasses of str, int, float and bool fields (some
optional). `build` makes one from a dict, refusing unknown keys and wrong types with one line that says
where the value came from; the checks below word a bad value by its command-line flag.
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from typing import Any

from vitcli.errors import ConfigError
from vitcli.settings.suggest import did_you_mean


def field_names(cls: type) -> list[str]:
    return [f.name for f in dataclasses.fields(cls)]


def build(cls: type, given: dict[str, Any], where: str) -> Any:
    """`cls(**given)` with every value checked against its field's type; ints pass for floats."""
    hints = typing.get_type_hints(cls)
    names = field_names(cls)
    for key in given:
        if key not in names:
            raise ConfigError(
                f"{where}: unknown key {key!r}; {did_you_mean(key, names)}the keys are {', '.join(names)}"
            )
    return cls(**{key: coerce(value, hints[key], f"{where} {key}") for key, value in given.items()})


def coerce(value: Any, hint: Any, where: str) -> Any:
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


def flag(key: str) -> str:
    """The command-line spelling of a settings key: embed_dim -> --embed-dim."""
    return "--" + key.replace("_", "-")


def one_of(key: str, value: str, choices: tuple[str, ...]) -> None:
    if value not in choices:
        hint = did_you_mean(value, choices).strip()
        hint = f"; {hint}" if hint else ""
        raise ConfigError(f"{flag(key)} must be one of {', '.join(choices)}, got {value!r}{hint}")


def positive(section: Any, *keys: str) -> None:
    """Each of `keys` of `section` is unset (None) or a positive whole number."""
    for key in keys:
        value = getattr(section, key)
        if value is not None and value <= 0:
            raise ConfigError(f"{flag(key)} must be a positive whole number, got {value}")


def class_list(key: str, value: str) -> None:
    """`value` is two or more comma-separated class names or numbers, none empty and none twice."""
    names = [name.strip() for name in value.split(",")]
    if not all(names):
        raise ConfigError(
            f"{flag(key)} {value!r} has an empty name; give comma-separated class names or numbers, "
            f"e.g. {flag(key)} cat,dog or {flag(key)} 0,1"
        )
    twice = [name for name in names if names.count(name) > 1]
    if twice:
        raise ConfigError(f"{flag(key)} names {twice[0]!r} twice; give each class once")
    if len(names) < 2:
        raise ConfigError(f"{flag(key)} {value!r} is one class; a classifier needs two or more")


def fraction(key: str, value: float) -> None:
    """A rate in [0, 1), such as dropout or label smoothing."""
    if not 0 <= value < 1:  # NaN fails this too
        raise ConfigError(f"{flag(key)} must be in [0, 1), got {value}")


def finite(key: str, value: float | None) -> None:
    if value is not None and not math.isfinite(value):
        raise ConfigError(f"{flag(key)} must be a finite number, got {value}")


MAX_NAME_BYTES = 200  # file systems allow 255; the sweep adds its own suffixes to run names


def folder_name(key: str, value: str) -> None:
    """A name that makes one folder inside --out: no path separators, not . or .., not too long."""
    if not value or "/" in value or "\\" in value or value in (".", "..") or "\0" in value:
        raise ConfigError(
            f"{flag(key)} must be a plain folder name (no / or ..), got {value!r}; --out says where it goes"
        )
    if len(value.encode()) > MAX_NAME_BYTES:
        size = len(value.encode())
        raise ConfigError(f"{flag(key)} is {size} bytes long; use a name of at most {MAX_NAME_BYTES} bytes")


# --- the option table: every setting's command-line option, declared on its field ------------------------

MODEL_PANEL, VARIANTS_PANEL, TIMM_PANEL = "Model", "ViTs for small data (docs/small-data.md)", "Model (timm)"
DATA_PANEL, TRAINING_PANEL = "Data", "Training"
LEVERS_PANEL, OUTPUT_PANEL = "Small-data levers (0 is off)", "Output"
TRANSFER_PANEL = "Transfer (docs/small-data.md)"


def option(
    default: Any,
    help: str,
    panel: str,
    *,
    flag: str | None = None,
    choices: tuple[str, ...] | None = None,
    unset: str | None = None,
    path: bool = False,
    metavar: str | None = None,
) -> Any:
    """A settings field and its command-line option, declared together: `help` and `panel` are what
    `--help` shows, `flag` the spelling when it is not the field's (`--model` for a timm model's name),
    `choices` the words it takes, `unset` what an unset (None) value means (in `--help` and in TOML files),
    `path` that the value is a file or folder. vitcli's commands build their options from these fields
    (`vitcli.cli.options`), so a setting is declared once."""
    metadata = {"help": help, "panel": panel, "flag": flag, "choices": choices, "unset": unset}
    return dataclasses.field(default=default, metadata={**metadata, "path": path, "metavar": metavar})


def option_flag(f: dataclasses.Field) -> str:
    """The option's spelling: its declared flag, else the field's name (embed_dim -> --embed-dim)."""
    return f.metadata.get("flag") or flag(f.name)


def options_of(cls: type) -> list[dataclasses.Field]:
    """The fields of a settings dataclass that are command-line options (every field declared with
    `option`)."""
    return [f for f in dataclasses.fields(cls) if "help" in f.metadata]
