"""Hyperparameter sweeps: a grid of train settings, one run directory per run, one results table.

    sweep = plan_sweep({"embed_dim": [8, 16, 32], "depth": [2, 4]}, out="sweeps")
    rows = run_sweep(sweep, on_event=print)          # vitcli.sweeps.execute
    groups = aggregate(rows, sweep.axes)              # vitcli.sweeps.results

A sweep directory `sweeps/<name>/` holds one run directory per run (as `vitcli train` writes them) and
    results.jsonl   one JSON object per run: status, swept values, full config, metrics or failure reason
    results.csv     the same rows, flat, for spreadsheets
Both are rewritten atomically after every run (`sweep_results`, which also summarises them).

This module plans: identity and resume rest on a run's key, a hash of its full resolved config without
output paths, so the same settings always get the same key and run directory (`sweep_run` runs them).
Runs that differ only in options their model kind does not have (--embed-dim for the CNN) are one run.
"""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from vitcli.data import load_splits
from vitcli.errors import ConfigError
from vitcli.models import count_parameters, num_tokens
from vitcli.models.build import build_module
from vitcli.runtime.devices import resolve_device
from vitcli.settings import fields
from vitcli.settings.choices import SWEEP_MODES
from vitcli.settings.config import Config, DataConfig, RunConfig, TrainConfig, load_config, load_toml
from vitcli.settings.fields import field_names
from vitcli.settings.specs import SPECS
from vitcli.settings.suggest import did_you_mean
from vitcli.sweeps.results import describe, fmt_value, recorded_rows

MODES = SWEEP_MODES


def _sweepable() -> dict[str, tuple[str, str]]:
    """Option name (as in `[grid]`, snake case) -> (Config section, field), for every setting of a run:
    the model kind (`--model`), every kind's own settings, data and training.

    The output settings ([run] out and name) belong to the sweep itself, so a timm model's `name` is not
    swept (a sweep of timm models is a [grid] of whole configs, not yet offered).
    """
    options = {"model": ("model", "kind")}
    sweep_own = field_names(RunConfig)
    for spec in SPECS.values():
        options.update({name: ("model", name) for name in field_names(spec) if name not in sweep_own})
    for section, section_cls in (("data", DataConfig), ("train", TrainConfig)):
        options.update({name: (section, name) for name in field_names(section_cls)})
    return options


def applies(key: str, config: Config) -> bool:
    """Whether option `key` is a setting of `config`'s run (a ViT option is none of a CNN's)."""
    section, name = SWEEPABLE[key]
    return section != "model" or name == "kind" or name in field_names(type(config.model))


SWEEPABLE = _sweepable()


@dataclass
class PlannedRun:
    index: int  # 1-based, in plan order
    values: dict[str, Any]  # the swept values of this run
    config: Config  # resolved, output paths set to the sweep's directory
    key: str  # swept values that are no setting of this run's model kind are None
    invalid: str | None  # why the combination cannot run, when that is known without the data

    @property
    def label(self) -> str:
        return describe(self.values)


@dataclass
class Sweep:
    name: str
    dir: Path
    mode: str
    axes: list[str]
    runs: list[PlannedRun]
    notes: list[str] = dataclasses.field(default_factory=list)  # runs merged because they are the same


# --- planning ----------------------------------------------------------------------------------------


def plan_sweep(
    options: dict[str, list[Any]] | None = None,
    config_path: str | Path | None = None,
    mode: str = "grid",
    name: str | None = None,
    out: str | Path = "sweeps",
    preset: str | None = None,
) -> Sweep:
    """The runs of a sweep. `options` maps option names (SWEEPABLE) to their command-line values: one
    value is shared by every run, several are swept. A `[grid]` table in the TOML file adds swept lists,
    its other sections the shared settings over those of the named `preset`; the command line overrides
    them all. Bad input raises ConfigError before anything is written."""
    base, grid = _read_config(config_path, preset)
    for key, values in (options or {}).items():
        if key not in SWEEPABLE:
            raise ConfigError(f"{key} cannot be swept; the options are {', '.join(SWEEPABLE)}")
        if not values:
            raise ConfigError(f"--{_flag(key)} needs at least one value")
        grid[key] = list(values)
    shared = {k: v[0] for k, v in grid.items() if len(v) == 1}
    base = base.merged(_nest(shared))
    axes = {k: v for k, v in grid.items() if len(v) > 1}
    axes = {k: axes[k] for k in SWEEPABLE if k in axes}  # one column order, whatever the input order
    _check_values(base, axes)
    combos, configs, keys, notes = _distinct_runs(base, axes, expand(axes, mode))
    name = name or default_name(list(axes), mode, keys)
    fields.folder_name("name", name)
    sweep_dir = Path(out).expanduser() / name
    runs = []
    for index, (values, config, key) in enumerate(zip(combos, configs, keys), start=1):
        config.run.out, config.run.name = str(sweep_dir), run_dir_name(values, key)
        runs.append(PlannedRun(index, values, config, key, _combination_error(config)))
    return Sweep(name, sweep_dir, mode, list(axes), runs, notes)


def _distinct_runs(base: Config, axes: dict[str, list[Any]], combos: list[dict[str, Any]]):
    """The runs the combinations describe, once each. A swept value that is no setting of its run's model
    kind (--embed-dim for the CNN) becomes None, and the runs that differ only by such values are one
    run; an option that is a setting of no run is refused, as are values repeated on the command line."""
    configs = [base.merged(_nest(values)) for values in combos]
    shown = [
        {k: v if applies(k, c) else None for k, v in values.items()} for values, c in zip(combos, configs)
    ]
    for key in axes:
        if all(values[key] is None for values in shown):
            kinds = sorted({c.model.kind for c in configs})
            raise ConfigError(
                f"{fields.flag(key)} is not a setting of the {' or '.join(kinds)} model this sweep trains, "
                "so each of its values would train the same model again; leave it out, or sweep --model too"
            )
    first: dict[str, int] = {}
    kept: list[int] = []
    keys = [run_key(config) for config in configs]
    for i, key in enumerate(keys):
        if key not in first:
            first[key] = i
            kept.append(i)
        elif combos[first[key]] == combos[i] or shown[first[key]] != shown[i]:
            j = first[key]
            raise ConfigError(
                f"runs {j + 1} and {i + 1} are the same run ({describe(combos[j])}); "
                "remove the repeated values"
            )
    merged = len(configs) - len(kept)
    what = "1 combination" if merged == 1 else f"{merged} combinations"
    notes = [f"{what} left out: the same run as another, but for options its model lacks"]
    notes = notes if merged else []
    return [shown[i] for i in kept], [configs[i] for i in kept], [keys[i] for i in kept], notes


def expand(axes: dict[str, list[Any]], mode: str = "grid") -> list[dict[str, Any]]:
    """Swept values per run: the cartesian product (first option slowest) or the lists walked in step.
    Seeds are repeats, never a setting to walk in step: in zip mode every row runs with each seed (an
    ablation of rows over three seeds is `--mode zip ... --seed 0 1 2`)."""
    if mode not in MODES:
        raise ConfigError(f"--mode must be one of {', '.join(MODES)}, got {mode!r}")
    if mode == "grid":
        return [dict(zip(axes, row)) for row in itertools.product(*axes.values())]
    zipped = {k: v for k, v in axes.items() if k != "seed"}
    lengths = {k: len(v) for k, v in zipped.items()}
    if len(set(lengths.values())) > 1:
        listed = ", ".join(f"--{_flag(k)} {n}" for k, n in lengths.items())
        raise ConfigError(f"--mode zip needs lists of the same length (--seed aside); got {listed} values")
    rows = [dict(zip(zipped, row)) for row in zip(*zipped.values())] or [{}]
    seeds = [{"seed": seed} for seed in axes.get("seed", [])] or [{}]
    runs = [{**row, **seed} for row in rows for seed in seeds]
    return [{k: run[k] for k in axes} for run in runs]  # the options' order, whatever the input order


def run_key(config: Config) -> str:
    """A short stable hash of everything that decides the run's result (not where it is written)."""
    settings = {k: v for k, v in config.to_dict().items() if k != "run"}
    return hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:8]


def run_dir_name(values: dict[str, Any], key: str) -> str:
    readable = "-".join(f"{k}={fmt_value(v)}" for k, v in values.items() if v is not None)
    readable = re.sub(r"[^A-Za-z0-9.=_+-]", "_", readable)[:120]
    return f"{readable}-{key}" if readable else key


def default_name(axes: list[str], mode: str, keys: list[str]) -> str:
    """The same swept options and runs always give the same name, so the same command resumes."""
    digest = hashlib.sha256(json.dumps([mode, keys]).encode()).hexdigest()[:8]
    return f"{'-'.join(axes) or 'single'}-{digest}"


def _read_config(path: str | Path | None, preset: str | None) -> tuple[Config, dict[str, list[Any]]]:
    start = load_config(None, preset=preset)
    if not path:
        return start, {}
    values = load_toml(path)
    grid = values.pop("grid", {})
    if "run" in values:
        raise ConfigError(f"{path}: [run] does not apply to sweeps; use --out and --name")
    base = start.merged(values, source=str(path))
    if not isinstance(grid, dict):
        raise ConfigError(f"{path}: 'grid' must be a table ([grid]) of lists")
    for key, listed in grid.items():
        if key not in SWEEPABLE:
            raise ConfigError(
                f"{path}: [grid] unknown option {key!r}; {did_you_mean(key, SWEEPABLE)}"
                f"the options are {', '.join(SWEEPABLE)}"
            )
        if not isinstance(listed, list) or not listed:
            raise ConfigError(f"{path}: [grid] {key} must be a non-empty list, e.g. {key} = [1, 2]")
        for value in listed:  # the same type checks as the other sections
            Config.from_dict(_nest({key: value}), source=f"{path}: [grid] {key}")
    return base, dict(grid)


def _check_values(base: Config, axes: dict[str, list[Any]]) -> None:
    """Each value on its own must be valid (a config checks its values as it is made); only combinations
    of valid values may fail as runs."""
    resolve_device(base.train.device)
    for key, values in axes.items():
        for value in values:
            config = base.merged(_nest({key: value}))
            if key == "device":
                resolve_device(config.train.device)


def _combination_error(config: Config) -> str | None:
    try:
        config.validate()
    except ConfigError as e:
        return str(e)
    return None


def _nest(flat: dict[str, Any]) -> dict[str, dict[str, Any]]:
    nested: dict[str, dict[str, Any]] = {}
    for key, value in flat.items():
        section, name = SWEEPABLE[key]
        nested.setdefault(section, {})[name] = value
    return nested


def _flag(key: str) -> str:
    return key.replace("_", "-")


# --- dry run: sizes without training -----------------------------------------------------------------


def dry_run(sweep: Sweep) -> list[dict[str, Any]]:
    """Each planned run with its parameter count and tokens per image (models built on the meta device,
    so nothing is allocated), or why it cannot run; and whether its result is already recorded."""

    done = {row["key"]: row for row in recorded_rows(sweep.dir)}
    infos: dict[tuple[str, str | None], Any] = {}
    planned = []
    for run in sweep.runs:
        row = {
            "index": run.index,
            "values": run.values,
            "key": run.key,
            "parameters": None,
            "tokens": None,
            "recorded": done.get(run.key, {}).get("status"),
            "error": run.invalid,
        }
        if run.invalid is None:
            info = _dataset_info(run.config.data, infos)
            try:
                with torch.device("meta"):
                    model = build_module(run.config.model, info)
            except ConfigError as e:
                row["error"] = str(e)
            else:
                row["parameters"], row["tokens"] = count_parameters(model), num_tokens(model)
        planned.append(row)
    return planned


def check_data(sweep: Sweep) -> None:
    """Load each data set the runs use once, so that missing data is one input error before anything is
    written, not a failed row per run."""
    infos: dict = {}
    for run in sweep.runs:
        _dataset_info(run.config.data, infos)


def _dataset_info(data: DataConfig, cache: dict) -> Any:

    where = (data.dataset, data.data_dir)
    if where not in cache:
        cache[where] = load_splits(DataConfig(dataset=data.dataset, data_dir=data.data_dir, val_size=0)).info
    return cache[where]
