"""Where `--resume RUN_DIR` starts: the run's own settings (its config.toml) and its last state.

A resumed run is the same run: the options that would change it (the model, the data, the optimiser, the
seed) are refused with one line. A few may change without changing what was trained so far: more
--epochs (the cosine schedule is then planned over the new total), the device, torch.compile, TensorBoard
logging and where the data set's files are.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from vitcli.errors import CheckpointError, ConfigError
from vitcli.settings.config import Config, load_config
from vitcli.settings.fields import flag
from vitcli.training.checkpoint import read_metadata
from vitcli.training.engine import Snapshot
from vitcli.training.run_dir import CONFIG, MODEL
from vitcli.training.state import STATE_FILE, load_state

# What changes nothing that was or will be trained: a longer run, where it runs, how it is logged.
MAY_CHANGE = {
    ("train", "epochs"),
    ("train", "device"),
    ("train", "threads"),  # the speed, not the run: a pinned count is kept unless changed here
    ("train", "compile"),
    ("train", "tensorboard"),
    ("data", "data_dir"),
}


def resume_point(run_dir: Path, overrides: dict[str, dict[str, Any]]) -> tuple[Config, Snapshot]:
    """The config to go on with and the state to go on from; ConfigError when there is nothing to resume
    or an option would change the run."""
    if not (run_dir / CONFIG).is_file():
        raise ConfigError(
            f"--resume {run_dir}: no run directory there (no config.toml); pass a run's directory"
        )
    if not (run_dir / STATE_FILE).is_file():
        raise ConfigError(
            f"--resume {run_dir}: the run has no training state (it stopped before its first epoch ended, or "
            "an older vitcli wrote it); start it again without --resume"
        )
    stored = load_config(run_dir / CONFIG)
    settings = stored.to_dict()  # [model] has its kind as a key, like the options
    changes: dict[str, dict[str, Any]] = {}
    for section, items in overrides.items():
        for key, value in items.items():
            if value is None:
                continue
            if (section, key) in MAY_CHANGE:
                changes.setdefault(section, {})[key] = value
                continue
            had = settings.get(section, {}).get(key)
            if had != value:
                raise ConfigError(
                    f"--resume continues {run_dir} as it was set up, and {flag(key)} {value} would change it "
                    f"(it has {had}); leave it out: only --epochs (more), --device, --threads, --compile, "
                    "--tensorboard and --data-dir may change"
                )
    config = stored.merged({**changes, "run": {"out": str(run_dir.parent), "name": run_dir.name}})
    if config.train.epochs < stored.train.epochs:
        raise ConfigError(
            f"--epochs {config.train.epochs}: a resumed run can only grow ({stored.train.epochs} now)"
        )
    snapshot = load_state(run_dir / STATE_FILE)
    if snapshot.epoch > config.train.epochs and _finished(run_dir):
        raise ConfigError(
            f"--resume {run_dir}: the run finished its {config.train.epochs} epochs; pass --epochs N with N "
            f"over {config.train.epochs} to train it longer"
        )
    return config, snapshot


def _finished(run_dir: Path) -> bool:
    """Whether the run evaluated its test set after its last epoch (a run stopped just before did not)."""

    try:
        metrics = json.loads(read_metadata(run_dir / MODEL).get("metrics", "{}"))
        return "test_accuracy" in metrics
    except (CheckpointError, ValueError):
        return False
