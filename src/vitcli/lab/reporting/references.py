"""The figures a report places a run against: published from-scratch results, the ViT teaching reports'
figures and vitcli's own measured presets, each with its source, epochs and hardware.

They are data, not code: references.toml in this package, one [[reference]] table per figure, each
checked against its source when it was added (a figure that could not be checked is left out). A run on
2 CPU cores is not a 300-epoch GPU recipe, so every figure carries what it cost (epochs, hardware, time)
and what else sets it apart (`note`): the report shows the comparison with its terms, not a ranking.

`references_for(dataset)` gives one data set's figures; a folder of images has none, since no published
figure is on the same images.
"""

from __future__ import annotations

import functools
import sys
from dataclasses import MISSING, dataclass, fields
from importlib import resources
from pathlib import Path
from typing import Any

from vitcli.errors import ConfigError
from vitcli.settings.choices import DATASETS
from vitcli.settings.suggest import did_you_mean

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on Python 3.10 only
    import tomli as tomllib

REFERENCES_TOML = "references.toml"
FAMILIES = ("vit", "vit-conv-tokenizer", "cnn")
KINDS = ("published", "teaching-report", "vitcli")
NOT_STATED = "not stated"  # the hardware of a source that does not say


@dataclass(frozen=True, kw_only=True)
class Reference:
    dataset: str  # one of vitcli's data set names
    model: str  # as the source spells it ("CCT-7/3x1"; a preset's name for vitcli's own)
    family: str  # one of FAMILIES
    test_accuracy: float  # a fraction: 0.9478 for 94.78%
    parameters: int | None = None  # only where the source states it
    epochs: int | None = None  # None where the source does not say
    pretrained: bool
    hardware: str  # "1 A100", "2 CPU cores", or NOT_STATED
    time: str | None = None  # as the source gives it ("3.83 s", "914 s end to end")
    kind: str  # one of KINDS
    source: str  # who and where: authors, year, title or repository
    url: str
    note: str | None = None  # what makes the figure not comparable, and where in the source it is

    @property
    def percent(self) -> str:
        """The accuracy in percent, trailing zeros dropped: "94.78%", "99.5%", "56%"."""
        return f"{100 * self.test_accuracy:.2f}".rstrip("0").rstrip(".") + "%"

    @property
    def label(self) -> str:
        """One line for a table or a chart: "CCT-7/3x1 94.78% (200 epochs, hardware not stated)"."""
        terms = [f"{self.epochs} epochs" if self.epochs else "epochs not stated"]
        terms.append(f"hardware {NOT_STATED}" if self.hardware == NOT_STATED else self.hardware)
        if self.time:
            terms.append(self.time)
        if self.pretrained:
            terms.append("pretrained")
        return f"{self.model} {self.percent} ({', '.join(terms)})"


def load_references(path: str | Path | None = None) -> list[Reference]:
    """The figures in `path`, or the ones shipped with vitcli when it is None; ConfigError naming the file
    and the entry when one is malformed."""
    if path is None:
        return list(_shipped())
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(f"{path} cannot be read ({e})") from None
    return _parse(text, str(path))


def references_for(dataset: str) -> list[Reference]:
    """The shipped figures on `dataset`, in the file's order; none for a folder (folder:PATH) or a data set
    the file has no figures for."""
    return [ref for ref in load_references() if ref.dataset == dataset]


@functools.cache
def _shipped() -> tuple[Reference, ...]:
    # A tuple, so that a caller changing its list cannot change what the next caller gets.
    text = (resources.files(__package__) / REFERENCES_TOML).read_text(encoding="utf-8")
    return tuple(_parse(text, f"vitcli's {REFERENCES_TOML}"))


_FIELDS = {f.name: f for f in fields(Reference)}
_REQUIRED = [name for name, f in _FIELDS.items() if f.default is MISSING]
_TEXT = {"dataset", "model", "family", "hardware", "time", "kind", "source", "url", "note"}
_COUNTS = {"parameters", "epochs"}


def _parse(text: str, where: str) -> list[Reference]:
    try:
        values = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{where} is not valid TOML ({e})") from None
    unknown = sorted(set(values) - {"reference"})
    if unknown:
        raise ConfigError(f"{where}: unknown table {unknown[0]!r}; the file holds [[reference]] tables only")
    entries = values.get("reference", [])
    if not isinstance(entries, list):
        raise ConfigError(f"{where}: 'reference' must be [[reference]] tables")
    return [_reference(entry, f"{where}, [[reference]] {i}") for i, entry in enumerate(entries, 1)]


def _reference(entry: Any, where: str) -> Reference:
    if not isinstance(entry, dict):
        raise ConfigError(f"{where} must be a table")
    if isinstance(entry.get("model"), str):  # name the entry by its model as well as its place
        where = f"{where} ({entry['model']})"
    for key in entry:
        if key not in _FIELDS:
            hint = did_you_mean(key, _FIELDS)
            raise ConfigError(f"{where}: unknown key {key!r}; {hint}the keys are {', '.join(_FIELDS)}")
    missing = [key for key in _REQUIRED if key not in entry]
    if missing:
        raise ConfigError(f"{where}: missing {', '.join(missing)}")
    for key, value in entry.items():
        _check(key, value, where)
    return Reference(**{**entry, "test_accuracy": float(entry["test_accuracy"])})  # `= 1` reads as an int


def _check(key: str, value: Any, where: str) -> None:
    if key in _TEXT:
        ok, wanted = isinstance(value, str) and bool(value.strip()), "a non-empty string"
    elif key in _COUNTS:
        ok, wanted = _is_number(value, int) and value >= 1, "a whole number of at least 1"
    elif key == "pretrained":
        ok, wanted = isinstance(value, bool), "true or false"
    else:  # test_accuracy
        ok, wanted = (
            _is_number(value, (int, float)) and 0 < value <= 1,
            "a fraction in (0, 1] (0.9478 for 94.78%)",
        )
    if not ok:
        raise ConfigError(f"{where}: {key} must be {wanted}, not {value!r}")
    choices = {"dataset": DATASETS, "family": FAMILIES, "kind": KINDS}.get(key)
    if choices is not None and value not in choices:
        hint = did_you_mean(value, choices)
        raise ConfigError(f"{where}: {key} {value!r} is not known; {hint}use one of {', '.join(choices)}")


def _is_number(value: Any, kinds: type | tuple[type, ...]) -> bool:
    # bool is an int to Python, but `epochs = true` is a slip, not a count
    return isinstance(value, kinds) and not isinstance(value, bool)
