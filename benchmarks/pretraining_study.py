"""What pretraining closes of the ViT/CNN gap on small sets, next to what locality closes
(docs/small-data.md, "Pretraining").

Three models (the plain ViT, the ViT with CCT's convolutional tokenizer, the baseline CNN) are pretrained
on some classes of a data set, then trained on the others with N images per class, from scratch and from
the pretrained run (`vitcli train --init`), with the same recipe, epochs and seeds:

    CIFAR-10: pretrained on its six animal classes, trained on its four vehicles
    MNIST:    pretrained on digits 0-4, trained on 5-9

Every run is one `vitcli train` command, printed before it runs; a run whose directory holds a finished
checkpoint is not run again, so the script resumes after a stop and `--seeds` can be extended later. It
prints the table (mean and standard deviation over seeds where there are two or more; one seed's value
alone otherwise) and writes it as JSON.

    python benchmarks/pretraining_study.py --data cifar10 --dataset folder:cifar10-jpg --runs study-cifar
    python benchmarks/pretraining_study.py --data mnist --data-dir DATA_DIR --runs study-mnist --seeds 0 1 2

`--jobs 2` runs two trainings at once with one thread each (on 2 cores, faster in all than one after the
other with two threads each for these small models); times are then not comparable and are not shown.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from common import argument_parser, console, emit
from rich.table import Table

STUDIES = {
    "cifar10": {
        "pretrain": "bird,cat,deer,dog,frog,horse",
        "target": "airplane,automobile,ship,truck",
        "models": {
            "vit": ["--preset", "cifar10-vit"],
            "cct": ["--preset", "cifar10-cct"],
            "cnn": ["--model", "cnn", "--lr", "1e-3"],
        },
        "pretrain_epochs": {"vit": 10, "cct": 6, "cnn": 3},
    },
    "mnist": {
        "pretrain": "0,1,2,3,4",
        "target": "5,6,7,8,9",
        "models": {
            "vit": ["--preset", "mnist-fast"],
            "cct": ["--preset", "mnist-cct"],
            "cnn": ["--model", "cnn", "--lr", "1e-3"],
        },
        "pretrain_epochs": {"vit": 3, "cct": 2, "cnn": 1},
    },
}
EPOCHS = {50: 40, 200: 20, 1000: 10}  # per size (images per class): the same for every model and start
NAMES = {"vit": "plain ViT", "cct": "conv-tokenizer ViT", "cnn": "CNN"}


@dataclass(frozen=True)
class Run:
    name: str
    args: tuple[str, ...]


def runs(
    study: dict, data: list[str], sizes: list[int], seeds: list[int], models: list[str], epochs: int | None
) -> tuple[list[Run], list[Run]]:
    """(pretraining runs, the study's runs), each a `vitcli train` command; `epochs` replaces every run's
    (a quick try)."""
    first_epochs = {model: str(epochs or n) for model, n in study["pretrain_epochs"].items()}
    chosen = {model: options for model, options in study["models"].items() if model in models}
    first = [
        Run(
            f"pretrain-{model}",
            (*data, *options, "--classes", study["pretrain"], "--epochs", first_epochs[model]),
        )
        for model, options in chosen.items()
    ]
    then = []
    for size in sizes:
        for seed in seeds:
            for model, options in chosen.items():
                for start in ("scratch", "pretrained"):
                    init = ["--init", f"RUNS/pretrain-{model}"] if start == "pretrained" else []
                    args = (*data, *options, *init, "--classes", study["target"], "--per-class", str(size))
                    args += ("--epochs", str(epochs or EPOCHS[size]), "--seed", str(seed))
                    then.append(Run(f"{model}-{start}-{size}-s{seed}", args))
    return first, then


def command(run: Run, out: Path) -> list[str]:
    args = [a.replace("RUNS", str(out)) for a in run.args]
    return ["vitcli", "train", *args, "--device", "cpu", "--out", str(out), "--name", run.name]


def finished(out: Path, run: Run) -> dict | None:
    """The finished run's metrics, from its checkpoint; None if it has not finished."""
    path = out / run.name / "model.safetensors"
    if not path.is_file():
        return None
    from safetensors import safe_open

    with safe_open(path, "pt") as f:
        return json.loads(f.metadata()["metrics"])


def train(run: Run, out: Path, threads: int) -> None:
    if finished(out, run):
        return
    argv = command(run, out)
    print(" ".join(argv), file=sys.stderr, flush=True)
    resume = (out / run.name / "state.safetensors").is_file()
    if resume:  # stopped before: go on where it was
        argv = ["vitcli", "train", "--resume", str(out / run.name)]
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    done = subprocess.run(
        [sys.executable, "-m", "vitcli", *argv[1:]], env=env, capture_output=True, text=True
    )
    if done.returncode != 0:
        print(f"{run.name} failed: {done.stdout[-500:]}{done.stderr[-500:]}", file=sys.stderr, flush=True)


def summary(values: list[float]) -> str:
    if not values:
        return "-"
    if len(values) == 1:
        return f"{100 * values[0]:.2f}%"
    return f"{100 * statistics.mean(values):.2f} ± {100 * statistics.stdev(values):.2f}%"


def table(
    out: Path, study: dict, sizes: list[int], seeds: list[int], models: list[str]
) -> tuple[list[list[str]], list[dict]]:
    rows, records = [], []
    for size in sizes:
        accuracy: dict[tuple[str, str], list[float]] = {}
        for model in models:
            for start in ("scratch", "pretrained"):
                found = [finished(out, Run(f"{model}-{start}-{size}-s{seed}", ())) for seed in seeds]
                accuracy[model, start] = [m["test_accuracy"] for m in found if m]
        for model in models:
            scratch, pretrained = accuracy[model, "scratch"], accuracy[model, "pretrained"]
            gain = (
                f"{100 * (statistics.mean(pretrained) - statistics.mean(scratch)):+.2f}"
                if scratch and pretrained
                else "-"
            )
            seeds_done = str(len(scratch))
            rows.append([f"{size}", NAMES[model], summary(scratch), summary(pretrained), gain, seeds_done])
            records.append(
                {"per_class": size, "model": model, "scratch": scratch, "pretrained": pretrained}
            )
    return rows, records


def main(argv: list[str] | None = None) -> dict:
    parser = argument_parser(__doc__)
    parser.add_argument("--data", choices=STUDIES, required=True)
    parser.add_argument("--dataset", help="vitcli's --dataset (default: --data; folder:PATH: the JPEG copy)")
    parser.add_argument("--data-dir", help="where the data set is (vitcli's --data-dir)")
    parser.add_argument("--runs", type=Path, required=True, help="the folder the runs go to")
    parser.add_argument("--sizes", type=int, nargs="+", default=list(EPOCHS), choices=list(EPOCHS))
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--models", nargs="+", default=list(NAMES), choices=list(NAMES))
    parser.add_argument("--epochs", type=int, help="every run's epochs instead of the study's (a quick try)")
    parser.add_argument("--jobs", type=int, default=1, help="trainings at once, one thread each when > 1")
    parser.add_argument("--table-only", action="store_true", help="print the table of the runs there are")
    args = parser.parse_args(argv)
    study = STUDIES[args.data]
    data = ["--dataset", args.dataset or args.data, *(["--data-dir", args.data_dir] if args.data_dir else [])]
    first, then = runs(study, data, args.sizes, args.seeds, args.models, args.epochs)
    if not args.table_only:
        threads = 1 if args.jobs > 1 else int(os.environ.get("OMP_NUM_THREADS", os.cpu_count() or 1))
        with ThreadPoolExecutor(args.jobs) as pool:
            list(pool.map(lambda r: train(r, args.runs, threads), first))
            list(pool.map(lambda r: train(r, args.runs, threads), then))
    rows, records = table(args.runs, study, args.sizes, args.seeds, args.models)
    shown = Table(title=f"{args.data}: pretrained on {study['pretrain']}, trained on {study['target']}")
    for header in ("per class", "model", "from scratch", "pretrained", "gain (points)", "seeds"):
        shown.add_column(header, justify="left" if header == "model" else "right")
    for row in rows:
        shown.add_row(*row)
    console().print(shown)
    epochs = {size: args.epochs or EPOCHS[size] for size in args.sizes}
    return emit({"data": args.data, "epochs": epochs, "rows": records}, args.json)


if __name__ == "__main__":
    main()
