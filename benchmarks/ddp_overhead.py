"""What data parallelism costs or gains: `vitcli train --nproc N` against one process on the same global
batch, seed and data, in training images per second.

Each run is a fresh `python -m vitcli train` (as a user starts it), the process counts taken in turn per
repeat. Throughput is the training steps' own (metrics.jsonl), from the epochs after the first (which
warms up); the whole command's wall time is shown beside it. On the CPU, N processes share the cores
(`--nproc` gives each cores/N threads), so the figure is the cost of splitting one machine's cores
between ranks (gradient all-reduce, the whole-batch augmentation every rank repeats, smaller matrix
products); on CUDA each process has its own GPU. The final validation accuracy is shown to check that
the runs trained the same model.

    python benchmarks/ddp_overhead.py --data-dir ../shared/data --nproc 1 2
    python benchmarks/ddp_overhead.py --device cuda --nproc 1 2 4 --batch-size 1024     # N GPUs
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

SRC = Path(__file__).resolve().parents[1] / "src"


def train(args, nproc: int, out: Path, name: str) -> dict:
    """One `vitcli train` run in its own process(es): its training throughput, wall time and accuracy."""
    command = [sys.executable, "-m", "vitcli", "train", "--data-dir", args.data_dir]
    command += ["--dataset", args.dataset, "--epochs", str(args.epochs), "--batch-size", str(args.batch_size)]
    command += ["--device", args.device, "--out", str(out), "--name", name, "--nproc", str(nproc)]
    command += ["--subset", str(args.subset)] if args.subset else []
    command += args.model
    env = {**os.environ, "PYTHONPATH": str(SRC) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    start = time.perf_counter()
    done = subprocess.run(command, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - start
    if done.returncode:
        raise SystemExit(f"{' '.join(command)} failed:\n{done.stderr}")
    epochs = [json.loads(line) for line in (out / name / "metrics.jsonl").read_text().splitlines()]
    steady = epochs[1:] or epochs
    return {
        "images_per_s": statistics.median(e["images_per_s"] for e in steady),
        "wall_s": wall,
        "val_accuracy": epochs[-1]["val_accuracy"],
    }


def main(argv: list[str] | None = None) -> dict:
    parser = argument_parser(__doc__)
    parser.add_argument("--data-dir", default=DATA_DIR)
    parser.add_argument("--dataset", default="mnist")
    parser.add_argument("--nproc", type=int, nargs="+", default=[1, 2], help="process counts to compare")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=256, help="the global batch, the same for all")
    parser.add_argument("--subset", type=int, default=0, help="train on this many images (0: all)")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("model", nargs="*", help="more vitcli train options, after --")
    args = parser.parse_args(argv)
    machine = Machine(torch.device(args.device))
    runs: dict[int, list[dict]] = {n: [] for n in args.nproc}
    with tempfile.TemporaryDirectory() as out:
        for repeat in range(args.repeats):
            for n in args.nproc:
                runs[n].append(train(args, n, Path(out), f"n{n}-r{repeat}"))
                print(f"repeat {repeat + 1}/{args.repeats} nproc {n}: {runs[n][-1]}", file=sys.stderr)
    best = {n: max(r["images_per_s"] for r in results) for n, results in runs.items()}
    base = best[args.nproc[0]]
    rows = [
        {
            "nproc": n,
            "images_per_s": best[n],
            "ratio": best[n] / base,
            "wall_s": min(r["wall_s"] for r in runs[n]),
            "val_accuracy": runs[n][-1]["val_accuracy"],
            "runs": runs[n],
        }
        for n in args.nproc
    ]
    table = Table(
        title=f"{args.dataset}, global batch {args.batch_size}, {args.device}: best of {args.repeats}",
        title_justify="left",
    )
    for column in ("processes", "train img/s", f"vs {args.nproc[0]}", "command s", "val acc"):
        table.add_column(column, justify="right")
    for row in rows:
        table.add_row(
            str(row["nproc"]),
            f"{row['images_per_s']:,.0f}",
            f"{row['ratio']:.2f}x",
            f"{row['wall_s']:.1f}",
            f"{row['val_accuracy']:.2%}",
        )
    console().print(table)
    settings = {k: getattr(args, k) for k in ("dataset", "device", "epochs", "batch_size", "subset", "model")}
    result = {"benchmark": "ddp_overhead", **settings, "results": rows, "machine": machine.describe()}
    return emit(result, args.json)


if __name__ == "__main__":
    main()
