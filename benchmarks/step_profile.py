"""Where a CPU training step's time goes, and how much of the CPU's matrix-product peak it reaches.

For a preset's model (its data set's image shape, batch 128 unless the preset sets one), on this
process's threads (OMP_NUM_THREADS, else PyTorch's default):

  peak        GFLOP/s of a float32 512x512 matrix product (the best of 20), the CPU's practical peak
  step        the training step of vitcli's engine (fused AdamW, no per-step sync), timed over --steps
              after 5 warm-up steps; its FLOPs counted by torch.utils.flop_counter (forward + backward,
              matrix products and convolutions: the FLOPs that matter) give GFLOP/s and the share of peak
  profile     torch.profiler's operators by self CPU time over 10 steps: what a faster step must cut

Prints rich tables and one JSON object (also written to --json).

    OMP_NUM_THREADS=2 python benchmarks/step_profile.py --preset mnist-classic --heads 4
"""

from __future__ import annotations

import time

import torch
import torch.nn.functional as F
from common import argument_parser, console, emit  # benchmarks/common.py
from rich.table import Table
from torch.profiler import ProfilerActivity, profile
from torch.utils.flop_counter import FlopCounterMode

from vitcli.data.datasets import DatasetInfo
from vitcli.models import count_parameters
from vitcli.models.build import build_module
from vitcli.settings.config import Config
from vitcli.settings.presets import load_preset
from vitcli.training.optim import make_optimizer

SHAPES = {"mnist": (1, 28, 28, 10), "cifar10": (3, 32, 32, 10)}


def matmul_peak(size: int = 512, tries: int = 20) -> float:
    a, b = torch.randn(size, size), torch.randn(size, size)
    best = float("inf")
    for _ in range(tries):
        start = time.perf_counter()
        for _ in range(10):
            a @ b
        best = min(best, (time.perf_counter() - start) / 10)
    return 2 * size**3 / best / 1e9


def main(argv: list[str] | None = None) -> dict:
    parser = argument_parser(__doc__)
    parser.add_argument("--preset", default="mnist-classic")
    parser.add_argument("--heads", type=int, help="override the preset's heads")
    parser.add_argument("--batch-size", type=int)
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--top", type=int, default=12)
    args = parser.parse_args(argv)

    preset = load_preset(args.preset)
    values = {k: dict(v) for k, v in preset.settings.items()}
    if args.heads:
        values.setdefault("model", {})["heads"] = args.heads
    cfg = Config().merged(values, "preset")
    channels, height, width, classes = SHAPES[cfg.data.dataset]
    info = DatasetInfo(cfg.data.dataset, channels, height, width, [str(i) for i in range(classes)], "natural")
    batch = args.batch_size or cfg.train.batch_size or 128
    torch.manual_seed(0)
    model = build_module(cfg.model, info).train()
    optimizer = make_optimizer(model, cfg.train, None, None)
    images, labels = torch.randn(batch, channels, height, width), torch.randint(0, classes, (batch,))

    flops, seconds, top, ops = measure(model, optimizer, images, labels, args.steps, args.top)
    peak = matmul_peak()
    achieved = flops / seconds / 1e9
    result = {
        "benchmark": "step_profile",
        "preset": args.preset,
        "heads": cfg.model.heads if hasattr(cfg.model, "heads") else None,
        "batch_size": batch,
        "threads": torch.get_num_threads(),
        "parameters": count_parameters(model),
        "step_ms": seconds * 1e3,
        "images_per_s": batch / seconds,
        "flops_per_step": flops,
        "gflops": achieved,
        "peak_gflops_512_matmul": peak,
        "share_of_peak": achieved / peak,
        "ops_per_step": ops,
        "top_ops": top,
    }
    show(result)
    return emit(result, args.json)


def measure(model, optimizer, images, labels, steps: int, count: int):
    """(FLOPs of a step, seconds per step, the `count` operators that take the most self CPU time, the
    operators a step runs)."""

    def step() -> None:
        loss = F.cross_entropy(model(images), labels)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    with FlopCounterMode(display=False) as counter:
        loss = F.cross_entropy(model(images), labels)
        loss.backward()
    flops = counter.get_total_flops()
    for _ in range(5):
        step()
    start = time.perf_counter()
    for _ in range(steps):
        step()
    seconds = (time.perf_counter() - start) / steps
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for _ in range(10):
            step()
    events = sorted(prof.key_averages(), key=lambda e: e.self_cpu_time_total, reverse=True)
    total = sum(e.self_cpu_time_total for e in events)
    top = [
        {"op": e.key, "calls": e.count // 10, "share": e.self_cpu_time_total / total} for e in events[:count]
    ]
    return flops, seconds, top, sum(e.count for e in events) // 10


def show(r: dict) -> None:
    out = console()
    table = Table(title=f"{r['preset']} training step, batch {r['batch_size']}, {r['threads']} thread(s)")
    table.add_column("")
    table.add_column("", justify="right")
    table.add_row("parameters", f"{r['parameters']:,}")
    table.add_row("step", f"{r['step_ms']:.2f} ms ({r['images_per_s']:,.0f} images/s)")
    table.add_row("FLOPs per step (fwd + bwd)", f"{r['flops_per_step'] / 1e9:.3f} G")
    table.add_row("reached", f"{r['gflops']:.1f} GFLOP/s")
    table.add_row("512x512 matmul peak", f"{r['peak_gflops_512_matmul']:.1f} GFLOP/s")
    table.add_row("share of peak", f"{100 * r['share_of_peak']:.1f}%")
    table.add_row("operators per step", f"{r['ops_per_step']:,}")
    out.print(table)
    ops = Table(title="self CPU time by operator")
    for column in ("operator", "calls per step", "share"):
        ops.add_column(column, justify="left" if column == "operator" else "right")
    for op in r["top_ops"]:
        ops.add_row(op["op"], str(op["calls"]), f"{100 * op['share']:.1f}%")
    out.print(ops)


if __name__ == "__main__":
    main()
