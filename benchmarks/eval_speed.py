"""Throughput of evaluation and attention extraction against training, for the same ViT in one process.

Each repeat measures, one after the other and on the same model (so that a noisy machine affects all
alike), the images per second of:

  train         vitcli.training.engine.fit over --train-steps steps (batch --batch-size, fused AdamW,
                no augmentation unless --augment): forward + backward + optimiser step
  eval bN       vitcli.training.evaluation.evaluate with batch N (torch.inference_mode, fused
                attention), for each N of --eval-batch-sizes
  forward ...   the bare forward pass, model(x) on preprocessed (normalised) batches of --forward-batch,
                once under torch.no_grad and once under torch.inference_mode: what evaluate costs
                without its batching, loss and confusion matrix, and whether inference_mode matters
  extract       vitcli.lab.explain.extract (torch.no_grad, the explicit softmax path that returns the
                weights), batches of --attention-batch
  explain       vitcli.lab.explain.explain: extract plus the [CLS] maps, the attention rollout and one
                result object per image, what `vitcli attention` computes before drawing

and the ratios of each to train. Data are random pixels of the model's data set shape (throughput
does not depend on pixel values); models are the classic MNIST ViT (dim 32, patch 7, 2 blocks, 2
heads) and, with --models classic,cifar, the CIFAR reference ViT (dim 256, MLP 1024, patch 4,
6 blocks, 8 heads). --profile adds the operators that take the time in one training step, one
evaluation batch and one extraction batch (torch.profiler, self CPU time).

Prints rich tables and one JSON object (also written to --json).

    python benchmarks/eval_speed.py --repeats 3 --profile
    python benchmarks/eval_speed.py --device cuda --models classic,cifar --repeats 3 --profile
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from typing import NamedTuple

import torch
import torch.nn.functional as F
from common import Machine, argument_parser, console, emit, sync  # benchmarks/common.py
from rich.table import Table

from vitcli import __version__
from vitcli.data import Batches
from vitcli.data.batches import Augmentation
from vitcli.data.datasets import ChannelStats, DatasetInfo, Split, Splits
from vitcli.data.preprocessing import Preprocessing
from vitcli.lab.explain import explain
from vitcli.models import count_parameters
from vitcli.models.attention_maps import extract
from vitcli.models.build import build_module
from vitcli.runtime.devices import resolve_device
from vitcli.settings.config import Config, TrainConfig
from vitcli.settings.specs import ViTSpec
from vitcli.training.checkpoint import Checkpoint
from vitcli.training.engine import fit
from vitcli.training.evaluation import evaluate
from vitcli.training.optim import make_optimizer


class Bench(NamedTuple):
    """A model of the benchmark: its spec, the shape of its data, the data's statistics, its learning rate."""

    spec: ViTSpec
    info: DatasetInfo
    stats: ChannelStats
    lr: float


CLASSES = [str(i) for i in range(10)]
MODELS = {
    "classic": Bench(
        ViTSpec(embed_dim=32, patch_size=7, depth=2, heads=2),
        DatasetInfo("mnist", 1, 28, 28, CLASSES, "digits"),
        ChannelStats((0.1307,), (0.3081,)),
        1e-2,
    ),
    "cifar": Bench(
        ViTSpec(embed_dim=256, mlp_dim=1024, patch_size=4, depth=6, heads=8),
        DatasetInfo("cifar10", 3, 32, 32, CLASSES, "natural"),
        ChannelStats((0.49, 0.48, 0.45), (0.25, 0.24, 0.26)),
        1e-3,
    ),
}


def random_split(info: DatasetInfo, n: int, seed: int) -> Split:
    g = torch.Generator().manual_seed(seed)
    images = torch.randint(
        0, 256, (n, info.channels, info.height, info.width), dtype=torch.uint8, generator=g
    )
    return Split(images, torch.randint(0, len(info.classes), (n,), generator=g))


def timed(fn: Callable[[], int], device: torch.device) -> float:
    """Images per second of fn, which returns how many images it processed."""
    sync(device)
    start = time.perf_counter()
    images = fn()
    sync(device)
    return images / (time.perf_counter() - start)


def forward_all(model, batches: list[torch.Tensor], grad_mode) -> int:
    model.eval()
    with grad_mode():
        for x in batches:
            model(x)
    return sum(len(x) for x in batches)


def extract_all(model, batches: list[torch.Tensor]) -> int:
    for x in batches:
        extract(model, x)
    return sum(len(x) for x in batches)


def tasks(args, name: str, device: torch.device) -> tuple[torch.nn.Module, dict[str, Callable[[], float]]]:
    """The model and, per measurement, a function returning its images/s."""
    spec, info, stats, lr = MODELS[name]
    torch.manual_seed(0)
    model = build_module(spec, info).to(device)
    preprocessing = Preprocessing(stats.mean, stats.std)  # what a model trained from scratch normalises with
    preprocess = preprocessing.on(device)
    train_cfg = TrainConfig(epochs=1, batch_size=args.batch_size, lr=lr, warmup=0.0, device=str(device))
    train = Splits(
        info, stats, random_split(info, args.train_steps * args.batch_size, 1), None, random_split(info, 1, 2)
    )
    test = random_split(info, args.eval_images, 3)
    normalised = [x for x, _ in Batches(test, args.forward_batch, device, preprocess)]
    attention_images = test.images[: args.attention_images]
    attention_batches = [preprocess(x.to(device)) for x in attention_images.split(args.attention_batch)]
    checkpoint = Checkpoint(model, Config(model=spec), info, preprocessing, {}, __version__)
    sources, labels = [f"test[{i}]" for i in range(len(attention_images))], [None] * len(attention_images)
    augment = Augmentation(info.family) if args.augment else None
    classes = len(info.classes)

    found: dict[str, Callable[[], float]] = {
        "train": lambda: fit(model, train, train_cfg, device, preprocess, augment=augment).images_per_s,
    }
    for b in args.eval_batch_sizes:
        found[f"eval b{b}"] = lambda b=b: timed(
            lambda: evaluate(model, test, preprocess, device, classes, b).count, device
        )
    found[f"forward no_grad b{args.forward_batch}"] = lambda: timed(
        lambda: forward_all(model, normalised, torch.no_grad), device
    )
    found[f"forward inference_mode b{args.forward_batch}"] = lambda: timed(
        lambda: forward_all(model, normalised, torch.inference_mode), device
    )
    found["extract"] = lambda: timed(lambda: extract_all(model, attention_batches), device)
    found["explain"] = lambda: timed(
        lambda: len(explain(checkpoint, attention_images, sources, labels, batch_size=args.attention_batch)),
        device,
    )
    return model, found


def measure(args, name: str, device: torch.device) -> dict:
    model, found = tasks(args, name, device)
    rates: dict[str, list[float]] = {task: [] for task in found}
    for repeat in range(-args.warmup_rounds, args.repeats):
        # Warm-up rounds (negative) pay for first calls: oneDNN kernel selection, allocator growth.
        round_rates = {task: fn() for task, fn in found.items()}
        if repeat >= 0:
            for task, rate in round_rates.items():
                rates[task].append(rate)
        print(
            f"{name} {'warm-up' if repeat < 0 else f'repeat {repeat + 1}/{args.repeats}'}: "
            + ", ".join(f"{t} {r:,.0f}" for t, r in round_rates.items()),
            file=sys.stderr,
        )
    median = {task: statistics.median(r) for task, r in rates.items()}
    out = {
        "parameters": count_parameters(model),
        "tokens": model.num_tokens,
        "images_per_s_median": median,
        "images_per_s_runs": rates,
        "ratio_to_train": {task: median[task] / median["train"] for task in median if task != "train"},
    }
    if args.profile:
        out["profile"] = profile(args, name, device)
    return out


def top_ops(fn: Callable[[], None], count: int, calls: int) -> list[dict]:
    """Operators by self CPU time over `calls` calls of fn (after one untimed call), largest first."""
    fn()
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
        for _ in range(calls):
            fn()
    events = [e for e in prof.key_averages() if e.self_cpu_time_total > 0]
    total = sum(e.self_cpu_time_total for e in events)
    events.sort(key=lambda e: e.self_cpu_time_total, reverse=True)
    ops = [
        {
            "op": e.key,
            "share": e.self_cpu_time_total / total,
            "ms": e.self_cpu_time_total / 1000,
            "calls": e.count,
        }
        for e in events[:count]
    ]
    return ops + [{"op": "total", "share": 1.0, "ms": total / 1000, "calls": None}]


def profile(args, name: str, device: torch.device) -> dict[str, list[dict]]:
    """Where the time goes in one training step, one evaluation batch and one extraction batch."""
    spec, info, stats, lr = MODELS[name]
    torch.manual_seed(0)
    model = build_module(spec, info).to(device)
    preprocess = Preprocessing(stats.mean, stats.std).on(device)
    optimizer = make_optimizer(model, TrainConfig(lr=lr))
    split = random_split(info, max(args.batch_size, args.forward_batch, args.attention_batch), 4)
    x_train, y_train = next(iter(Batches(split, args.batch_size, device, preprocess)))
    x_eval, _ = next(iter(Batches(split, args.forward_batch, device, preprocess)))
    x_attention = x_eval[: args.attention_batch]

    def train_step():
        model.train()
        loss = F.cross_entropy(model(x_train), y_train)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    def eval_batch():
        model.eval()
        with torch.inference_mode():
            model(x_eval)

    n, calls = args.profile_ops, args.profile_calls
    return {
        f"train step b{args.batch_size}": top_ops(train_step, n, calls),
        f"eval forward b{args.forward_batch}": top_ops(eval_batch, n, calls),
        f"extract b{args.attention_batch}": top_ops(lambda: extract(model, x_attention), n, calls),
    }


def print_tables(results: dict, args, device: torch.device) -> None:
    shown = console()
    for name, r in results.items():
        table = Table(
            title=f"{name} ViT ({r['parameters']:,} parameters, {r['tokens']} tokens), {device}, "
            f"{torch.get_num_threads()} threads, median of {args.repeats}"
        )
        for column in ("task", "images/s", "/ train"):
            table.add_column(column, justify="right")
        for task, rate in r["images_per_s_median"].items():
            ratio = r["ratio_to_train"].get(task)
            table.add_row(task, f"{rate:,.0f}", "" if ratio is None else f"{ratio:.2f}x")
        shown.print(table)
        for what, ops in r.get("profile", {}).items():
            table = Table(title=f"{name}: {what}, self CPU time by operator")
            for column in ("operator", "share", "ms", "calls"):
                table.add_column(column, justify="right")
            for op in ops:
                table.add_row(
                    op["op"], f"{100 * op['share']:.1f}%", f"{op['ms']:.2f}", str(op["calls"] or "")
                )
            shown.print(table)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argument_parser(__doc__)
    parser.add_argument("--models", default="classic", help="comma-separated: classic, cifar")
    parser.add_argument("--batch-size", type=int, default=128, help="training batch")
    parser.add_argument("--train-steps", type=int, default=100)
    parser.add_argument("--eval-images", type=int, default=10_000)
    parser.add_argument("--eval-batch-sizes", default="1024", help="comma-separated evaluate() batch sizes")
    parser.add_argument("--forward-batch", type=int, default=1024)
    parser.add_argument("--attention-images", type=int, default=2048)
    parser.add_argument("--attention-batch", type=int, default=256, help="explain()'s default batch")
    parser.add_argument("--augment", action="store_true", help="augment the training batches")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--warmup-rounds", type=int, default=1, help="untimed rounds of every task first")
    parser.add_argument("--profile", action="store_true", help="also profile one step of each kind")
    parser.add_argument("--profile-ops", type=int, default=8, help="operators listed per profile")
    parser.add_argument("--profile-calls", type=int, default=5, help="calls profiled per kind")
    parser.add_argument("--device", default="cpu", help="auto | cpu | cuda")
    args = parser.parse_args(argv)
    args.models = args.models.split(",")
    args.eval_batch_sizes = [int(b) for b in args.eval_batch_sizes.split(",")]
    unknown = set(args.models) - set(MODELS)
    if unknown:
        parser.error(f"unknown model {sorted(unknown)[0]}; choose from {', '.join(MODELS)}")
    return args


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    device = resolve_device(args.device)
    machine = Machine(device)
    results = {name: measure(args, name, device) for name in args.models}
    result = {
        "benchmark": "eval_speed",
        "config": {k: v for k, v in vars(args).items() if k != "json"},
        "machine": machine.describe(),
        "models": results,
    }
    print_tables(results, args, device)
    return emit(result, args.json)


if __name__ == "__main__":
    main()
