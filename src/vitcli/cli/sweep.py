"""`vitcli sweep`: parse a grid of train options, run it, print the results table (`vitcli report`
prints it again).

The sweepable options are `vitcli train`'s settings (the same fields, names, help and defaults:
`cli/options.py`), each taking one or more values: `--embed-dim 8 16 32`. Click takes one value per
occurrence of an option, so `SweepCommand` (`cli.common.vitcli_command`) spreads `--flag a b c` into
`--flag a --flag b --flag c` before click parses it, and click then converts and checks every value with
the option's type.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Optional

import typer
from rich.markup import escape

from vitcli.cli.common import console, err_console, print_note, user_errors, vitcli_command
from vitcli.cli.enums import SweepExecutor, SweepMode, plain
from vitcli.cli.options import SETTINGS, command_settings
from vitcli.cli.progress import TrainProgress
from vitcli.cli.sweep_tables import planned_table, sweep_table
from vitcli.cli.tables import fmt_pct
from vitcli.events import EpochStart, Status, StepDone
from vitcli.sweeps.results import FAILED, aggregate, describe  # torch-free

if TYPE_CHECKING:  # annotations only: the core is imported when a command runs
    from vitcli.sweeps.execute import RunEnded
    from vitcli.sweeps.slurm import SlurmOptions

SWEPT = command_settings("sweep")
# train's --x/--no-x switches; here --x true false, --no-x, --x
BOOL_FLAGS = tuple(s.flag[2:] for s in SWEPT if s.value_type is bool)


def sweep(
    ctx: typer.Context,
    mode: SweepMode = typer.Option(
        "grid",
        help="grid: every combination of the swept values; zip: the value lists walked in step "
        "(same lengths), each row once per --seed.",
        rich_help_panel="Sweep",
    ),
    name: Optional[str] = typer.Option(
        None,
        help="Sweep directory name. "
        "\\[default: the swept options and a hash of the runs, so the same command resumes]",
        rich_help_panel="Sweep",
    ),
    out: Path = typer.Option(Path("sweeps"), help="Folder for sweep directories.", rich_help_panel="Sweep"),
    config: Optional[Path] = typer.Option(
        None,
        "--config",
        help="TOML file: a \\[grid] table of lists, and shared settings in \\[model], \\[data], \\[train].",
        rich_help_panel="Sweep",
    ),
    preset: Optional[str] = typer.Option(
        None,
        "--preset",
        help="A named recipe (vitcli presets) as the shared settings; --config and options override it.",
        rich_help_panel="Sweep",
    ),
    dry_run_: bool = typer.Option(
        False,
        "--dry-run",
        help="Print the planned runs, their parameters and tokens, and train nothing.",
        rich_help_panel="Sweep",
    ),
    as_json: bool = typer.Option(
        False,
        "--json",
        help="Print the results as JSON on stdout instead of the table (progress goes to stderr).",
        rich_help_panel="Sweep",
    ),
    plot: bool = typer.Option(
        False, "--plot", help="Also write PNG charts into the sweep directory.", rich_help_panel="Sweep"
    ),
    jobs: int = typer.Option(
        1,
        "--jobs",
        help="Runs trained at once on this machine: one per GPU when the runs use one, else CPU processes "
        "sharing the cores.",
        rich_help_panel="Sweep",
    ),
    executor: SweepExecutor = typer.Option(
        "local",
        help="local: this machine (--jobs); slurm: one Slurm job per run, as a submitit job array.",
        rich_help_panel="Slurm",
    ),
    partition: Optional[str] = typer.Option(
        None, help="The jobs' Slurm partition. \\[default: the cluster's]", rich_help_panel="Slurm"
    ),
    gpus_per_job: Optional[int] = typer.Option(
        None, help="GPUs each job asks for. \\[default: none]", rich_help_panel="Slurm"
    ),
    max_parallel: Optional[int] = typer.Option(
        None,
        help="Jobs running at once (the array's parallelism). \\[default: submitit's, 256]",
        rich_help_panel="Slurm",
    ),
    timeout_min: Optional[int] = typer.Option(
        None, help="Each job's time limit in minutes. \\[default: 1440, a day]", rich_help_panel="Slurm"
    ),
) -> None:
    """Train every combination of the given values and print one results table; re-running resumes.

    Every train option takes one or more values: [bold]vitcli sweep --embed-dim 8 16 32 --depth 2 4[/].

    Options with one value apply to every run. Finished runs are skipped on re-run.

    Runs that failed for a reason other than an invalid combination are retried.

    [bold]--jobs N[/] trains N runs at once; [bold]--executor slurm[/] makes each run a Slurm job.
    """
    from vitcli.sweeps.execute import make_sweep_dir, resume_state
    from vitcli.sweeps.plan import check_data, plan_sweep
    from vitcli.sweeps.slurm import SlurmOptions, check_executor

    # train's settings as options of one or more values (SweepCommand adds them: cli/options.py)
    given = {key: [plain(v) for v in values] for key, values in ctx.meta[SETTINGS].items() if values}
    slurm = SlurmOptions(partition, gpus_per_job, max_parallel, timeout_min)
    with user_errors(last=False):  # the sweep itself comes after
        plan = plan_sweep(given, config, plain(mode), name, out, preset)
        check_executor(plan, plain(executor), jobs, slurm)
        if dry_run_:
            return _print_dry_run(plan, as_json)
        check_data(plan)
        state = resume_state(plan)
        make_sweep_dir(plan)
    shown = err_console if as_json else console
    for note in plan.notes:
        print_note(note, shown)
    shown.print(_resume_line(plan, state), highlight=False)
    # Every failure of a run becomes its row; what comes out of run_sweep is Ctrl-C or a results file
    # that cannot be written.
    with user_errors(interrupted=f"finished results are kept in {plan.dir}; run the same command to resume"):
        rows = _run(plan, plain(executor), jobs, slurm, shown)
        print_results(rows, plan.axes, plan.dir, as_json, plot, new_runs=len(state.todo))


# Several values after one option; train's switches swept as `--augment true false`.
SweepCommand = vitcli_command(
    [s.flag[2:] for s in SWEPT], BOOL_FLAGS, settings="sweep", many=True, settings_last=True
)


# --- printing ----------------------------------------------------------------------------------------


def _run(plan, executor: str, jobs: int, slurm: SlurmOptions, shown) -> list[dict]:
    """The rows: from Slurm jobs or --jobs processes (a line per run as it ends), or from one run at a time
    with train's progress bar."""
    from vitcli.sweeps.execute import run_sweep
    from vitcli.sweeps.slurm import run_on_slurm

    if executor == "slurm":
        return run_on_slurm(plan, slurm, _lines(shown))
    if jobs > 1:
        return run_sweep(plan, _lines(shown), jobs=jobs)
    with TrainProgress(shown) as bar:
        return run_sweep(plan, _listener(shown, bar))


def _lines(shown):
    """One line per finished run, per batch of jobs submitted or attached to, and per note; runs elsewhere
    show no bar."""
    from vitcli.sweeps.execute import RunEnded
    from vitcli.sweeps.slurm import JobsAttached, JobsSubmitted

    def listen(event) -> None:
        if isinstance(event, RunEnded):
            shown.print(_run_line(event), highlight=False)
        elif isinstance(event, (JobsSubmitted, JobsAttached)):
            count = f"{len(event.job_ids)} job{'s' * (len(event.job_ids) != 1)}"
            ids, logs = escape(", ".join(event.job_ids)), escape(str(event.folder))
            if isinstance(event, JobsAttached):
                line = f"attached to {count} still running or queued ({ids}); logs in {logs}"
            else:
                line = f"submitted {count} ({ids}); logs in {logs}"
            shown.print(line, highlight=False)
        elif isinstance(event, Status):
            print_note(event.message, shown)

    return listen


def _listener(shown, bar: TrainProgress):
    """One line per finished run; train's progress bar (without its epoch lines) for the current run, and
    its warnings (too few tokens) before it."""
    from vitcli.sweeps.execute import RunEnded, RunStarted

    def listen(event) -> None:
        if isinstance(event, RunStarted):
            bar.new_run()
        elif isinstance(event, RunEnded):
            shown.print(_run_line(event), highlight=False)
        elif isinstance(event, (EpochStart, StepDone)) or (isinstance(event, Status) and event.warning):
            bar(event)

    return listen


def _run_line(event: RunEnded) -> str:
    row, width = event.row, len(str(event.total))
    head = f"[{event.run.index:>{width}}/{event.total}] {escape(event.run.label)}"
    if row["status"] == FAILED:
        return f"{escape(head)}  [red]failed ({row['failure']})[/]: {escape(row['error'])}"
    # The whole run's time (load, train, test); rows recorded before it was kept have the training's only.
    train = f"{row['train_seconds']:.0f} s"
    took = f"{row['total_seconds']:.0f} s (train {train})" if "total_seconds" in row else f"train {train}"
    return f"{escape(head)}  [bold]{fmt_pct(row['test_accuracy'])}[/] test, {took}"


def _resume_line(plan, state) -> str:
    line = f"sweep {plan.dir}: {len(plan.runs)} runs, {len(state.todo)} to run"
    if state.skipped:
        line += f", {state.skipped} already recorded (finished or invalid) and skipped"
    if state.retried:
        line += f", {state.retried} that failed before retried"
    if state.gathered:
        line += f", {state.gathered} row{'s' * (state.gathered != 1)} gathered from jobs' run directories"
    return line


def _print_dry_run(plan, as_json: bool) -> None:
    from vitcli.sweeps.plan import dry_run

    planned = dry_run(plan)
    if as_json:
        typer.echo(
            json.dumps({"sweep": str(plan.dir), "mode": plan.mode, "axes": plan.axes, "planned": planned})
        )
        return
    console.print(
        planned_table(planned, plan.axes, f"{len(planned)} planned runs ({plan.mode}) in {plan.dir}")
    )
    console.print("dry run: nothing was trained or written")


def print_results(rows, axes, sweep_dir, as_json: bool, plot: bool, new_runs: int | None = None) -> None:
    groups = aggregate(rows, axes)
    charts, notes = [], []
    if plot:
        from vitcli.sweeps.charts import write_charts

        charts, notes = write_charts(rows, axes, sweep_dir)
    if as_json:
        result = {
            "sweep": str(sweep_dir),
            "axes": axes,
            "runs": rows,
            "groups": [g.to_dict() for g in groups],
            "charts": [str(c) for c in charts],
        }
        if new_runs is not None:
            result["new_runs"] = new_runs
        typer.echo(json.dumps(result))
        return
    console.print(sweep_table(groups, axes, f"{len(rows)} runs in {sweep_dir}"))
    for row in rows:
        if row["status"] == FAILED:
            # The run's own values, its seed among them: its group's would not say which run failed.
            run = describe(row["values"]) if row["values"] else row["run"]
            console.print(f"[red]failed[/] {escape(run)}: {escape(row['error'])}", highlight=False)
    for kept, of in sorted({tuple(r["capped"]["test"]) for r in rows if r.get("capped", {}).get("test")}):
        notes.append(f"test accuracy on {kept:,} of the {of:,} test images (a test set cut by --subset)")
    for note in notes:
        console.print(f"[dim]{escape(note)}[/]")
    for chart in charts:
        console.print(f"wrote [bold]{chart}[/]", highlight=False)
