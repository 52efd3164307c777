"""vitcli's CPU training speed on a busy machine: each model alone, beside a one-thread busy loop, and
beside a second vitcli training, with today's thread choice (`new`: one thread per core the load leaves
free, followed as it changes) and the behaviour before it (`old`: `--threads 0`, PyTorch's thread per
core whatever the load).

Models (their presets; mnist-fast on 25,600 training images, the CIFAR-10 ones on 6,400):
  classic ViT   --preset mnist-classic (dim 32, patch 7, 2 blocks, 2 heads) on MNIST
  mnist-fast    --preset mnist-fast on MNIST
  cifar10-cct   --preset cifar10-cct on CIFAR-10
  CNN           --preset cifar10-cnn (the baseline CNN) on CIFAR-10

Each trial trains in its own process (`train_run`, as `vitcli train` does) for --seconds of training, or
its first epoch if that is shorter, and is then stopped; its speed is the images it trained between 2 s
after its first step and its last progress event (every ~2% of an epoch) in that epoch, over that time.
Beside a second training, the second one (the same model and behaviour) starts first and the measured
one starts once the second has trained for 3 s; both are measured over the time they overlap, and the
slower of the two is the row's figure. The busy loop (`python -c "while True: pass"`) starts before the
measured process.

The `alone` rows run old and new in turn, --repeats times, so that a noisy machine affects both alike;
`of alone` is the median over the median of the same behaviour alone.

Prints a rich table and one JSON object (also written to --json).

    python benchmarks/cpu_load.py --data-dir ../shared/data --cifar cifar10-jpg --seconds 12
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import DATA_DIR, argument_parser, console, emit  # benchmarks/common.py
from rich.table import Table

from vitcli.runtime.threads import cores

# model: (preset, data set, training images). The slower models train on fewer images, so that a
# progress event (every ~2% of an epoch) comes often enough to measure at their slowest; above 5,120
# images the batch stays 128.
MODELS = {
    "classic ViT": ("mnist-classic", "mnist", None),
    "mnist-fast": ("mnist-fast", "mnist", 25600),
    "cifar10-cct": ("cifar10-cct", "cifar10", 6400),
    "CNN": ("cifar10-cnn", "cifar10", 6400),
}
BEHAVIOURS = {"old": 0, "new": None}  # --threads: 0 is PyTorch's default; None chooses and follows
CONDITIONS = ("alone", "busy loop", "second training")
SETTLE_S = 2.0  # left out at the start of a trial's training (first steps, the choice settling)
HEAD_START_S = 3.0  # the second training trains this long before the measured one starts


def main(argv: list[str] | None = None) -> dict:
    parser = argument_parser(__doc__)
    parser.add_argument("--data-dir", default=DATA_DIR, help="where MNIST is (torchvision's layout)")
    parser.add_argument(
        "--cifar", help="CIFAR-10: an image folder (train/, test/) or a --data-dir for cifar10"
    )
    parser.add_argument("--seconds", type=float, default=12.0, help="training time per trial")
    parser.add_argument("--repeats", type=int, default=2, help="old/new pairs alone")
    parser.add_argument("--settle", type=float, default=SETTLE_S, help="seconds left out at a trial's start")
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=list(MODELS))
    parser.add_argument("--conditions", nargs="+", default=list(CONDITIONS), choices=CONDITIONS)
    parser.add_argument("--worker", nargs=2, metavar=("SETTINGS", "EVENTS"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        return worker(Path(args.worker[0]), Path(args.worker[1]))
    started = time.strftime("%Y-%m-%d %H:%M %Z")
    rows, work = [], Path(tempfile.mkdtemp(prefix="vitcli-cpu-load-"))
    new_vs_old = {}  # a model's speed alone, new over old
    for model in args.models:
        alone = {name: [] for name in BEHAVIOURS}
        for _ in range(args.repeats):  # old, new, old, new: a noisy machine affects both alike
            for name in BEHAVIOURS:
                alone[name].append(trial(args, model, name, "alone", work))
        base = {name: statistics.median(r["images_per_s"] for r in alone[name]) for name in BEHAVIOURS}
        new_vs_old[model] = base["new"] / base["old"]
        for name in BEHAVIOURS:
            rows.append(row(model, name, "alone", alone[name], base[name]))
            for condition in args.conditions:
                if condition != "alone":
                    trials = [trial(args, model, name, condition, work)]
                    rows.append(row(model, name, condition, trials, base[name]))
    result = {
        "benchmark": "cpu_load",
        "seconds": args.seconds,
        "repeats": args.repeats,
        "cores": cores(),
        "started": started,
        "rows": rows,
        "old_vs_new_alone": new_vs_old,
    }
    show(result)
    return emit(result, args.json)


def row(model: str, behaviour: str, condition: str, trials: list[dict], alone: float) -> dict:
    speed = statistics.median(t["images_per_s"] for t in trials)
    return {
        "model": model,
        "behaviour": behaviour,
        "condition": condition,
        "images_per_s": speed,
        "of_alone": speed / alone,
        "threads": [t["threads"] for t in trials],
        "trials": trials,
    }


# --- one trial ---------------------------------------------------------------------------------------


def settings(args, model: str, behaviour: str, out: Path, name: str) -> dict:
    preset, dataset, subset = MODELS[model]
    if dataset == "cifar10":
        if not args.cifar:
            raise SystemExit(f"{model} needs CIFAR-10: pass --cifar (an image folder or a data dir)")
        cifar = Path(args.cifar)
        data = (
            {"dataset": f"folder:{cifar}"}
            if (cifar / "train").is_dir()
            else {"dataset": "cifar10", "data_dir": str(cifar)}
        )
    else:
        data = {"dataset": "mnist", "data_dir": args.data_dir}
    data["subset"] = subset
    return {
        "preset": preset,
        "values": {
            "data": data,
            "train": {"device": "cpu", "threads": BEHAVIOURS[behaviour], "epochs": 2},
            "run": {"out": str(out), "name": name},
        },
    }


def start(args, model: str, behaviour: str, work: Path, name: str) -> tuple[subprocess.Popen, Path]:
    folder = work / name
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "settings.json").write_text(json.dumps(settings(args, model, behaviour, folder / "runs", name)))
    events = folder / "events.jsonl"
    env = {k: v for k, v in os.environ.items() if k != "OMP_NUM_THREADS"}  # vitcli's own choice, or --threads
    command = [sys.executable, __file__, "--worker", str(folder / "settings.json"), str(events)]
    return subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL), events


def read_events(path: Path) -> list[dict]:
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.endswith("}")]


def wait_training(path: Path, seconds: float, process: subprocess.Popen) -> None:
    """Until the process has trained for `seconds` (from its first progress event), ended its first epoch
    or ended."""
    while process.poll() is None:
        events = read_events(path)
        if events and (events[-1]["t"] - events[0]["t"] >= seconds or events[-1]["last"]):
            return
        time.sleep(0.2)


def speed(events: list[dict], begin: float, end: float) -> float:
    """Images per second between the first event at or after `begin` and the last at or before `end`."""
    inside = [e for e in events if begin <= e["t"] <= end]
    if len(inside) < 2:
        raise SystemExit("a trial made too few progress events to measure: raise --seconds")
    return (inside[-1]["images"] - inside[0]["images"]) / (inside[-1]["t"] - inside[0]["t"])


def stop(process: subprocess.Popen) -> None:
    process.kill()
    process.wait()


def trial(args, model: str, behaviour: str, condition: str, work: Path) -> dict:
    label = f"{model}/{behaviour}/{condition}".replace(" ", "-")
    name = f"{label.replace('/', '-')}-{time.monotonic_ns()}"
    helpers: list[subprocess.Popen] = []
    other = None
    try:
        if condition == "busy loop":
            helpers.append(subprocess.Popen([sys.executable, "-c", "while True: pass"]))
            time.sleep(1.0)
        elif condition == "second training":
            process, other = start(args, model, behaviour, work, name + "-second")
            helpers.append(process)
            wait_training(other, HEAD_START_S, process)
        measured, events_path = start(args, model, behaviour, work, name)
        wait_training(events_path, args.seconds + args.settle, measured)
        stop(measured)
    finally:
        for process in helpers:
            stop(process)
    events = read_events(events_path)
    if not events:
        raise SystemExit(f"{label} did not train; its settings are in {work / name}")
    begin = events[0]["t"] + args.settle
    result = {"images_per_s": speed(events, begin, events[-1]["t"]), "threads": events[-1]["threads"]}
    if other is not None:  # the second training, over the time the two overlapped
        second = read_events(other)
        second_speed = speed(second, begin, events[-1]["t"])
        result |= {"measured_images_per_s": result["images_per_s"], "second_images_per_s": second_speed}
        result["images_per_s"] = min(result["images_per_s"], second_speed)
        result["threads"] = [events[-1]["threads"], second[-1]["threads"]]
    print(f"{label}: {result['images_per_s']:,.0f} images/s, threads {result['threads']}", file=sys.stderr)
    return result


# --- in the trial's process --------------------------------------------------------------------------


def worker(settings_path: Path, events_path: Path) -> dict:
    """Train as `vitcli train --preset P ...` does, writing (time, images trained, threads) at every
    progress event."""
    import torch

    from vitcli.events import StepDone
    from vitcli.settings.config import Config
    from vitcli.settings.presets import load_preset
    from vitcli.training.run import train_run

    given = json.loads(settings_path.read_text())
    config = Config().merged(load_preset(given["preset"]).settings, "preset").merged(given["values"])
    log = events_path.open("a", buffering=1)
    batch = config.train.batch_size or 128  # the presets' sets are large: an unset batch is 128

    def on_event(event) -> None:
        if isinstance(event, StepDone) and event.epoch == 1:  # no validation pause inside the window
            images = event.step * batch
            last = event.step == event.steps
            at = {"t": time.monotonic(), "images": images, "threads": torch.get_num_threads(), "last": last}
            log.write(json.dumps(at) + "\n")

    train_run(config, on_event=on_event)
    return {}


def show(result: dict) -> None:
    table = Table(title=f"CPU training under load ({result['cores']} cores, {result['seconds']:g} s a trial)")
    for column in ("model", "condition", "behaviour", "images/s", "of alone", "threads"):
        table.add_column(column, justify="right" if column in ("images/s", "of alone") else "left")
    for r in result["rows"]:
        table.add_row(
            r["model"],
            r["condition"],
            r["behaviour"],
            f"{r['images_per_s']:,.0f}",
            f"{r['of_alone']:.2f}x",
            str(r["threads"]),
        )
    out = console()
    out.print(table)
    for model, value in result["old_vs_new_alone"].items():
        out.print(f"{model}: new/old alone {value:.2f}x")


if __name__ == "__main__":
    main()
