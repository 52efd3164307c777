"""What each small-data lever costs in training speed, against today's crops and flips, in the same run.

The baseline is one epoch of `vitcli.training.engine.fit` as `vitcli train` runs it with its default
augmentation
(shifts of a pixel for digits; crops with 4 px padding and flips for natural images), by default the
classic MNIST ViT (dim 32, patch 7, 2 blocks, 2 heads), batch 128, 5,000 images held out for validation.
Each row adds one lever at a usual strength, and the last row all of them together:

  randaugment 9   two ops per image, each image its own (augment.rand_augment)
  erase 0.25      a noise box in a quarter of the images (augment.random_erase)
  mixup 0.8       torchvision's MixUp, soft targets
  cutmix 1.0      torchvision's CutMix
  drop path 0.1   timm's DropPath on both branches of every block
  ema 0.999       timm's ModelEmaV3 after every step (and a second validation per epoch)
  clip grad 1.0   clip_grad_norm_ before every step
  every lever     all of the above (mixup and cutmix: one of the two per batch)

Each repeat runs every row once, in turn, from the same initial weights, so a noisy machine affects all
alike; figures are medians over --repeats. Two per row:

  train images/s   the epoch's images over its training steps (augmentation included), as `vitcli train`
                   prints them; the target is >= 0.85 of the baseline with every lever on
  epoch s          the whole fit call: training steps plus validation (twice with --ema)

Prints a rich table and one JSON object (also written to --json).

    OMP_NUM_THREADS=2 python benchmarks/lever_cost.py --data-dir ../shared/data --repeats 3
"""

from __future__ import annotations

import statistics
import time
from dataclasses import replace

import torch
from common import DATA_DIR, Machine, alternate, argument_parser, console, emit  # benchmarks/common.py
from rich.table import Table

from vitcli.data import load_splits
from vitcli.data.batches import Augmentation
from vitcli.models.build import build_model
from vitcli.runtime.devices import resolve_device
from vitcli.settings.config import DataConfig, TrainConfig
from vitcli.settings.specs import ViTSpec
from vitcli.training.engine import fit

DATA_LEVERS = {"randaugment 9": {"randaugment": 9}, "erase 0.25": {"erase": 0.25}}
DATA_LEVERS |= {"mixup 0.8": {"mixup": 0.8}, "cutmix 1.0": {"cutmix": 1.0}}
TRAIN_LEVERS = {
    "drop path 0.1": {"drop_path": 0.1},
    "ema 0.999": {"ema": 0.999},
    "clip grad 1.0": {"clip_grad": 1.0},
}
EVERY = "every lever"
ROWS = ["crops and flips", *DATA_LEVERS, *TRAIN_LEVERS, EVERY]
TARGET = 0.85


def levers(row: str) -> tuple[dict, dict]:
    """(Augmentation fields, TrainConfig fields) of a row."""
    if row == EVERY:
        data = {k: v for d in DATA_LEVERS.values() for k, v in d.items()}
        return data, {k: v for d in TRAIN_LEVERS.values() for k, v in d.items()}
    return DATA_LEVERS.get(row, {}), TRAIN_LEVERS.get(row, {})


def run_row(row: str, spec: ViTSpec, train_cfg: TrainConfig, splits, device) -> dict:
    data, train = levers(row)
    cfg = replace(train_cfg, **train)
    torch.manual_seed(cfg.seed)
    built = build_model(spec,
        splits.info, splits.stats, weight_decay=cfg.weight_decay, emit=print, drop_path=cfg.drop_path
    )
    start = time.perf_counter()
    result = fit(
        built.module.to(device),
        splits,
        cfg,
        device,
        built.preprocessing.on(device),
        augment=Augmentation(splits.info.family, **data),
    )
    return {
        "train_images_per_s": result.images_per_s,
        "epoch_seconds": time.perf_counter() - start,
        "val_accuracy": result.history[-1].val_accuracy,
    }


def summarise(runs: dict[str, list[dict]]) -> dict[str, dict]:
    keys = ("train_images_per_s", "epoch_seconds", "val_accuracy")
    summary = {
        name: {f"{k}_median": statistics.median(r[k] for r in rs) for k in keys} | {"runs": rs}
        for name, rs in runs.items()
    }
    base = summary[ROWS[0]]["train_images_per_s_median"]
    for s in summary.values():
        s["ratio"] = s["train_images_per_s_median"] / base
    return summary


def print_table(summary: dict, title: str) -> None:
    table = Table(title=title)
    for column in ("augmentation", "train images/s", "/ crops and flips", "epoch s", "val accuracy"):
        table.add_column(column, justify="right")
    for name, s in summary.items():
        ratio = f"{s['ratio']:.2f}x"
        if name == EVERY:
            ratio = f"[{'green' if s['ratio'] >= TARGET else 'red'}]{ratio}[/]"
        table.add_row(
            name,
            f"{s['train_images_per_s_median']:,.0f}",
            ratio,
            f"{s['epoch_seconds_median']:.1f}",
            f"{100 * s['val_accuracy_median']:.2f}%",
        )
    console().print(table)


def main(argv: list[str] | None = None) -> dict:
    parser = argument_parser(__doc__)
    parser.add_argument("--data-dir", default=DATA_DIR)
    parser.add_argument("--dataset", default="mnist", help="mnist, cifar10, folder:PATH, ...")
    parser.add_argument("--subset", type=int, help="train on only this many images (default: all)")
    parser.add_argument("--embed-dim", type=int, default=32)
    parser.add_argument("--patch-size", type=int, default=7)
    parser.add_argument("--depth", type=int, default=2)
    parser.add_argument("--heads", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--lr", type=float, default=1e-2)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args(argv)
    device = resolve_device(args.device)
    spec = ViTSpec(embed_dim=args.embed_dim, patch_size=args.patch_size, depth=args.depth, heads=args.heads)
    train_cfg = TrainConfig(epochs=1, batch_size=args.batch_size, lr=args.lr, device=str(device))
    data = DataConfig(dataset=args.dataset, data_dir=args.data_dir, subset=args.subset)
    splits = load_splits(data, download=False)
    machine = Machine(device)
    runs = alternate(
        args.repeats,
        {row: lambda row=row: run_row(row, spec, train_cfg, splits, device) for row in ROWS},
        lambda out: f"{out['train_images_per_s']:,.0f} img/s, epoch {out['epoch_seconds']:.1f} s",
    )
    summary = summarise(runs)
    result = {
        "benchmark": "lever_cost",
        "config": {
            "dataset": args.dataset,
            "model": spec.to_dict(),
            "train": train_cfg.__dict__,
            "train_images": len(splits.train),
            "repeats": args.repeats,
            "levers": {row: dict(zip(("data", "train"), levers(row))) for row in ROWS},
        },
        "machine": machine.describe(),
        "target": f"every lever >= {TARGET:.2f}x the crops-and-flips images/s",
        "every_lever_ratio": summary[EVERY]["ratio"],
        "rows": summary,
    }
    print_table(
        summary,
        f"Lever cost: {spec.kind} {args.embed_dim}/{args.patch_size}/{args.depth} on {args.dataset}, "
        f"{device}, {torch.get_num_threads()} threads, medians of {args.repeats}",
    )
    return emit(result, args.json)


if __name__ == "__main__":
    main()
