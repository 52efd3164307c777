"""The numbers every section shares: how a value reads, which run is the baseline, the order of the
runs, a test accuracy's interval, the runs that differ only in seed, and what `vitcli report --json`
prints."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from vitcli.errors import ConfigError
from vitcli.lab.reporting import stats
from vitcli.lab.reporting.study import ReportRun, Study
from vitcli.settings.specs import CNNSpec
from vitcli.training.confidence import shows_interval  # the run table's and eval's rule too


def fmt_int(x: int | None) -> str:
    return "n/a" if x is None else f"{x:,}"


def fmt_seconds(x: float | None) -> str:
    return "n/a" if x is None else f"{x:,.1f}"


def choose_baseline(study: Study, wanted: str | None) -> ReportRun | None:
    if wanted is not None:
        for run in study.runs:
            if (
                wanted in (run.label, str(run.summary.run_dir))
                or Path(wanted).resolve() == run.summary.run_dir.resolve()
            ):
                return run
        labels = ", ".join(r.label for r in study.runs[:8])
        raise ConfigError(f"--baseline {wanted} is none of the report's runs; pass one of: {labels}")
    # The question of most studies is how far a ViT is from the CNN: a CNN given alone, else one of a
    # sweep, else the first run given alone, else the sweep's first.
    cnns = [r for r in study.runs if isinstance(r.config.model, CNNSpec)]
    lone = [r for r in study.runs if r.sweep is None]
    return ([r for r in cnns if r.sweep is None] or cnns or lone or study.runs or [None])[0]


def ranked(runs: list[ReportRun]) -> list[ReportRun]:
    """Best test accuracy first; runs without one (stopped before their test) last, by validation."""
    return sorted(
        runs,
        key=lambda r: (
            r.summary.test_accuracy is None,
            -(r.summary.test_accuracy or 0.0),
            -(r.summary.best_val or 0.0),
        ),
    )


def interval(run: ReportRun) -> tuple[float, float] | None:
    accuracy, count = run.summary.test_accuracy, run.test_count
    if accuracy is None or not count or not shows_interval(count):
        return None
    return stats.accuracy_interval(accuracy, count)


def run_numbers(run: ReportRun, baseline: ReportRun | None) -> dict[str, Any]:
    """A run's row of the results table as JSON (`vitcli report --json`'s "runs"): compare's summary,
    its test set's size and interval, and its delta to the baseline."""
    summary = run.summary.to_dict()
    summary.pop("history")
    ci = interval(run)
    return {
        **summary,
        "seed": run.seed,
        "sweep": str(run.sweep) if run.sweep else None,
        "values": run.values,
        "test_count": run.test_count,
        "test_interval": list(ci) if ci else None,
        "subset": run.capped,
        "baseline": baseline is run,
        "delta_test": delta_to_baseline(run, baseline),
        "provenance": run.provenance,
    }


def delta_to_baseline(run: ReportRun, baseline: ReportRun | None) -> float | None:
    if baseline is None or baseline is run or run.summary.dataset != baseline.summary.dataset:
        return None
    return stats.delta(run.summary.test_accuracy, baseline.summary.test_accuracy)


def seed_groups(runs: list[ReportRun]) -> list[list[ReportRun]]:
    """Runs that differ only in seed, groups of two or more seeds, in the order of their first run."""
    return [g for g in by_seed(runs) if len({r.seed for r in g}) > 1]


def by_seed(runs: list[ReportRun]) -> list[list[ReportRun]]:
    """Runs grouped by their settings other than the seed, within the runs given alone and within each
    sweep: a lone run that repeats a sweep's run (same settings, same seed) is not a third seed."""
    groups: dict[tuple[str, str], list[ReportRun]] = {}
    for run in runs:
        groups.setdefault((str(run.sweep), run.seedless), []).append(run)
    return list(groups.values())


def numbers(study: Study, baseline: ReportRun | None) -> dict[str, Any]:
    """The page's numbers as `vitcli report --json` prints them: the results table's runs (compare's
    summary of each, its interval and delta, its provenance), each sweep's rows, the notes."""
    return {
        "runs": [run_numbers(r, baseline) for r in ranked(study.runs)],
        "sweeps": [{"sweep": str(s.dir), "axes": s.axes, "rows": s.rows} for s in study.sweeps],
        "baseline": baseline.label if baseline else None,
        "notes": study.notes,
    }
