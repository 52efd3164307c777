"""Training speed of `vitcli finetune`'s step against a plain timm loop, in one process.

Both train the same timm model (vit_small_patch16_224 by default, random weights: pretrained ones do
not change the speed) on synthetic images already on the device, with AdamW and, on CUDA, bfloat16
autocast, for --steps steps of --batch-size images of --img-size pixels:

  plain   timm.create_model + torch.optim.AdamW + autocast, one float batch reused: the loop of timm's
          examples, with nothing vitcli adds
  vitcli  the model `vitcli finetune --pretrained none` builds (TimmSpec.build), trained by
          vitcli.training.engine.fit: uint8 images gathered and normalised on the device each step by the
          model's preprocessing, fused AdamW, warmup-cosine schedule, running loss and accuracy kept
          on the device

The images of both are already --img-size, the size the model is built for, so neither loop resizes:
vitcli's preprocessing resizes only images of another size.

Each loop runs once untimed (CUDA kernels, allocator), then runs alternate (plain, vitcli, ...)
--repeats times so that a noisy machine affects both. Prints a rich table and one JSON object (also
written to --json).

    python benchmarks/finetune_speed.py --device cuda                      # batch 256, 224x224
    python benchmarks/finetune_speed.py --device cpu --batch-size 4 --steps 2 --img-size 32 --repeats 1
"""

from __future__ import annotations

import argparse
import statistics
import time

import timm
import torch
import torch.nn.functional as F
from common import Machine, alternate, argument_parser, console, emit, sync  # benchmarks/common.py
from rich.table import Table

from vitcli.data.batches import Augmentation
from vitcli.data.datasets import ChannelStats, DatasetInfo, Split, Splits
from vitcli.models.build import build_model
from vitcli.runtime.devices import autocast, resolve_device
from vitcli.settings.config import finetune_defaults, load_config
from vitcli.training.engine import fit

CLASSES = 10


def synthetic(args, device: torch.device) -> Splits:
    n = args.steps * args.batch_size
    generator = torch.Generator(device=device).manual_seed(0)
    images = torch.randint(
        0, 256, (n, 3, args.img_size, args.img_size), dtype=torch.uint8, device=device, generator=generator
    )
    labels = torch.randint(0, CLASSES, (n,), device=device, generator=generator)
    info = DatasetInfo(
        name="synthetic",
        channels=3,
        height=args.img_size,
        width=args.img_size,
        classes=[str(i) for i in range(CLASSES)],
        family="natural",
    )
    stats = ChannelStats((0.5,) * 3, (0.5,) * 3)
    return Splits(info, stats, Split(images, labels), None, Split(images[:1], labels[:1]))


def plain_loop(args, device: torch.device, steps: int) -> dict:
    model = timm.create_model(
        args.model, num_classes=CLASSES, img_size=args.img_size, patch_size=args.patch_size
    ).to(device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=0.05)
    images = torch.randn(args.batch_size, 3, args.img_size, args.img_size, device=device)
    labels = torch.randint(0, CLASSES, (args.batch_size,), device=device)
    model.train()
    sync(device)
    start = time.perf_counter()
    for _ in range(steps):
        with autocast(device):  # bfloat16 on CUDA, float32 on the CPU, as in vitcli
            loss = F.cross_entropy(model(images), labels)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    sync(device)
    seconds = time.perf_counter() - start
    images = steps * args.batch_size
    return {"seconds": seconds, "images": images, "images_per_s": images / seconds}


def vitcli_loop(args, device: torch.device, splits: Splits) -> dict:
    cfg = load_config(
        None,
        {
            "model": {
                "kind": "timm",
                "name": args.model,
                "pretrained": "none",
                "img_size": args.img_size,
                "patch_size": args.patch_size,
            },
            "data": {"augment": False},
            "train": {"epochs": 1, "batch_size": args.batch_size, "lr": args.lr, "device": str(device)},
        },
        defaults=finetune_defaults(),
    ).validate()
    built = build_model(cfg.model,
        splits.info, splits.stats, weight_decay=cfg.train.weight_decay, emit=lambda event: None
    )
    result = fit(
        built.module.to(device),
        splits,
        cfg.train,
        device,
        built.preprocessing.on(device),
        augment=Augmentation.of(cfg.data, splits.info.family),
        param_groups=built.param_groups,
    )
    return {"seconds": result.seconds, "images": result.images, "images_per_s": result.images_per_s}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argument_parser(__doc__)
    parser.add_argument("--model", default="vit_small_patch16_224")
    parser.add_argument("--img-size", type=int, default=224)
    parser.add_argument("--patch-size", type=int, default=16)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument(
        "--steps",
        type=int,
        default=100,
        help="timed steps per run (vitcli reads its loss back every steps/50)",
    )
    parser.add_argument("--lr", type=float, default=1e-4)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--repeats", type=int, default=3)
    return parser.parse_args(argv)


def warm_up(args: argparse.Namespace, device: torch.device) -> None:
    """Each loop once, untimed, for at most 5 steps: kernels, autotuning, allocator."""
    warm = argparse.Namespace(**{**vars(args), "steps": min(args.steps, 5)})
    plain_loop(warm, device, warm.steps)
    vitcli_loop(warm, device, synthetic(warm, device))


def run_loops(args: argparse.Namespace, device: torch.device, splits: Splits) -> dict[str, list[dict]]:
    return alternate(
        args.repeats,
        {
            "plain": lambda: plain_loop(args, device, args.steps),
            "vitcli": lambda: vitcli_loop(args, device, splits),
        },
        lambda out: f"{out['images_per_s']:,.0f} img/s, {out['seconds']:.2f} s",
        seed=0,
    )


def make_result(
    args: argparse.Namespace, device: torch.device, machine: Machine, runs: dict[str, list[dict]]
) -> dict:
    summary = {
        name: {"images_per_s_median": statistics.median(o["images_per_s"] for o in outs), "runs": outs}
        for name, outs in runs.items()
    }
    ratio = summary["vitcli"]["images_per_s_median"] / summary["plain"]["images_per_s_median"]
    return {
        "benchmark": "finetune_speed",
        "config": {
            "model": args.model,
            "img_size": args.img_size,
            "patch_size": args.patch_size,
            "batch_size": args.batch_size,
            "steps": args.steps,
            "dtype": "bfloat16 autocast" if device.type == "cuda" else "float32",
        },
        "machine": machine.describe(timm=timm.__version__),
        "plain": summary["plain"],
        "vitcli": summary["vitcli"],
        "speedup": ratio,
    }


def print_table(args: argparse.Namespace, device: torch.device, result: dict) -> None:
    table = Table(
        title=f"{args.model} training, {args.img_size}x{args.img_size}, batch {args.batch_size}, "
        f"{args.steps} steps, {result['config']['dtype']}, {device}"
    )
    for column in ("loop", "images/s (median)", "runs"):
        table.add_column(column, justify="right")
    for name in ("plain", "vitcli"):
        table.add_row(name, f"{result[name]['images_per_s_median']:,.0f}", str(len(result[name]["runs"])))
    table.add_row("vitcli / plain", f"{result['speedup']:.2f}x", "")
    console().print(table)


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    device = resolve_device(args.device)
    machine = Machine(device)
    splits = synthetic(args, device)
    warm_up(args, device)
    result = make_result(args, device, machine, run_loops(args, device, splits))
    print_table(args, device, result)
    return emit(result, args.json)


if __name__ == "__main__":
    main()
