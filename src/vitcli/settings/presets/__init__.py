"""Named recipes shipped with vitcli: `vitcli train --preset NAME`, listed by `vitcli presets`.

Each is a TOML file in this folder with the usual [model], [data] and [train] sections, and a [preset]
table that says what the recipe is for and what it was measured to reach, on what and in how long, with
the command that measured it (an unmeasured recipe says "not measured"). Settings apply in this order:
defaults, the preset, a --config file, the command line.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from importlib import resources
from typing import Any

from vitcli.errors import ConfigError
from vitcli.settings.suggest import did_you_mean

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on Python 3.10 only
    import tomli as tomllib

NOT_MEASURED = "not measured"


@dataclass(frozen=True)
class Preset:
    name: str
    description: str
    reaches: str  # e.g. "99.1% MNIST test", or "not measured"
    on: str  # the hardware it was measured on
    time: str  # how long, start of the command to the final table
    measured_by: str  # the command that measured it
    settings: dict[str, dict[str, Any]]  # [model], [data], [train]

    @property
    def dataset(self) -> str | None:
        """The data set the recipe is for; None for one made for any (`small`): it trains on the --dataset
        given, else the default, as a run without a preset does."""
        return self.settings.get("data", {}).get("dataset")

    @property
    def model(self) -> str:
        """A short description of the model: kind and, for a ViT, its shape."""
        m = self.settings.get("model", {})
        if m.get("kind", "vit") != "vit":
            return m["kind"]
        # the tokens' source: a patch size, or a convolutional tokenizer's stages ("conv3"; "conv0": chosen
        # from the image size, as --conv-layers 0 says)
        tokens = f"conv{m.get('conv_layers', 2)}" if m.get("tokenizer") == "conv" else m.get("patch_size", 7)
        return f"vit {m.get('embed_dim', 32)}/{tokens}/{m.get('depth', 2)}"


def names() -> list[str]:
    return sorted(f.name[: -len(".toml")] for f in _folder().iterdir() if f.name.endswith(".toml"))


def load_preset(name: str) -> Preset:
    """The preset called `name`; ConfigError with the names there are (and the nearest) otherwise."""
    known = names()
    if name not in known:
        hint = did_you_mean(name, known)
        raise ConfigError(f"no preset {name!r}; {hint}the presets are {', '.join(known)} (vitcli presets)")
    values = tomllib.loads((_folder() / f"{name}.toml").read_text(encoding="utf-8"))
    about = values.pop("preset")
    return Preset(
        name,
        about["description"],
        about.get("reaches", NOT_MEASURED),
        about.get("on", ""),
        about.get("time", ""),
        about.get("measured_by", ""),
        values,
    )


def all_presets() -> list[Preset]:
    return [load_preset(name) for name in names()]


def _folder():
    return resources.files(__name__)
