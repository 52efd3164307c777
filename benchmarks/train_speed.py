"""Training speed and accuracy of vitcli's engine against a plain PyTorch loop, in one process.

Both train the same ViT (same initial weights, optimiser settings and learning-rate schedule) for the
same epochs on the 60,000 MNIST training images and are scored on the 10,000 test images. They differ
in the data pipeline and the loop:

  vitcli  uint8 tensors decoded once, batches gathered and normalised as tensor ops (the model's
          vitcli.data.preprocessing.Preprocessing), fused AdamW, no per-step host synchronisation
          (vitcli.training.engine.fit)
  plain   torchvision's MNIST with ToTensor + Normalize through a DataLoader (PIL per image),
          torch.optim.AdamW, loss.item() every step: the loop of most tutorials
  tensor  what a careful user writes: the images as normalised float tensors in memory, batches by
          indexing a permutation, torch.optim.AdamW, no DataLoader and no per-step host sync
  compiled  vitcli's loop with --compile (torch.compile; inductor's on-disk cache makes a second run
          start warm), with --compiled

--processes times whole processes instead, start-up included: `vitcli train` (and with --compile) for
--epochs against the tensor loop in a process of its own (`--loops tensor`), in turn, --repeats times.

Runs alternate (plain, vitcli, plain, vitcli, ...) with --repeats so that a noisy machine affects both.
Prints a rich table and one JSON object (also written to --json).

    python benchmarks/train_speed.py --data-dir ../shared/data
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from common import DATA_DIR, Machine, alternate, argument_parser, console, emit, sync  # benchmarks/common.py
from rich.table import Table

from vitcli.data import load_splits
from vitcli.data.batches import Augmentation
from vitcli.data.datasets import ChannelStats
from vitcli.data.preprocessing import Preprocessing
from vitcli.models import count_parameters
from vitcli.models.build import build_module
from vitcli.runtime.devices import resolve_device
from vitcli.settings.config import load_config
from vitcli.training.checkpoint import read_metadata
from vitcli.training.engine import fit
from vitcli.training.evaluation import evaluate
from vitcli.training.optim import warmup_cosine


def plain_loop(cfg, model, stats: ChannelStats, data_dir: str, device: torch.device, workers: int) -> dict:
    from torch.utils.data import DataLoader
    from torchvision import datasets, transforms

    tf = transforms.Compose([transforms.ToTensor(), transforms.Normalize(stats.mean, stats.std)])
    train_set = datasets.MNIST(data_dir, train=True, transform=tf)
    test_set = datasets.MNIST(data_dir, train=False, transform=tf)
    loader = DataLoader(
        train_set,
        batch_size=cfg.train.batch_size,
        shuffle=True,
        drop_last=True,
        num_workers=workers,
        generator=torch.Generator().manual_seed(cfg.train.seed),
    )
    steps = len(loader)
    optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.train.lr, weight_decay=cfg.train.weight_decay)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, warmup_cosine(round(cfg.train.warmup * steps), cfg.train.epochs * steps)
    )
    seen, start = 0, time.perf_counter()
    model.train()
    for _ in range(cfg.train.epochs):
        for images, labels in loader:
            images, labels = images.to(device), labels.to(device)
            loss = F.cross_entropy(model(images), labels)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            schedule.step()
            loss.item()  # what a tutorial loop does to log the loss
            seen += len(labels)
    seconds = time.perf_counter() - start
    model.eval()
    correct = 0
    with torch.inference_mode():
        for images, labels in DataLoader(test_set, batch_size=1024):
            correct += (model(images.to(device)).argmax(1).cpu() == labels).sum().item()
    return {
        "seconds": seconds,
        "images": seen,
        "images_per_s": seen / seconds,
        "test_accuracy": correct / len(test_set),
    }


def vitcli_loop(cfg, model, device: torch.device) -> dict:
    splits = load_splits(cfg.data, download=False)
    preprocess = Preprocessing(splits.stats.mean, splits.stats.std).on(device)  # as `vitcli train` builds it
    augment = Augmentation.of(cfg.data, splits.info.family)
    start = time.perf_counter()
    result = fit(model, splits, cfg.train, device, preprocess, augment=augment)
    seconds = time.perf_counter() - start
    test = evaluate(model, splits.test, preprocess, device, len(splits.info.classes))
    return {
        "seconds": seconds,
        "images": result.images,
        "images_per_s": result.images_per_s,
        "test_accuracy": test.accuracy,
    }


def tensor_loop(cfg, model, splits, device: torch.device) -> dict:
    """The tensor-resident loop: float tensors normalised once, a permutation per epoch, plain AdamW."""
    stats = splits.stats
    mean = torch.tensor(stats.mean).view(1, -1, 1, 1)
    std = torch.tensor(stats.std).view(1, -1, 1, 1)
    images = ((splits.train.images.float() / 255 - mean) / std).to(device)
    labels = splits.train.labels.to(device)
    size, epochs = cfg.train.batch_size, cfg.train.epochs
    steps = len(images) // size
    optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.train.lr, weight_decay=cfg.train.weight_decay)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, warmup_cosine(round(cfg.train.warmup * steps), epochs * steps)
    )
    generator = torch.Generator().manual_seed(cfg.train.seed)
    model.train()
    start = time.perf_counter()
    for _ in range(epochs):
        order = torch.randperm(len(images), generator=generator).to(device)
        for i in range(steps):
            index = order[i * size : (i + 1) * size]
            loss = F.cross_entropy(model(images[index]), labels[index])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            schedule.step()
    sync(device)
    seconds = time.perf_counter() - start
    test_images = ((splits.test.images.float() / 255 - mean) / std).to(device)
    model.eval()
    with torch.no_grad():
        predicted = torch.cat([model(batch).argmax(1) for batch in test_images.split(1000)])
    accuracy = (predicted.cpu() == splits.test.labels).float().mean().item()
    return {
        "seconds": seconds,
        "images": epochs * steps * size,
        "images_per_s": epochs * steps * size / seconds,
        "test_accuracy": accuracy,
    }


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argument_parser(__doc__)
    parser.add_argument("--data-dir", default=DATA_DIR)
    parser.add_argument("--embed-dim", type=int, default=32)
    parser.add_argument("--patch-size", type=int, default=7)
    parser.add_argument("--depth", type=int, default=2)
    parser.add_argument("--heads", type=int, default=2)
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--lr", type=float, default=1e-2)
    parser.add_argument(
        "--augment", action="store_true", help="augment on vitcli's side (the plain loop never does)"
    )
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--workers", type=int, default=0, help="DataLoader workers of the plain loop")
    parser.add_argument(
        "--loops", nargs="+", default=["plain", "vitcli"], choices=["plain", "tensor", "vitcli", "compiled"]
    )
    parser.add_argument("--processes", action="store_true", help="time whole processes (see above)")
    return parser.parse_args(argv)


def make_config(args: argparse.Namespace):
    return load_config(
        None,
        {
            "model": {
                "kind": "vit",
                "embed_dim": args.embed_dim,
                "patch_size": args.patch_size,
                "depth": args.depth,
                "heads": args.heads,
            },
            "data": {"dataset": "mnist", "data_dir": args.data_dir, "val_size": 0, "augment": args.augment},
            "train": {
                "epochs": args.epochs,
                "batch_size": args.batch_size,
                "lr": args.lr,
                "device": args.device,
            },
        },
    ).validate()


def run_loops(args: argparse.Namespace, cfg, splits, device: torch.device) -> dict[str, list[dict]]:
    """Both loops, in turn, --repeats times, each on a fresh model with the same initial weights."""
    info, stats = splits.info, splits.stats

    def fresh_model():
        return build_module(cfg.model, info).to(device)

    compiled = dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, compile=True))
    loops = {
        "plain": lambda: plain_loop(cfg, fresh_model(), stats, args.data_dir, device, args.workers),
        "tensor": lambda: tensor_loop(cfg, fresh_model(), splits, device),
        "vitcli": lambda: vitcli_loop(cfg, fresh_model(), device),
        "compiled": lambda: vitcli_loop(compiled, fresh_model(), device),
    }
    return alternate(
        args.repeats,
        {name: loops[name] for name in args.loops},
        lambda out: (
            f"{out['images_per_s']:,.0f} img/s, test {100 * out['test_accuracy']:.2f}%, "
            f"{out['seconds']:.1f} s"
        ),
        seed=cfg.train.seed,
    )


def summarise(runs: dict[str, list[dict]]) -> dict[str, dict]:
    summary = {}
    for name, outs in runs.items():
        summary[name] = {
            "images_per_s_median": statistics.median(o["images_per_s"] for o in outs),
            "test_accuracy_mean": statistics.mean(o["test_accuracy"] for o in outs),
            "seconds_median": statistics.median(o["seconds"] for o in outs),
            "runs": outs,
        }
    return summary


def ratios(summary: dict[str, dict], key: str = "images_per_s_median") -> dict[str, float]:
    """Each loop's speed over the plain loop's and over the tensor loop's, where those ran."""
    out = {}
    for base in ("plain", "tensor"):
        if base in summary:
            for name in summary:
                if name != base:
                    out[f"{name}/{base}"] = summary[name][key] / summary[base][key]
    return out


def make_result(args: argparse.Namespace, cfg, info, machine: Machine, summary: dict[str, dict]) -> dict:
    return {
        "benchmark": "train_speed",
        "config": {
            "model": cfg.model.to_dict(),
            "train": cfg.train.__dict__,
            "augment": args.augment,
            "parameters": count_parameters(build_module(cfg.model, info)),
            "plain_workers": args.workers,
        },
        "machine": machine.describe(),
        **summary,
        "ratios": ratios(summary),
        # kept for the readers of earlier results: vitcli over the plain loop
        **(
            {"speedup": summary["vitcli"]["images_per_s_median"] / summary["plain"]["images_per_s_median"]}
            if {"plain", "vitcli"} <= summary.keys()
            else {}
        ),
    }


def print_table(args: argparse.Namespace, device: torch.device, summary: dict[str, dict], title: str) -> None:
    table = Table(title=title)
    for column in ("loop", "images/s (median)", "test accuracy (mean)", "seconds (median)", "runs"):
        table.add_column(column, justify="right")
    for name, s in summary.items():
        table.add_row(
            name,
            f"{s['images_per_s_median']:,.0f}",
            f"{100 * s['test_accuracy_mean']:.2f}%",
            f"{s['seconds_median']:.1f}",
            str(len(s["runs"])),
        )
    key = "seconds_median" if args.processes else "images_per_s_median"
    for name, value in ratios(summary, key).items():
        if args.processes:  # shorter is faster: the ratio is the other way round
            value = 1 / value
        table.add_row(name, f"{value:.2f}x", "", "", "")
    console().print(table)


# --- whole processes ---------------------------------------------------------------------------------


def process_runs(args: argparse.Namespace) -> dict[str, list[dict]]:
    """`vitcli train` (and with --compile) and the tensor loop's own process, each timed from its start to
    its exit, in turn; accuracy from the run's checkpoint and the loop's JSON."""
    model = ["--embed-dim", args.embed_dim, "--patch-size", args.patch_size, "--depth", args.depth]
    common = [*model, "--heads", args.heads, "--epochs", args.epochs, "--batch-size", args.batch_size]
    common += ["--lr", args.lr]
    folder = Path(tempfile.mkdtemp(prefix="vitcli-train-speed-"))
    vitcli = [sys.executable, "-m", "vitcli", "train", "--dataset", "mnist", "--data-dir", args.data_dir]
    vitcli += ["--val-size", 0, "--device", args.device, "--out", folder, "--overwrite", *common]
    vitcli += [] if args.augment else ["--no-augment"]
    loop = [sys.executable, __file__, "--loops", "tensor", "--repeats", 1, "--data-dir", args.data_dir]
    loop += ["--device", args.device, *common]
    images = args.epochs * (60000 // args.batch_size) * args.batch_size
    return alternate(
        args.repeats,
        {
            "tensor": lambda: timed([*loop, "--json", folder / "loop.json"], folder / "loop.json", images),
            "vitcli": lambda: timed([*vitcli, "--name", "plain"], folder / "plain", images),
            "compiled": lambda: timed(
                [*vitcli, "--compile", "--name", "compiled"], folder / "compiled", images
            ),
        },
        lambda out: f"{out['seconds']:.1f} s, test {100 * out['test_accuracy']:.2f}%",
    )


def timed(command: list, result: Path, images: int) -> dict:
    """Run `command` to its exit; its test accuracy from `result`: the tensor loop's JSON, or a run
    directory's checkpoint."""
    start = time.perf_counter()
    subprocess.run(
        [str(c) for c in command], check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    seconds = time.perf_counter() - start
    if result.suffix == ".json":
        accuracy = json.loads(result.read_text())["tensor"]["test_accuracy_mean"]
    else:
        accuracy = json.loads(read_metadata(result / "model.safetensors")["metrics"])["test_accuracy"]
    return {"seconds": seconds, "images": images, "images_per_s": images / seconds, "test_accuracy": accuracy}


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    cfg = make_config(args)
    device = resolve_device(args.device)
    machine = Machine(device)
    splits = load_splits(cfg.data, download=False)  # also fills the tensor cache before timing
    runs = process_runs(args) if args.processes else run_loops(args, cfg, splits, device)
    summary = summarise(runs)
    result = make_result(args, cfg, splits.info, machine, summary)
    what = "whole processes, start-up included; images/s over the process" if args.processes else "training"
    title = (
        f"MNIST, ViT dim {args.embed_dim} patch {args.patch_size} depth {args.depth} heads {args.heads}, "
        f"{args.epochs} epoch(s), batch {args.batch_size}, {device}, "
        f"{torch.get_num_threads()} threads: {what}"
    )
    print_table(args, device, summary, title)
    return emit(result, args.json)


if __name__ == "__main__":
    main()
