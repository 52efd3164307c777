"""How long the CLI takes before it does anything: `vitcli --version`, `vitcli --help`, `vitcli train
--help` and one Tab press of shell completion (`vitcli train --emb<TAB>`), each a fresh process.

Every command runs --repeats times (the commands in turn, so that a noisy machine affects all alike); the
table shows the median and the slowest wall time, and the median CPU time (user + system) of the child.
The target is a median of at most 0.3 s wall on a quiet 2-core machine. For scale, the same run times
Typer alone: a one-command Typer app with one option, `--help` of the app and of its command (what
Typer's rich help costs before any vitcli code). `--src DIR` measures another checkout's code (its
`src/`, put first on PYTHONPATH) with the same interpreter, for a before/after pair.

    python benchmarks/startup.py
    python benchmarks/startup.py --src /tmp/before/src --json before.json
"""

from __future__ import annotations

import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

from common import argument_parser, console, emit  # benchmarks/common.py
from rich.table import Table

TARGET_SECONDS = 0.3
ENTRY = "from vitcli.cli import main; import sys; sys.argv[0] = 'vitcli'; main()"
# Typer alone, for scale: the least any Typer app with rich help takes for the same requests.
BARE_TYPER = """
import typer
app = typer.Typer(rich_markup_mode="rich")
@app.callback()
def root() -> None:
    "An app."
@app.command()
def one(size: int = typer.Option(1, help="A number.")) -> None:
    "One command."
app()
"""
REFERENCE = {"Typer alone: --help": ["--help"], "Typer alone: one --help": ["one", "--help"]}
COMMANDS = {
    "vitcli --version": (["--version"], {}),
    "vitcli --help": (["--help"], {}),
    "vitcli train --help": (["train", "--help"], {}),
    # What bash's completion script sends on Tab: the words so far and the index of the one being typed.
    "completion (train --emb)": (
        [],
        {"_VITCLI_COMPLETE": "complete_bash", "COMP_WORDS": "vitcli train --emb", "COMP_CWORD": "2"},
    ),
}


def run_once(
    args: list[str], env: dict[str, str], src: str | None, entry: str = ENTRY
) -> tuple[float, float, str]:
    """Wall and CPU seconds of one fresh process, and its stdout."""
    full_env = {**os.environ, **env, "COLUMNS": "80"}
    if src:
        full_env["PYTHONPATH"] = src + os.pathsep + full_env.get("PYTHONPATH", "")
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-c", entry, *args], env=full_env, capture_output=True, text=True, check=False
    )
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    if done.returncode != 0:
        raise SystemExit(f"{args or env} failed ({done.returncode}): {done.stderr.strip()[-500:]}")
    return wall, cpu, done.stdout


def main(argv: list[str] | None = None) -> dict:
    parser = argument_parser(__doc__)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--src", help="a checkout's src/ folder to measure instead of the installed vitcli")
    args = parser.parse_args(argv)
    times: dict[str, list[tuple[float, float]]] = {name: [] for name in [*COMMANDS, *REFERENCE]}
    outputs: dict[str, str] = {}
    for _ in range(args.repeats):
        for name, (words, env) in COMMANDS.items():
            wall, cpu, out = run_once(words, env, args.src)
            times[name].append((wall, cpu))
            outputs[name] = out
        for name, words in REFERENCE.items():
            times[name].append(run_once(words, {}, None, BARE_TYPER)[:2])
    if "--embed-dim" not in outputs["completion (train --emb)"]:
        raise SystemExit("the completion request did not offer --embed-dim: it measured nothing")
    rows = {
        name: {
            "wall_median_s": statistics.median(w for w, _ in runs),
            "wall_max_s": max(w for w, _ in runs),
            "cpu_median_s": statistics.median(c for _, c in runs),
            "runs": len(runs),
        }
        for name, runs in times.items()
    }
    table = Table(
        title=f"CLI start-up, {args.repeats} fresh processes each (target: median <= {TARGET_SECONDS} s)"
    )
    for column in ("command", "wall median", "wall max", "CPU median", "target"):
        table.add_column(column, justify="left" if column == "command" else "right")
    for name, row in rows.items():
        ok = "met" if row["wall_median_s"] <= TARGET_SECONDS else "MISSED"
        ok = "(reference)" if name in REFERENCE else ok
        table.add_row(
            name,
            f"{row['wall_median_s']:.3f} s",
            f"{row['wall_max_s']:.3f} s",
            f"{row['cpu_median_s']:.3f} s",
            ok,
        )
    console().print(table)
    result = {
        "benchmark": "startup",
        "src": args.src or str(Path(__import__("vitcli").__file__).parent.parent),
        "python": sys.version.split()[0],
        "cpus": os.cpu_count(),
        "load_average_1min": os.getloadavg()[0],
        "target_s": TARGET_SECONDS,
        "commands": rows,
        "all_met": all(r["wall_median_s"] <= TARGET_SECONDS for n, r in rows.items() if n not in REFERENCE),
    }
    return emit(result, args.json)


if __name__ == "__main__":
    main()
