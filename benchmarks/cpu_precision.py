"""float32 against bfloat16 autocast on the CPU, at equal epochs: each model's training speed and test
accuracy, with `vitcli train --precision fp32` and `--precision bf16`, in turn.

The models are benchmarks/cpu_load.py's (their presets; the CIFAR-10 ones on 6,400 training images),
each trained --epochs from the same seed on --threads threads. Whether this CPU computes bfloat16
natively (AVX512-BF16 or AMX) is in the JSON and the title: without it PyTorch emulates bfloat16.

Prints a rich table and one JSON object (also written to --json).

    python benchmarks/cpu_precision.py --data-dir ../shared/data --cifar cifar10-jpg --epochs 1
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

from common import DATA_DIR, argument_parser, console, emit  # benchmarks/common.py
from cpu_load import MODELS  # benchmarks/cpu_load.py
from rich.table import Table

from vitcli.runtime.devices import native_bf16
from vitcli.training.checkpoint import read_metadata

PRECISIONS = ("fp32", "bf16")


def main(argv: list[str] | None = None) -> dict:
    parser = argument_parser(__doc__)
    parser.add_argument("--data-dir", default=DATA_DIR, help="where MNIST is (torchvision's layout)")
    parser.add_argument(
        "--cifar", help="CIFAR-10: an image folder (train/, test/) or a --data-dir for cifar10"
    )
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=list(MODELS))
    parser.add_argument(
        "--subset", type=int, help="train every model on N images instead (5,120 or more: batch 128)"
    )
    args = parser.parse_args(argv)
    out = Path(tempfile.mkdtemp(prefix="vitcli-cpu-precision-"))
    rows = [model_row(args, model, out) for model in args.models]
    result = {
        "benchmark": "cpu_precision",
        "native_bf16": native_bf16(),
        "epochs": args.epochs,
        "threads": args.threads,
        "subset": args.subset,
        "rows": rows,
    }
    show(result)
    return emit(result, args.json)


def model_row(args, model: str, out: Path) -> dict:
    """`vitcli train` of `model` in fp32, then in bf16: speed and test accuracy of each."""
    preset, dataset, subset = MODELS[model]
    if dataset == "cifar10":
        cifar = Path(args.cifar or "")
        data = ["--dataset", f"folder:{cifar}"] if (cifar / "train").is_dir() else ["--data-dir", cifar]
    else:
        data = ["--data-dir", args.data_dir]
    subset = args.subset or subset
    data += ["--subset", subset] if subset else []
    found = {}
    for precision in PRECISIONS:
        name = f"{preset}-{precision}"
        command = [sys.executable, "-m", "vitcli", "train", "--preset", preset, *data, "--device", "cpu"]
        command += ["--epochs", args.epochs, "--threads", args.threads, "--precision", precision]
        command += ["--out", out, "--name", name, "--overwrite"]
        subprocess.run([str(c) for c in command], check=True, stdout=subprocess.DEVNULL)
        metrics = json.loads(read_metadata(out / name / "model.safetensors")["metrics"])
        found[precision] = {key: metrics[key] for key in ("images_per_s", "train_seconds", "test_accuracy")}
        print(f"{model} {precision}: {found[precision]}", file=sys.stderr)
    speed = found["bf16"]["images_per_s"] / found["fp32"]["images_per_s"]
    return {"model": model, **found, "bf16_speed": speed}


def show(result: dict) -> None:
    args = argparse.Namespace(epochs=result["epochs"], threads=result["threads"])
    rows = result["rows"]
    table = Table(
        title=f"fp32 and bf16 on the CPU, {args.epochs} epoch(s), {args.threads} threads, "
        f"native bf16: {native_bf16()}"
    )
    for column in ("model", "fp32 images/s", "bf16 images/s", "bf16 / fp32", "fp32 test", "bf16 test"):
        table.add_column(column, justify="left" if column == "model" else "right")
    for r in rows:
        table.add_row(
            r["model"],
            f"{r['fp32']['images_per_s']:,.0f}",
            f"{r['bf16']['images_per_s']:,.0f}",
            f"{r['bf16_speed']:.2f}x",
            f"{100 * r['fp32']['test_accuracy']:.2f}%",
            f"{100 * r['bf16']['test_accuracy']:.2f}%",
        )
    console().print(table)


if __name__ == "__main__":
    main()
