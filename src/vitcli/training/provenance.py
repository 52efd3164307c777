"""provenance.json: how a run was made, for a lab report to say what was run.

The checkpoint says what the weights are (config, data set, metrics); this file says how they came to
be: the command line, when, with which versions, on which device with how many threads and at which
precision, the git commit of the working directory, and the data's sizes and checksum, so that two
runs that claim the same data can be seen to have had it. Written when the run starts (before its
first epoch, so a stopped run has it too); each resume adds its own entry, since a resumed run may have
gone on elsewhere, with other versions or another device.

    {"started": ..., "command": ..., "versions": {...}, "device": ..., "data": {...},
     "resumes": [{"started": ..., "command": ..., ...}]}
"""

from __future__ import annotations

import datetime
import json
import os
import platform
import shlex
import subprocess
import sys
from importlib import metadata
from pathlib import Path
from typing import Any

import torch

from vitcli.data.cache import checksum
from vitcli.data.datasets import Splits
from vitcli.runtime.distributed import current
from vitcli.runtime.files import atomic_write_text, writing
from vitcli.runtime.version import __version__

PROVENANCE = "provenance.json"
GIT_SECONDS = 2.0  # a git that hangs (a network file system, a lock) must not hold up a run


def gather(device: torch.device, precision: str) -> dict[str, Any]:
    """What this process is: command line, time, versions, device, threads, precision, commit."""
    return {
        "started": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
        "command": command_line(),
        "cwd": os.getcwd(),
        "host": platform.node(),
        "versions": versions(),
        "device": str(device),
        "device_name": device_name(device),
        "threads": torch.get_num_threads(),
        "processes": current().world,
        # --precision as resolved ("fp32" or "bf16"); bf16 is recorded as the mixed precision it is
        "precision": "bf16-mixed" if precision == "bf16" else "fp32",
        "git": git_commit(Path.cwd()),
    }


def command_line() -> str:
    """The command as the user typed it: `vitcli ...` for the CLI (whatever path or `python -m` ran it),
    the script and its arguments otherwise (the Python API)."""
    argv = list(sys.argv)
    program = Path(argv[0]).name if argv else ""
    if program in ("vitcli", "__main__.py") or program.startswith("vitcli"):
        argv = ["vitcli", *argv[1:]]
    return shlex.join(argv)


def versions() -> dict[str, str]:
    """vitcli, Python, torch, torchvision and timm (what `vitcli info` and a run's provenance show)."""
    # From the installed packages' metadata: importing timm only for its version costs a second.
    found = {"vitcli": __version__, "Python": platform.python_version(), "torch": torch.__version__}
    for package in ("torchvision", "timm"):
        try:
            found[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            found[package] = "not installed"
    return found


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return cpu_name()


def cpu_name() -> str:
    """The processor's model name (Linux's /proc/cpuinfo; platform's guess elsewhere)."""
    try:
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace").splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown CPU"


def git_commit(folder: Path) -> dict[str, Any] | None:
    """The commit of the git working tree `folder` is in, and whether it had changes; None outside one
    (or without git)."""

    def git(*args: str) -> str:
        done = subprocess.run(
            ["git", *args], cwd=folder, capture_output=True, text=True, timeout=GIT_SECONDS, check=True
        )
        return done.stdout.strip()

    try:
        commit = git("rev-parse", "HEAD")
        dirty = bool(git("status", "--porcelain", "--untracked-files=no"))
    except (OSError, subprocess.SubprocessError):
        return None
    return {"commit": commit, "dirty": dirty}


def data_facts(splits: Splits) -> dict[str, Any]:
    """The data as the run saw it: sizes per split and one SHA-256 over every split's images and labels
    and the class names (a --subset, a --val-size or another copy of the files gives another one)."""
    tensors = {}
    for name in ("train", "val", "test"):
        split = getattr(splits, name)
        if split is not None:
            tensors[f"{name}.images"], tensors[f"{name}.labels"] = split.images, split.labels
    digest, _ = checksum(tensors, json.dumps(splits.info.classes))
    return {
        "name": splits.info.name,
        "shape": [splits.info.channels, splits.info.height, splits.info.width],
        "classes": len(splits.info.classes),
        "train": len(splits.train),
        "val": len(splits.val) if splits.val is not None else 0,
        "test": len(splits.test),
        "capped": {k: list(v) for k, v in splits.capped.items()},
        "sha256": digest,
    }


def record(run_dir: Path, splits: Splits, device: torch.device, resumed: bool, precision: str) -> None:
    """Write a new run's provenance.json, or add a resume's entry to it."""
    path = run_dir / PROVENANCE
    here = gather(device, precision)
    if resumed:
        known = read(run_dir)
        if known is None or "damaged" in known:  # a run from before this file: keep what the resume knows
            known = {"started": None, "command": None, "data": data_facts(splits)}
        known.setdefault("resumes", []).append(here)
        facts = known
    else:
        facts = {**here, "data": data_facts(splits)}
    with writing(path):
        atomic_write_text(path, json.dumps(facts, indent=1) + "\n")


def read(run_dir: Path) -> dict[str, Any] | None:
    """A run's provenance; None when it has none (runs of vitcli 0.1 and before), and {"damaged": why}
    when the file cannot be read, so that a report says which."""
    path = run_dir / PROVENANCE
    if not path.is_file():
        return None
    try:
        facts = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        return {"damaged": str(e)}
    return facts if isinstance(facts, dict) else {"damaged": "not a JSON object"}
