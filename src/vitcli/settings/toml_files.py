"""TOML files of settings: reading one (every failure a ConfigError of one line) and writing our flat
sections of str, int, float and bool values."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from vitcli.errors import ConfigError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on Python 3.10 only
    import tomli as tomllib


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


def write_toml(values: dict[str, dict[str, Any]], unset_means: dict[str, str]) -> str:
    """TOML of {section: {key: value}}; unset (None) values become comments, with `unset_means[key]`
    where given, so that the file still shows every setting."""
    lines = []
    for section, items in values.items():
        lines.append(f"[{section}]")
        for key, value in items.items():
            if value is None:
                lines.append(f"# {key} = ...  (unset: {unset_means.get(key, 'the default')})")
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
