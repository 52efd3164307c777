"""A sweep's results: the rows of results.jsonl and results.csv, and their summary over seeds.

Each row is one run: its key and run directory, status (finished or failed), the swept values, the
full config, and either the metrics or the failure kind and its one-line reason. The files have one
writer, the sweep's process (`Recorder`), which rewrites them whole, atomically, after every run, so
neither is ever half-written. A Slurm job also leaves its run's row in its run directory (RUN/row.json):
`recorded_rows` adds those that results.jsonl lacks, so a sweep whose process was stopped still reports
what its jobs finished.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import statistics
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vitcli.errors import OutputError
from vitcli.runtime.files import atomic_write_text, writing

FINISHED, FAILED = "finished", "failed"


RESULTS_JSONL, RESULTS_CSV = "results.jsonl", "results.csv"
ROW_FILE = "row.json"  # a job's row, in its run directory (`sweep_slurm`)
CSV_METRICS = [
    "parameters",
    "tokens",
    "best_epoch",
    "val_accuracy",
    "test_accuracy",
    "test_loss",
    "train_seconds",
    "images_per_s",
    "peak_memory",
    "device",
    "failure",
    "error",
]


def load_results(sweep_dir: str | Path) -> list[dict[str, Any]]:
    path = Path(sweep_dir) / RESULTS_JSONL
    if not path.exists():
        return []
    try:
        return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise OutputError(f"{path} cannot be read ({e}); move it away to start the sweep afresh") from None


def job_rows(sweep_dir: str | Path, recorded: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The rows jobs left in the run directories (RUN/row.json) that `recorded` lacks: the row of a run it
    does not hold, or holds as failed where the job has since finished it."""
    held = {row["key"]: row["status"] for row in recorded}
    rows = []
    for path in sorted(p for p in Path(sweep_dir).glob(f"*/{ROW_FILE}") if p.is_file()):
        try:
            row = json.loads(path.read_text(encoding="utf-8"))
            key, status = row["key"], row["status"]
        except (OSError, UnicodeDecodeError, json.JSONDecodeError, TypeError, KeyError) as e:
            raise OutputError(
                f"{path} is not a sweep row ({e}); move it away and run the command again"
            ) from None
        if key not in held or (held[key] == FAILED and status == FINISHED):
            rows.append(row)
    return rows


def recorded_rows(sweep_dir: str | Path) -> list[dict[str, Any]]:
    """results.jsonl's rows, with the rows of jobs it does not hold yet (`job_rows`) in their place."""
    recorded = load_results(sweep_dir)
    return merge_rows(recorded, job_rows(sweep_dir, recorded))


def merge_rows(rows: list[dict[str, Any]], newer: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """`rows` with each of `newer` in place of the row with its key, or after them."""
    merged = {row["key"]: row for row in rows}
    merged.update({row["key"]: row for row in newer})
    return list(merged.values())


class Recorder:
    """The one writer of a sweep's results files. It holds the rows by run key and rewrites both files after
    each new row: the planned runs in plan order, whatever order they finished in, then the rows of runs
    that are no longer planned (an earlier grid under the same --name)."""

    def __init__(self, sweep_dir: str | Path, planned: list[str], rows: list[dict[str, Any]]):
        self.dir, self.keys = Path(sweep_dir), planned
        self.rows = {row["key"]: row for row in rows}

    def record(self, row: dict[str, Any]) -> None:
        """Add a run's row, or replace the row of an earlier attempt, and write the files."""
        self.rows[row["key"]] = row
        self.write()

    def write(self) -> None:
        planned = set(self.keys)
        write_results(self.dir, self.planned() + [r for k, r in self.rows.items() if k not in planned])

    def planned(self) -> list[dict[str, Any]]:
        """The rows of the planned runs, in plan order."""
        return [self.rows[key] for key in self.keys if key in self.rows]


def write_results(sweep_dir: str | Path, rows: list[dict[str, Any]]) -> None:
    sweep_dir = Path(sweep_dir)
    with writing(sweep_dir / RESULTS_JSONL) as path:
        atomic_write_text(path, "".join(json.dumps(row) + "\n" for row in rows))
    with writing(sweep_dir / RESULTS_CSV) as path:
        atomic_write_text(path, results_csv(rows))


def results_csv(rows: list[dict[str, Any]]) -> str:
    """One line per run: key, run directory, status, the swept values (a column per option), metrics."""
    axes = list(dict.fromkeys(k for row in rows for k in row["values"]))
    out = io.StringIO()
    writer = csv.DictWriter(
        out, ["key", "run", "status", *axes, *CSV_METRICS], extrasaction="ignore", lineterminator="\n"
    )
    writer.writeheader()
    for row in rows:
        writer.writerow({**row, **row["values"]})
    return out.getvalue()


# --- aggregation -------------------------------------------------------------------------------------


@dataclass
class Group:
    """The runs that differ only in their seed, summarised."""

    values: dict[str, Any]  # swept values other than the seed
    runs: int
    finished: int
    seeds: list[int]
    parameters: int | None = None
    tokens: int | None = None
    val_accuracy: float | None = None  # means over the finished runs
    val_std: float | None = None  # sample standard deviation; None for a single run
    test_accuracy: float | None = None
    test_std: float | None = None
    train_seconds: float | None = None
    images_per_s: float | None = None
    peak_memory: int | None = None  # the largest
    device: str | None = None
    errors: list[str] = field(default_factory=list)

    @property
    def status(self) -> str:
        if self.finished == self.runs:
            return FINISHED
        return FAILED if self.finished == 0 else f"{self.finished}/{self.runs} {FINISHED}"

    def to_dict(self) -> dict[str, Any]:
        return {**dataclasses.asdict(self), "status": self.status}


def aggregate(rows: list[dict[str, Any]], axes: list[str] | None = None) -> list[Group]:
    """Rows grouped by their swept values other than the seed, best mean test accuracy first, groups
    with no finished run last. `axes` defaults to the swept options recorded in the rows."""
    if axes is None:
        axes = list(dict.fromkeys(k for row in rows for k in row.get("axes", row["values"])))
    by_values: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        values = {k: row["values"][k] for k in axes if k != "seed" and k in row["values"]}
        by_values.setdefault(json.dumps(values, sort_keys=True), []).append(row)
    groups = [_summarise(json.loads(k), members) for k, members in by_values.items()]
    return sorted(groups, key=lambda g: (g.test_accuracy is None, -(g.test_accuracy or 0.0)))


def _summarise(values: dict[str, Any], rows: list[dict[str, Any]]) -> Group:
    done = [r for r in rows if r["status"] == FINISHED]
    group = Group(
        values,
        len(rows),
        len(done),
        sorted(r["config"]["train"]["seed"] for r in rows),
        errors=[r["error"] for r in rows if r["status"] == FAILED],
    )
    if not done:
        return group
    group.parameters, group.tokens, group.device = done[0]["parameters"], done[0]["tokens"], done[0]["device"]
    group.val_accuracy, group.val_std = _mean_std([r["val_accuracy"] for r in done])
    group.test_accuracy, group.test_std = _mean_std([r["test_accuracy"] for r in done])
    group.train_seconds = statistics.fmean(r["train_seconds"] for r in done)
    group.images_per_s = statistics.fmean(r["images_per_s"] for r in done)
    memory = [r["peak_memory"] for r in done if r["peak_memory"] is not None]
    group.peak_memory = max(memory) if memory else None
    return group


def _mean_std(xs: list[float | None]) -> tuple[float | None, float | None]:
    known = [x for x in xs if x is not None]
    if not known:
        return None, None
    return statistics.fmean(known), statistics.stdev(known) if len(known) > 1 else None


# --- how swept values read (tables, run names, messages) -----------------------------------------------


def fmt_pct(x: float | None) -> str:
    """An accuracy as every table and page shows it: 0.98765 -> "98.77%"."""
    return "n/a" if x is None else f"{100 * x:.2f}%"


def fmt_value(value: Any) -> str:
    """A swept value in a table or a name; "-" for an option that is no setting of the run's model."""
    if value is None:
        return "-"
    return f"{value:g}" if isinstance(value, float) else str(value)


def describe(values: dict[str, Any]) -> str:
    """`embed_dim=32 lr=0.001`: swept values as the run lines and messages show them."""
    return " ".join(f"{k}={fmt_value(v)}" for k, v in values.items() if v is not None) or "no swept values"
