"""Trained models shipped inside vitcli, by name: `vitcli attention mnist-vit` shows attention maps without
training first (docs/models.md), and `vitcli models` lists them.

Each is a run's model.safetensors, renamed NAME.safetensors, in this folder, with an entry in
`listing.toml` that says what it is, the data set it is for, its measured test accuracy and how it was
trained. `training.checkpoint` turns a name that is not an existing path into the file. Nothing here
imports torch: the listing reads the TOML file and the files' sizes.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on Python 3.10 only
    import tomli as tomllib

# A real folder, not importlib.resources' view of it: safetensors memory-maps a file by its path, and
# pip installs a wheel unpacked.
FOLDER = Path(__file__).resolve().parent
LISTING = FOLDER / "listing.toml"


@dataclass(frozen=True)
class ShippedModel:
    name: str
    file: Path
    what: str
    dataset: str  # the data set it is for: its images replace the trainer's copy (folder:/tmp/cifar)
    test_accuracy: float  # a fraction, as `measured_by` measured it
    test_images: int
    parameters: int
    measured_by: str
    trained_by: str
    trained_on: str

    @property
    def size(self) -> int:
        """Bytes on disk."""
        return self.file.stat().st_size


def shipped_models() -> list[ShippedModel]:
    """Every shipped model, in the listing's order."""
    listing = tomllib.loads(LISTING.read_text(encoding="utf-8"))
    return [
        ShippedModel(
            name,
            FOLDER / entry["file"],
            entry["what"],
            entry["dataset"],
            entry["test_accuracy"],
            entry["test_images"],
            entry["parameters"],
            entry["measured_by"],
            entry["trained_by"],
            entry.get("trained_on", ""),
        )
        for name, entry in listing.items()
    ]


def shipped_names() -> list[str]:
    return [model.name for model in shipped_models()]


def shipped_model(name: str) -> ShippedModel | None:
    """The shipped model called `name`, or None."""
    return next((model for model in shipped_models() if model.name == name), None)


def shipped_checkpoint(name: str) -> Path | None:
    """The checkpoint file of the shipped model called `name`, or None (`vitcli train --init NAME`)."""
    model = shipped_model(name)
    return None if model is None else model.file


def shipped_model_of(file: str | Path) -> ShippedModel | None:
    """The shipped model whose checkpoint `file` is, or None (a copy of it elsewhere is a user's file)."""
    file = Path(file).resolve()
    if file.parent != FOLDER:
        return None
    return next((model for model in shipped_models() if model.file == file), None)
