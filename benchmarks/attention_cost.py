"""Cost of attention against the number of tokens: the fused kernel against the explicit softmax path.

One small ViT (dim 64, 4 heads, 2 blocks by default) is built for each image size and patch size of
the sweep, so the tokens per image, (H/p)(W/p) + 1 for [CLS], run from 5 to 1,025 while everything
else stays fixed (batch size included). For each size two attention paths of vitcli's ViT are measured:

  fused     F.scaled_dot_product_attention, the model's normal path (flash attention on CPU and GPU)
  explicit  softmax(Q K^T / sqrt(d)) V with the weights materialised, the path that
            model(x, return_attention=True) takes to return them

Time: the median over --steps steps (after --warmup), the two paths alternating step by step
(fused, explicit, fused, ...) so that a noisy machine slows both alike. A step is forward + backward
of the cross-entropy loss (no optimiser: the optimiser's cost does not depend on the tokens); with
--forward, also a forward pass alone under torch.inference_mode.

Peak memory per step:
  cuda  torch.cuda.max_memory_allocated during the steps minus the memory allocated before them.
  cpu   PyTorch keeps no allocation statistics for the CPU, so each (size, path, mode) runs in a fresh
        Python process (no memory cached by the C allocator from other sizes) that builds the model
        and the batch, resets its peak resident set size to the current one (Linux's
        /proc/self/clear_refs), runs the steps and reports the peak (VmHWM) minus the resident size
        before them: what the steps needed from the operating system at their peak, i.e. activations
        saved for backward, gradients and temporaries, plus any slack of the allocator. Figures under
        a few MB are at the allocator's resolution and mean "about nothing". torch.profiler's
        profile_memory was the alternative; it reports bytes allocated per operator, not the
        simultaneous peak that decides whether a run fits in memory. Linux only.

Beside the measurements is the analytic size of one block's attention matrix, batch x heads x N^2 x
4 bytes (float32): the tensor the explicit path materialises (and keeps for backward) in every block,
and the fused kernel never does. The "slope" columns are d log(time) / d log(tokens) between one size
and the previous: about 1 while the cost is linear in the tokens (the linear layers), towards 2 where
the N^2 attention term takes over (below 1 where fixed per-step overheads dominate).

Prints a rich table and one JSON object (also written to --json).

    python benchmarks/attention_cost.py --forward --threads 1     # CPU, about 5 minutes
    python benchmarks/attention_cost.py --device cuda --forward --batch-size 64 \
        --sizes 28:14,28:7,28:4,32:4,28:2,64:4,96:4,128:4,224:8,224:4
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from common import Machine, argument_parser, console, emit, sync  # benchmarks/common.py
from rich.table import Table

from vitcli.models import ViT, count_parameters

PATHS = ("fused", "explicit")
DEFAULT_SIZES = "28:14,28:7,28:4,32:4,28:2,64:4,96:4,128:4"


def parse_sizes(text: str) -> list[tuple[int, int]]:
    """ "28:7,32:4" -> [(28, 7), (32, 4)]: square image size and patch size."""
    sizes = []
    for item in text.split(","):
        image, patch = (int(v) for v in item.split(":"))
        if image % patch:
            raise SystemExit(f"--sizes: image {image} is not divisible by patch {patch}")
        sizes.append((image, patch))
    return sizes


def build(args, image: int, patch: int, device: torch.device) -> tuple[ViT, torch.Tensor, torch.Tensor]:
    """The model and one fixed batch (random pixels and labels: the cost does not depend on them)."""
    torch.manual_seed(0)
    model = ViT(
        image_size=(image, image),
        in_channels=args.channels,
        num_classes=10,
        embed_dim=args.embed_dim,
        patch_size=patch,
        depth=args.depth,
        heads=args.heads,
    ).to(device)
    images = torch.randn(args.batch_size, args.channels, image, image, device=device)
    labels = torch.randint(0, 10, (args.batch_size,), device=device)
    return model, images, labels


def step(model: ViT, images: torch.Tensor, labels: torch.Tensor, path: str, mode: str) -> None:
    explicit = path == "explicit"
    if mode == "forward":
        with torch.inference_mode():
            model(images, return_attention=explicit)
        return
    out = model(images, return_attention=explicit)
    logits = out[0] if explicit else out
    model.zero_grad(set_to_none=True)
    F.cross_entropy(logits, labels).backward()


def time_paths(model, images, labels, mode: str, steps: int, warmup: int, device) -> dict[str, float]:
    """Median seconds per step of each path, the paths alternating step by step."""
    times: dict[str, list[float]] = {path: [] for path in PATHS}
    for i in range(warmup + steps):
        for path in PATHS:
            sync(device)
            start = time.perf_counter()
            step(model, images, labels, path, mode)
            sync(device)
            if i >= warmup:
                times[path].append(time.perf_counter() - start)
    return {path: statistics.median(t) for path, t in times.items()}


def proc_status_bytes(key: str) -> int:
    """VmRSS (resident now) or VmHWM (peak resident) of this process, from /proc/self/status."""
    with open("/proc/self/status") as f:
        line = next(line for line in f if line.startswith(key + ":"))
    return int(line.split()[1]) * 1024  # the file gives kB


def reset_peak_rss() -> None:
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")  # 5: set the peak resident size (VmHWM) to the current one (Linux >= 4.0)


def peak_bytes_here(args, image: int, patch: int, path: str, mode: str, device: torch.device) -> int:
    """Growth of peak memory over the memory in use before the steps, measured in this process."""
    model, images, labels = build(args, image, patch, device)
    if device.type == "cuda":
        sync(device)
        before = torch.cuda.memory_allocated(device)
        torch.cuda.reset_peak_memory_stats(device)
    else:
        before = proc_status_bytes("VmRSS")
        reset_peak_rss()
    for _ in range(args.memory_steps):
        step(model, images, labels, path, mode)
    if device.type == "cuda":
        sync(device)
        return torch.cuda.max_memory_allocated(device) - before
    return proc_status_bytes("VmHWM") - before


def peak_bytes(args, image: int, patch: int, path: str, mode: str, device: torch.device) -> int:
    """On CUDA in this process; on the CPU in a fresh process (see the module docstring)."""
    if device.type == "cuda":
        return peak_bytes_here(args, image, patch, path, mode, device)
    probe = json.dumps(
        {"args": vars(args) | {"json": None}, "image": image, "patch": patch, "path": path, "mode": mode}
    )
    src = str(
        Path(__import__("vitcli").__file__).resolve().parents[1]
    )  # this checkout's vitcli, in the child too
    env = os.environ | {"PYTHONPATH": os.pathsep.join(filter(None, [src, os.environ.get("PYTHONPATH")]))}
    done = subprocess.run(
        [sys.executable, __file__, "--probe", probe], env=env, capture_output=True, text=True, check=True
    )
    return int(done.stdout.strip().splitlines()[-1])


def run_probe(text: str) -> None:
    probe = json.loads(text)
    args = argparse.Namespace(**probe["args"])
    torch.set_num_threads(args.threads)
    print(
        peak_bytes_here(
            args, probe["image"], probe["patch"], probe["path"], probe["mode"], torch.device("cpu")
        )
    )


def slope(rows: list[dict], i: int, path: str) -> float | None:
    """d log(time) / d log(tokens) between row i and row i - 1 (None for the first row or equal tokens)."""
    if i == 0 or rows[i]["tokens"] == rows[i - 1]["tokens"]:
        return None
    times = rows[i]["time_ms"][path] / rows[i - 1]["time_ms"][path]
    return math.log(times) / math.log(rows[i]["tokens"] / rows[i - 1]["tokens"])


def measure(args, device: torch.device, mode: str) -> list[dict]:
    rows = []
    for image, patch in parse_sizes(args.sizes):
        model, images, labels = build(args, image, patch, device)
        seconds = time_paths(model, images, labels, mode, args.steps, args.warmup, device)
        memory = {
            path: None if args.no_memory else peak_bytes(args, image, patch, path, mode, device)
            for path in PATHS
        }
        row = {
            "image": image,
            "patch": patch,
            "tokens": model.num_tokens,
            "attention_matrix_bytes": args.batch_size * args.heads * model.num_tokens**2 * 4,
            "time_ms": {p: 1000 * seconds[p] for p in PATHS},
            "peak_bytes": memory,
            "time_ratio": seconds["explicit"] / seconds["fused"],
            "memory_ratio": memory["explicit"] / memory["fused"] if memory["fused"] else None,
        }
        rows.append(row)
        print(
            f"{mode} {image}px patch {patch}: {model.num_tokens} tokens, "
            f"fused {row['time_ms']['fused']:.2f} ms, explicit {row['time_ms']['explicit']:.2f} ms",
            file=sys.stderr,
        )
    for i, row in enumerate(rows):
        row["time_slope"] = {p: slope(rows, i, p) for p in PATHS}
    return rows


def mb(n: int | None) -> str:
    return "" if n is None else f"{n / 2**20:,.1f}"


def fmt(x: float | None, spec: str) -> str:
    return "" if x is None else format(x, spec)


def print_table(mode: str, rows: list[dict], title: str) -> None:
    table = Table(title=f"{title}, {'forward + backward' if mode == 'train' else 'forward only'}")
    for column in (
        "image",
        "patch",
        "tokens",
        "fused ms",
        "explicit ms",
        "explicit / fused",
        "slope fused",
        "slope explicit",
        "attn matrix MB (1 block)",
        "fused peak MB",
        "explicit peak MB",
        "mem explicit / fused",
    ):
        table.add_column(column, justify="right")
    for r in rows:
        table.add_row(
            str(r["image"]),
            str(r["patch"]),
            str(r["tokens"]),
            f"{r['time_ms']['fused']:.2f}",
            f"{r['time_ms']['explicit']:.2f}",
            f"{r['time_ratio']:.2f}x",
            fmt(r["time_slope"]["fused"], ".2f"),
            fmt(r["time_slope"]["explicit"], ".2f"),
            mb(r["attention_matrix_bytes"]),
            mb(r["peak_bytes"]["fused"]),
            mb(r["peak_bytes"]["explicit"]),
            fmt(r["memory_ratio"], ".2f"),
        )
    console().print(table)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argument_parser(__doc__)
    parser.add_argument(
        "--sizes", default=DEFAULT_SIZES, help="image:patch pairs, square images (default: %(default)s)"
    )
    parser.add_argument("--embed-dim", type=int, default=64)
    parser.add_argument("--heads", type=int, default=4)
    parser.add_argument("--depth", type=int, default=2)
    parser.add_argument("--channels", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--steps", type=int, default=10, help="timed steps per path and size (median)")
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument(
        "--memory-steps", type=int, default=2, help="steps run for the peak-memory measurement"
    )
    parser.add_argument("--forward", action="store_true", help="also measure the forward pass alone")
    parser.add_argument("--no-memory", action="store_true", help="time only (no peak-memory processes)")
    parser.add_argument("--device", default="cpu", help="auto | cpu | cuda")
    parser.add_argument(
        "--threads", type=int, default=torch.get_num_threads(), help="CPU threads (default: %(default)s)"
    )
    parser.add_argument("--probe", help=argparse.SUPPRESS)  # internal: one CPU memory measurement
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    if args.probe:
        run_probe(args.probe)
        return {}
    from vitcli.runtime.devices import resolve_device

    device = resolve_device(args.device)
    torch.set_num_threads(args.threads)
    modes = ["train", "forward"] if args.forward else ["train"]
    machine = Machine(device)
    results = {mode: measure(args, device, mode) for mode in modes}
    probe_model = ViT(
        image_size=(28, 28),
        in_channels=args.channels,
        num_classes=10,
        embed_dim=args.embed_dim,
        patch_size=7,
        depth=args.depth,
        heads=args.heads,
    )
    result = {
        "benchmark": "attention_cost",
        "config": {
            "embed_dim": args.embed_dim,
            "heads": args.heads,
            "depth": args.depth,
            "channels": args.channels,
            "batch_size": args.batch_size,
            "steps": args.steps,
            "warmup": args.warmup,
            "memory_steps": args.memory_steps,
            "sizes": args.sizes,
            "parameters_at_28px_patch_7": count_parameters(probe_model),
            "memory_measure": None
            if args.no_memory
            else "cuda max_memory_allocated growth"
            if device.type == "cuda"
            else "peak RSS growth in a fresh process per (size, path, mode)",
        },
        "machine": machine.describe(),
        "results": results,
    }
    title = (
        f"ViT dim {args.embed_dim}, {args.heads} heads, {args.depth} blocks, batch {args.batch_size}, "
        f"{device}, {torch.get_num_threads()} threads"
    )
    for mode, rows in results.items():
        print_table(mode, rows, title)
    return emit(result, args.json)


if __name__ == "__main__":
    main()
