"""What the benchmarks share: runs taken in turn, the machine they ran on, the table console, the JSON.

The scripts import it as `common`: `python benchmarks/x.py` puts benchmarks/ first on sys.path.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch
from rich.console import Console

DATA_DIR = os.environ.get("VITCLI_DATA_DIR", str(Path(__file__).resolve().parents[2] / "shared" / "data"))
WIDE = 200  # rich's width when stderr is a file or a pipe, where it would cut the wide tables to 80 columns


def argument_parser(doc: str) -> argparse.ArgumentParser:
    """An argument parser described by the docstring's first paragraph, with --json."""
    parser = argparse.ArgumentParser(description=doc.split("\n\n")[0])
    parser.add_argument("--json", type=Path, help="also write the JSON result here")
    return parser


def sync(device: torch.device) -> None:
    """Wait for the GPU's queued work, so that a timer measures it."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def alternate(
    repeats: int, runs: dict[str, Callable[[], dict]], line: Callable[[dict], str], seed: int | None = None
) -> dict[str, list[dict]]:
    """Each of `runs` once per repeat, in turn (a, b, a, b, ...) so that a noisy machine affects all alike,
    each after torch.manual_seed(seed) if given (the same initial weights); `line` describes one result
    on stderr as it comes."""
    results: dict[str, list[dict]] = {name: [] for name in runs}
    for repeat in range(repeats):
        for name, run in runs.items():
            if seed is not None:
                torch.manual_seed(seed)
            out = run()
            results[name].append(out)
            print(f"repeat {repeat + 1}/{repeats} {name:>6}: {line(out)}", file=sys.stderr)
    return results


class Machine:
    """The machine a benchmark ran on: created when the measurements start, described when they end,
    with the load average at both ends (a busy machine explains slow figures)."""

    def __init__(self, device: torch.device):
        self.device = device
        self.started = time.strftime("%Y-%m-%d %H:%M %Z")
        self.load_before = os.getloadavg()[0]

    def describe(self, **extra) -> dict:
        return {
            "device": str(self.device),
            "torch": torch.__version__,
            "threads": torch.get_num_threads(),
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "gpu": torch.cuda.get_device_name(self.device) if self.device.type == "cuda" else None,
            **extra,
            "started": self.started,
            "load_average_1min": [self.load_before, os.getloadavg()[0]],
        }


def console() -> Console:
    """The tables go to stderr, so that stdout is the JSON alone."""
    return Console(stderr=True, width=None if sys.stderr.isatty() else WIDE)


def emit(result: dict, path: Path | None) -> dict:
    """The result as JSON on stdout, and in `path` if given."""
    text = json.dumps(result, indent=2)
    print(text)
    if path:
        path.write_text(text + "\n")
    return result
