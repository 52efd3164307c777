"""How long `vitcli report SWEEP --html FILE` takes for a sweep of 30 runs, and how big the page is.

A sweep of small ViTs on MNIST (3 widths x 2 depths x 5 seeds, 1 epoch on --subset images) is trained
first, unless --sweep names one; then the report is written --repeats times, each a fresh process as a
user runs it (start-up, reading the runs, the charts, the best run's attention and inspect figures). The
targets: under 10 s wall on 2 cores, under 5 MB of HTML.

    python benchmarks/report_speed.py                       # trains the sweep into a temporary folder
    python benchmarks/report_speed.py --sweep sweeps/x --json report.json
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import DATA_DIR, argument_parser, console, emit  # benchmarks/common.py
from rich.table import Table

TARGET_SECONDS, TARGET_BYTES = 10.0, 5_000_000
VITCLI = [sys.executable, "-m", "vitcli"]


def train_sweep(
    out: Path, data_dir: str, subset: int, widths: list[str], depths: list[str], seeds: int
) -> Path:
    command = [
        *VITCLI, "sweep", "--dataset", "mnist", "--data-dir", data_dir, "--subset", str(subset),
        "--val-size", str(max(subset // 5, 10)), "--epochs", "1", "--device", "cpu", "--out", str(out),
        "--name", "report-speed", "--embed-dim", *widths, "--depth", *depths,
        "--seed", *map(str, range(seeds)),
    ]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"the sweep failed ({done.returncode}): {done.stderr.strip()[-800:]}")
    return out / "report-speed"


def write_report(sweep: Path, html: Path) -> float:
    start = time.perf_counter()
    done = subprocess.run(
        [*VITCLI, "report", str(sweep), "--html", str(html), "--overwrite", "--device", "cpu"],
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "COLUMNS": "100"},
    )
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"vitcli report failed ({done.returncode}): {done.stderr.strip()[-800:]}")
    return seconds


def main(argv: list[str] | None = None) -> dict:
    parser = argument_parser(__doc__)
    parser.add_argument("--sweep", type=Path, help="an existing sweep directory to report")
    parser.add_argument("--data-dir", default=DATA_DIR)
    parser.add_argument("--subset", type=int, default=1000)
    parser.add_argument("--embed-dims", default="16,32,64")
    parser.add_argument("--depths", default="1,2")
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="report-speed-") as tmp:
        sweep = args.sweep or train_sweep(
            Path(tmp),
            args.data_dir,
            args.subset,
            args.embed_dims.split(","),
            args.depths.split(","),
            args.seeds,
        )
        runs = sum(1 for p in sweep.iterdir() if (p / "model.safetensors").is_file())
        html = Path(tmp) / "report.html"
        times = []
        for repeat in range(args.repeats):
            times.append(write_report(sweep, html))
            print(f"repeat {repeat + 1}/{args.repeats}: {times[-1]:.2f} s", file=sys.stderr)
        size = html.stat().st_size
    result = {
        "benchmark": "report_speed",
        "sweep": str(args.sweep) if args.sweep else "trained for the benchmark",
        "runs": runs,
        "cpus": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "load_average_1min": os.getloadavg()[0],
        "wall_median_s": statistics.median(times),
        "wall_max_s": max(times),
        "html_bytes": size,
        "target_s": TARGET_SECONDS,
        "target_bytes": TARGET_BYTES,
        "met": statistics.median(times) < TARGET_SECONDS and size < TARGET_BYTES,
    }
    table = Table(title=f"vitcli report --html of a {runs}-run sweep, {args.repeats} fresh processes")
    for column in ("runs", "wall median", "wall max", "HTML", "targets", ""):
        table.add_column(column, justify="right")
    table.add_row(
        str(runs),
        f"{result['wall_median_s']:.2f} s",
        f"{result['wall_max_s']:.2f} s",
        f"{size / 1e6:.2f} MB",
        f"< {TARGET_SECONDS:g} s, < {TARGET_BYTES / 1e6:g} MB",
        "met" if result["met"] else "MISSED",
    )
    console().print(table)
    return emit(result, args.json)


if __name__ == "__main__":
    main()
