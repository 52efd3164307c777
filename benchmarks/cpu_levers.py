"""Levers on the CPU training speed of the classic MNIST ViT, each against the baseline in the same run.

The baseline is vitcli.training.engine.fit as it is: one epoch of the classic ViT (dim 32, patch 7, 2 blocks,
2 heads) on the 60,000 MNIST training images, batch 128, lr 1e-2, no augmentation. Each lever changes
one thing:

  matmul patches     the patch embedding as one matrix product over flattened patches instead of a
                     Conv2d with kernel = stride = patch (same parameters, same map)
  batch x2 / x4      larger batches (256 / 512), learning rate scaled linearly (2e-2 / 4e-2)
  explicit attention the softmax(Q K^T / sqrt(d)) V path (return_attention=True) instead of the fused
                     scaled_dot_product_attention
  bfloat16 autocast  fit(autocast_dtype=torch.bfloat16): bfloat16 autocast around the training step
                     (by default vitcli keeps the CPU in float32)
  foreach AdamW      fit(optimizer_options={"foreach": True}): the multi-tensor AdamW instead of the
                     fused one vitcli uses
  torch.compile      TrainConfig(compile=True)

Each repeat runs every lever once, one after the other from the same initial weights (so a noisy
machine affects all alike); ratios are of medians over --repeats. Four figures per lever:

  epoch images/s   the images of the epoch over its wall time, start-up included (what a user gets)
  steady images/s  between the 3rd and the last progress event of fit (every ~2% of the epoch), i.e.
                   without the first ~4% of the epoch, where torch.compile compiles
  start-up s       epoch seconds minus the images at the steady rate: compile time, warm-up
  test accuracy    on the 10,000 test images after the epoch (float32 evaluation)

Prints a rich table and one JSON object (also written to --json).

    python benchmarks/cpu_levers.py --data-dir ../shared/data --repeats 3
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

import torch
import torch.nn.functional as F
from common import DATA_DIR, Machine, alternate, argument_parser, console, emit  # benchmarks/common.py
from rich.table import Table
from torch import Tensor, nn

from vitcli.data import load_splits
from vitcli.data.preprocessing import Preprocessing
from vitcli.events import StepDone
from vitcli.models.build import build_module
from vitcli.models.vit import PatchEmbedding, ViT
from vitcli.runtime.devices import AUTO, resolve_device
from vitcli.settings.config import DataConfig, TrainConfig
from vitcli.settings.specs import ViTSpec
from vitcli.training.engine import fit
from vitcli.training.evaluation import evaluate

SKIP_EVENTS = 2  # progress events left out of the steady rate: the first ~4% of the epoch


class MatmulPatchEmbedding(PatchEmbedding):
    """The Conv2d patch embedding's map as one matrix product: with kernel = stride = patch, the
    convolution is a Linear layer applied to each flattened patch, (C, p, p) in the kernel's order."""

    def forward(self, x: Tensor) -> Tensor:
        B, C, H, W = x.shape
        p = self.patch_size
        patches = x.reshape(B, C, H // p, p, W // p, p).permute(0, 2, 4, 1, 3, 5)
        patches = patches.reshape(B, -1, C * p * p)
        return F.linear(patches, self.proj.weight.reshape(self.proj.out_channels, -1), self.proj.bias)


class ExplicitAttention(nn.Module):
    """The ViT, always through the explicit attention path (the weights are computed and dropped)."""

    def __init__(self, vit: ViT):
        super().__init__()
        self.vit = vit

    def forward(self, x: Tensor) -> Tensor:
        return self.vit(x, return_attention=True)[0]


@dataclass
class Lever:
    """How a lever changes the baseline: the model fit trains, the training config, and fit's autocast
    dtype and optimiser options (the defaults are fit's own)."""

    model: Callable[[ViT], nn.Module] = lambda vit: vit
    train: Callable[[TrainConfig], TrainConfig] = lambda cfg: cfg
    autocast_dtype: torch.dtype | str | None = AUTO
    optimizer_options: dict[str, Any] | None = None


def use_matmul_patches(vit: ViT) -> ViT:
    # Same module, same parameters and state-dict keys; only the forward changes.
    vit.patch_embed.__class__ = MatmulPatchEmbedding
    return vit


LEVERS = {
    "baseline": Lever(),
    "matmul patches": Lever(model=use_matmul_patches),
    "batch x2 lr x2": Lever(train=lambda c: replace(c, batch_size=2 * c.batch_size, lr=2 * c.lr)),
    "batch x4 lr x4": Lever(train=lambda c: replace(c, batch_size=4 * c.batch_size, lr=4 * c.lr)),
    "explicit attention": Lever(model=ExplicitAttention),
    "bfloat16 autocast": Lever(autocast_dtype=torch.bfloat16),
    "foreach AdamW": Lever(optimizer_options={"foreach": True}),
    "torch.compile": Lever(train=lambda c: replace(c, compile=True)),
}


def run_lever(lever: Lever, spec: ViTSpec, train_cfg: TrainConfig, splits, device) -> dict:
    torch.manual_seed(train_cfg.seed)
    vit = build_module(spec, splits.info).to(device)
    preprocess = Preprocessing(splits.stats.mean, splits.stats.std).on(device)
    model, cfg = lever.model(vit), lever.train(train_cfg)
    marks: list[tuple[int, float]] = []  # (images so far, time) at each progress event

    def on_event(event):
        if isinstance(event, StepDone):
            marks.append((event.step * cfg.batch_size, time.perf_counter()))

    result = fit(
        model,
        splits,
        cfg,
        device,
        preprocess,
        augment=None,
        on_event=on_event,
        autocast_dtype=lever.autocast_dtype,
        optimizer_options=lever.optimizer_options,
    )
    torch._dynamo.reset()  # compiled code is not reused by the next lever
    if len(marks) < 2:
        raise SystemExit(
            f"{len(marks)} progress event(s): too few steps for a rate; use more images or a smaller batch"
        )
    (images0, t0), (images1, t1) = marks[min(SKIP_EVENTS, len(marks) - 2)], marks[-1]
    steady = (images1 - images0) / (t1 - t0)
    test = evaluate(vit, splits.test, preprocess, device, len(splits.info.classes), autocast_dtype=None)
    return {
        "epoch_images_per_s": result.images_per_s,
        "steady_images_per_s": steady,
        "startup_s": result.seconds - result.images / steady,
        "test_accuracy": test.accuracy,
    }


def summarise(runs: dict[str, list[dict]]) -> dict[str, dict]:
    keys = ("epoch_images_per_s", "steady_images_per_s", "startup_s", "test_accuracy")
    summary = {
        name: {f"{k}_median": statistics.median(r[k] for r in rs) for k in keys} | {"runs": rs}
        for name, rs in runs.items()
    }
    base = summary["baseline"]
    for s in summary.values():
        s["epoch_ratio"] = s["epoch_images_per_s_median"] / base["epoch_images_per_s_median"]
        s["steady_ratio"] = s["steady_images_per_s_median"] / base["steady_images_per_s_median"]
    return summary


def print_table(summary: dict, title: str) -> None:
    table = Table(title=title)
    for column in (
        "lever",
        "epoch images/s",
        "/ baseline",
        "steady images/s",
        "/ baseline",
        "start-up s",
        "test accuracy",
    ):
        table.add_column(column, justify="right")
    for name, s in summary.items():
        table.add_row(
            name,
            f"{s['epoch_images_per_s_median']:,.0f}",
            f"{s['epoch_ratio']:.2f}x",
            f"{s['steady_images_per_s_median']:,.0f}",
            f"{s['steady_ratio']:.2f}x",
            f"{s['startup_s_median']:.1f}",
            f"{100 * s['test_accuracy_median']:.2f}%",
        )
    console().print(table)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argument_parser(__doc__)
    parser.add_argument("--data-dir", default=DATA_DIR)
    parser.add_argument("--subset", type=int, help="train on only this many images (default: all 60,000)")
    parser.add_argument("--levers", default=",".join(LEVERS), help="comma-separated, from: %(default)s")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--lr", type=float, default=1e-2)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args(argv)
    args.levers = ["baseline"] + [name for name in args.levers.split(",") if name != "baseline"]
    unknown = set(args.levers) - set(LEVERS)
    if unknown:
        parser.error(f"unknown lever {sorted(unknown)[0]!r}; choose from {', '.join(LEVERS)}")
    return args


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    device = resolve_device(args.device)
    spec = ViTSpec(embed_dim=32, patch_size=7, depth=2, heads=2)
    train_cfg = TrainConfig(epochs=1, batch_size=args.batch_size, lr=args.lr, device=str(device))
    splits = load_splits(
        DataConfig(dataset="mnist", data_dir=args.data_dir, val_size=0, subset=args.subset, augment=False),
        download=False,
    )
    machine = Machine(device)
    runs = alternate(
        args.repeats,
        {
            name: lambda lever=LEVERS[name]: run_lever(lever, spec, train_cfg, splits, device)
            for name in args.levers
        },
        lambda out: (
            f"epoch {out['epoch_images_per_s']:,.0f} img/s, "
            f"steady {out['steady_images_per_s']:,.0f} img/s, "
            f"start-up {out['startup_s']:.1f} s, test {100 * out['test_accuracy']:.2f}%"
        ),
    )
    summary = summarise(runs)
    result = {
        "benchmark": "cpu_levers",
        "config": {
            "model": spec.to_dict(),
            "train": train_cfg.__dict__,
            "train_images": len(splits.train),
            "repeats": args.repeats,
        },
        "machine": machine.describe(),
        "levers": summary,
    }
    print_table(
        summary,
        f"classic MNIST ViT, {len(splits.train):,} images, batch {args.batch_size} "
        f"(baseline), {device}, {torch.get_num_threads()} threads, "
        f"medians of {args.repeats}",
    )
    return emit(result, args.json)


if __name__ == "__main__":
    main()
