"""What checking the decoded-data cache costs against decoding the data set, in one process.

    uncached load `load_splits` with an empty cache: decoding, checking and writing the cache (a first
                  run, or one after the cache was found damaged)
    cached load   `load_splits` with the cache in place: the source fingerprint, reading the tensors and
                  checking their checksum, the validation hold-out
    fingerprint   `cache.fingerprint` of the source folder (names, sizes, times and a SHA-256 of contents)
    checksum      `cache.checksum` of the cached tensors (what every cached load recomputes)

Each figure is the best of --repeats, with the page cache warm. Prints a table and one JSON object.

    python benchmarks/cache_cost.py --data-dir ../shared/data --dataset mnist
"""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path

import torch
from common import DATA_DIR, Machine, argument_parser, console, emit  # benchmarks/common.py
from rich.table import Table
from safetensors.torch import safe_open


def best(repeats: int, work) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        work()
        times.append(time.perf_counter() - start)
    return min(times)


def measure(args) -> dict:
    from vitcli.data import cache, load_splits
    from vitcli.data.datasets import TORCHVISION_SOURCES
    from vitcli.settings.config import DataConfig

    cfg = DataConfig(dataset=args.dataset, data_dir=args.data_dir)
    source = Path(args.data_dir) / TORCHVISION_SOURCES[args.dataset].folder
    load_splits(cfg)  # fills the cache
    [path] = (cache.cache_root() / "tensors").glob(f"{args.dataset}-*.safetensors")
    with safe_open(str(path), "pt") as f:
        classes = f.metadata()["classes"]
        tensors = {name: f.get_tensor(name) for name in f.keys()}  # noqa: SIM118 - safe_open has no iter

    def uncached() -> None:
        for old in (cache.cache_root() / "tensors").glob("*.safetensors"):
            old.unlink()
        load_splits(cfg)

    return {
        "uncached_load_s": best(args.repeats, uncached),
        "cached_load_s": best(args.repeats, lambda: load_splits(cfg)),
        "fingerprint_s": best(args.repeats, lambda: cache.fingerprint(source)),
        "checksum_s": best(args.repeats, lambda: cache.checksum(tensors, classes)),
        "tensor_bytes": sum(t.numel() * t.element_size() for t in tensors.values()),
    }


def main(argv: list[str] | None = None) -> dict:
    parser = argument_parser(__doc__)
    parser.add_argument("--data-dir", default=DATA_DIR)
    parser.add_argument(
        "--dataset", default="mnist", choices=["mnist", "fashion-mnist", "cifar10", "cifar100"]
    )
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args(argv)
    machine = Machine(torch.device("cpu"))
    with tempfile.TemporaryDirectory() as home:
        os.environ["VITCLI_CACHE_DIR"] = home  # a cache of its own, filled here
        figures = measure(args)
    table = Table(
        title=f"{args.dataset}: the data cache's checks, best of {args.repeats}", title_justify="left"
    )
    table.add_column("step")
    table.add_column("seconds", justify="right")
    for name in ("uncached_load", "cached_load", "fingerprint", "checksum"):
        table.add_row(name.replace("_", " "), f"{figures[f'{name}_s']:.3f}")
    console().print(table)
    result = {"benchmark": "cache_cost", "dataset": args.dataset, **figures, "machine": machine.describe()}
    return emit(result, args.json)


if __name__ == "__main__":
    main()
