"""Time to accuracy of a preset, end to end: `vitcli train --preset NAME` from the start of the command to
its final table, as a user runs it, with the data set already cached.

Each seed is one `vitcli train` process (OMP_NUM_THREADS and torch's threads set to --threads), timed
from before the process starts until it exits: Python's start-up, imports, loading the cached tensors,
every epoch with its validation, the test set and the checkpoint. Its test accuracy is read from the
checkpoint it wrote. The data set is loaded once before the first run, so that the cache is filled and
no run pays for decoding.

The target of `mnist-fast` (issue: >= 99.0% MNIST test accuracy in <= 5 minutes on 2 CPU cores) is the
default; each row says whether it met both.

Prints a rich table and one JSON object (also written to --json).

    python benchmarks/time_to_accuracy.py --data-dir ../shared/data --preset mnist-fast --seeds 0 1 2
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
from common import DATA_DIR, Machine, argument_parser, console, emit  # benchmarks/common.py
from rich.table import Table

from vitcli.data import load_splits
from vitcli.settings.config import load_config
from vitcli.training.checkpoint import read_metadata


def run_once(preset: str, seed: int, args, out: Path) -> dict:
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads), "MKL_NUM_THREADS": str(args.threads)}
    name = f"{preset}-seed{seed}"
    command = [
        sys.executable,
        "-m",
        "vitcli",
        "train",
        "--preset",
        preset,
        "--data-dir",
        args.data_dir,
        "--seed",
        str(seed),
        "--device",
        "cpu",
        "--out",
        str(out),
        "--name",
        name,
        *args.extra,
    ]
    start = time.perf_counter()
    done = subprocess.run(command, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"vitcli train failed (exit {done.returncode}):\n{done.stderr[-2000:]}")
    metrics = json.loads(read_metadata(out / name / "model.safetensors")["metrics"])
    return {
        "seed": seed,
        "seconds": seconds,
        "train_seconds": metrics["train_seconds"],
        "test_accuracy": metrics["test_accuracy"],
        "best_epoch": metrics["best_epoch"],
        "weights": metrics.get("weights", "raw"),
    }


def main(argv: list[str] | None = None) -> dict:
    parser = argument_parser(__doc__)
    parser.add_argument("--data-dir", default=DATA_DIR)
    parser.add_argument("--preset", default="mnist-fast")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--target-accuracy", type=float, default=0.99)
    parser.add_argument("--target-seconds", type=float, default=300.0)
    parser.add_argument("extra", nargs="*", help="more train options after --, e.g. -- --epochs 1")
    args = parser.parse_args(argv)
    config = load_config(None, {"data": {"data_dir": args.data_dir}}, preset=args.preset)
    load_splits(config.data, download=False)  # fills the cache: no run below decodes the data set
    machine = Machine(torch.device("cpu"))
    runs = []
    with tempfile.TemporaryDirectory() as out:
        for seed in args.seeds:
            runs.append(run_once(args.preset, seed, args, Path(out)))
            r = runs[-1]
            print(f"seed {seed}: {100 * r['test_accuracy']:.2f}% in {r['seconds']:.1f} s", file=sys.stderr)
    for r in runs:
        r["met_target"] = r["test_accuracy"] >= args.target_accuracy and r["seconds"] <= args.target_seconds
    result = {
        "benchmark": "time_to_accuracy",
        "preset": args.preset,
        "settings": config.to_dict(),
        "extra_options": args.extra,
        "target": {"test_accuracy": args.target_accuracy, "seconds": args.target_seconds},
        "machine": machine.describe(threads=args.threads),
        "runs": runs,
        "median_seconds": statistics.median(r["seconds"] for r in runs),
        "median_test_accuracy": statistics.median(r["test_accuracy"] for r in runs),
        "all_met_target": all(r["met_target"] for r in runs),
    }
    table = Table(
        title=f"{args.preset}: end to end on {args.threads} CPU threads "
        f"(target {100 * args.target_accuracy:.1f}% in {args.target_seconds:.0f} s)"
    )
    for column in ("seed", "test accuracy", "end to end s", "training s", "kept", "met"):
        table.add_column(column, justify="right")
    for r in runs:
        table.add_row(
            str(r["seed"]),
            f"{100 * r['test_accuracy']:.2f}%",
            f"{r['seconds']:.1f}",
            f"{r['train_seconds']:.1f}",
            f"{r['weights']}, epoch {r['best_epoch']}",
            "[green]yes[/]" if r["met_target"] else "[red]no[/]",
        )
    console().print(table)
    return emit(result, args.json)


if __name__ == "__main__":
    main()
