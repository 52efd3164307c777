"""The ViTs made for small data against the plain ViT and the CNN, at an equal training-time budget per
row (docs/small-data.md): parameters, tokens, epochs, training seconds, images/s and test accuracy.

Each row is one `vitcli train` process. Its epochs are set from its own throughput so that its training
takes about --budget seconds: a short calibration run (--calibration-images images, one epoch, no
validation) measures images/s, and epochs = floor(budget x images/s / training images), at least 1. The
distilled row learns from the CNN row's checkpoint, so the CNN comes first. Test accuracy, training
seconds and the teacher's share of them are read from each checkpoint.

With --runs DIR nothing is trained: the table is made from the run directories DIR/<row> of an earlier
run of the same rows (how the CPU table in the docs was printed from its runs).

Prints a rich table and one JSON object (also written to --json).

    python benchmarks/small_data_vits.py --data cifar10 --dataset folder:cifar10-jpg --budget 900
    python benchmarks/small_data_vits.py --data mnist --data-dir ../shared/data --budget 180
    python benchmarks/small_data_vits.py --data cifar10 --budget 300 --device cuda        # the GPU table
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
import tempfile
from pathlib import Path

import torch
from common import DATA_DIR, Machine, argument_parser, console, emit  # benchmarks/common.py
from rich.table import Table

from vitcli.data import load_splits
from vitcli.settings.config import load_config
from vitcli.training.checkpoint import read_metadata

# The rows: `vitcli train` options, the same recipe (learning rate, levers) for every ViT of a data set.
_VIT_C = (
    "--embed-dim 64 --patch-size 4 --depth 4 --heads 4 --mlp-dim 128 --lr 2e-3 --clip-grad 1 --erase 0.25"
)
_CONV_C = (
    "--tokenizer conv --conv-layers 3 --embed-dim 128 --depth 4 --heads 4 --mlp-dim 256 --lr 2e-3 "
    "--clip-grad 1 --erase 0.25"
)
_VIT_M = "--embed-dim 64 --patch-size 7 --depth 6 --heads 4 --mlp-dim 128 --lr 5e-3"
_CONV_M = "--tokenizer conv --conv-layers 3 --embed-dim 64 --depth 4 --heads 4 --mlp-dim 128 --lr 2e-3"


def _rows(vit: str, conv: str) -> dict[str, str]:
    return {
        "cnn": "--model cnn --lr 1e-3",
        "vit": vit,
        "spt-lsa": f"{vit} --tokenizer spt --lsa",
        "conv-cls": f"{conv} --pool cls",
        "conv-gap": f"{conv} --pool gap",
        "conv-seq": f"{conv} --pool seq",
        "vit-distilled": f"{vit} --teacher {{cnn}}",  # {cnn}: the CNN row's run directory
    }


ROWS = {"cifar10": _rows(_VIT_C, _CONV_C), "mnist": _rows(_VIT_M, _CONV_M)}


def train(options: list[str], args, out: Path, name: str) -> dict:
    """One `vitcli train` process; its checkpoint's metrics and settings."""
    data = ["--dataset", args.dataset or args.data, "--data-dir", args.data_dir, "--device", args.device]
    command = [sys.executable, "-m", "vitcli", "train", *options, *data, "--out", str(out), "--name", name]
    done = subprocess.run(command + ["--seed", str(args.seed)], capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"vitcli train failed (exit {done.returncode}):\n{done.stderr[-2000:]}")
    return read_run(out / name)


def finished(run_dir: Path) -> bool:
    """Whether `run_dir` holds a finished run (a run still going has a checkpoint without test figures)."""
    model = run_dir / "model.safetensors"
    return model.is_file() and "test_accuracy" in json.loads(read_metadata(model)["metrics"])


def read_run(run_dir: Path) -> dict:
    metadata = read_metadata(run_dir / "model.safetensors")
    metrics, config = json.loads(metadata["metrics"]), json.loads(metadata["config"])
    teacher = metrics.get("teacher")
    return {
        "parameters": metrics["parameters"],
        "tokens": metrics["tokens"],
        "epochs": config["train"]["epochs"],
        "train_seconds": metrics["train_seconds"],
        "images_per_s": metrics["images_per_s"],
        "val_accuracy": metrics["val_accuracy"],
        "test_accuracy": metrics["test_accuracy"],
        "teacher_share": teacher["share"] if teacher else None,
        "model": config["model"],
    }


def run_rows(args, out: Path, train_images: int) -> dict[str, dict]:
    results = {}
    for name in args.rows:
        options = ROWS[args.data][name].format(cnn=out / "cnn").split()
        calibration = ["--subset", str(args.calibration_images), "--epochs", "1", "--val-size", "0"]
        speed = train(options + calibration, args, out, f"{name}-calibration")["images_per_s"]
        epochs = max(1, math.floor(args.budget * speed / train_images))
        print(f"{name}: {speed:,.0f} img/s calibrated, {epochs} epochs", file=sys.stderr)
        results[name] = {
            "calibrated_images_per_s": speed,
            **train(options + ["--epochs", str(epochs)], args, out, name),
        }
    return results


def main(argv: list[str] | None = None) -> dict:
    parser = argument_parser(__doc__)
    parser.add_argument("--data", choices=sorted(ROWS), default="cifar10", help="which rows")
    parser.add_argument("--dataset", help="the data set option, e.g. folder:cifar10-jpg [default: --data]")
    parser.add_argument("--data-dir", default=DATA_DIR)
    parser.add_argument("--budget", type=float, default=900.0, help="training seconds per row")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--rows", nargs="+", default=list(ROWS["cifar10"]), help="rows to run, in order")
    parser.add_argument("--calibration-images", type=int, default=5120)
    parser.add_argument("--out", type=Path, help="keep the run directories here [default: a temporary one]")
    parser.add_argument("--runs", type=Path, help="print the table of these runs, made before; train nothing")
    args = parser.parse_args(argv)
    machine = Machine(torch.device(args.device))
    if args.runs:
        results = {name: read_run(args.runs / name) for name in args.rows if finished(args.runs / name)}
    else:
        config = load_config(
            None, {"data": {"dataset": args.dataset or args.data, "data_dir": args.data_dir}}
        )
        train_images = len(load_splits(config.data, download=False).train)  # and the cache filled
        with tempfile.TemporaryDirectory() as scratch:
            results = run_rows(args, args.out or Path(scratch), train_images)
    result = {
        "benchmark": "small_data_vits",
        "data": args.data,
        "dataset": args.dataset or args.data,
        "budget_seconds": args.budget,
        "seed": args.seed,
        "machine": machine.describe(),
        "rows": [{"row": name, "options": ROWS[args.data][name], **r} for name, r in results.items()],
    }
    _print_table(result)
    return emit(result, args.json)


def _print_table(result: dict) -> None:
    table = Table(
        title=f"{result['dataset']}: about {result['budget_seconds']:.0f} s of training per row, "
        f"seed {result['seed']}, {result['machine']['device']}"
    )
    for column in ("row", "parameters", "tokens", "epochs", "train s", "img/s", "teacher", "val", "test"):
        table.add_column(column, justify="left" if column == "row" else "right")
    for r in result["rows"]:
        share = r["teacher_share"]
        table.add_row(
            r["row"],
            f"{r['parameters']:,}",
            "-" if r["tokens"] is None else str(r["tokens"]),
            str(r["epochs"]),
            f"{r['train_seconds']:.0f}",
            f"{r['images_per_s']:,.0f}",
            "-" if share is None else f"{share:.0%}",
            "-" if r["val_accuracy"] is None else f"{100 * r['val_accuracy']:.2f}%",
            f"{100 * r['test_accuracy']:.2f}%",
        )
    console().print(table)


if __name__ == "__main__":
    main()
