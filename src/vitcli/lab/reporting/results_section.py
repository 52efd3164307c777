"""Results and curves: one table of every run, best first, against the baseline (with a table of runs
that differ only in seed), and loss and accuracy per epoch, seeds as a mean and a band."""

from __future__ import annotations

from vitcli.lab.reporting import plots, stats
from vitcli.lab.reporting.document import Figure, Note, Section, Table
from vitcli.lab.reporting.ranking import (
    by_seed,
    delta_to_baseline,
    fmt_int,
    fmt_seconds,
    interval,
    ranked,
    seed_groups,
)
from vitcli.lab.reporting.study import ReportRun, Study
from vitcli.sweeps.results import fmt_pct
from vitcli.training.confidence import SMALL_TEST

HEADER = [
    "", "run", "model", "data", "seed", "epochs", "val", "test", "test 95% interval", "test loss", "params",
    "tokens", "train s", "img/s", "Δ test",
]  # fmt: skip


def results(study: Study, baseline: ReportRun | None) -> Section:
    section = Section("Results")
    runs = ranked(study.runs)
    if not runs:
        section.blocks.append(Note("no run could be read: nothing to tabulate"))
        return section
    rows = [_row(i, run, baseline) for i, run in enumerate(runs)]
    caption = (
        "Best test accuracy first. val: validation accuracy of the kept weights. The 95% interval (Wilson) "
        f"is given for test sets under {SMALL_TEST:,} images. Δ test: percentage points against the baseline"
        + (f" ({baseline.label})" if baseline else "")
        + ", for runs on its data set. (subset): a test set cut by --subset."
    )
    marked = [i for i, run in enumerate(runs) if run is baseline]
    section.blocks.append(Table(caption, HEADER, rows, marked, numeric=list(range(4, 15))))
    datasets = sorted({r.summary.dataset for r in runs})
    if len(datasets) > 1:
        section.blocks.append(
            Note(
                f"the runs are on {len(datasets)} data sets ({', '.join(datasets)}): "
                "compare accuracies within one"
            )
        )
    section.blocks += seed_table(runs)
    return section


def _row(i: int, run: ReportRun, baseline: ReportRun | None) -> list[str]:
    s, ci, delta = run.summary, interval(run), delta_to_baseline(run, baseline)
    return [
        "baseline" if run is baseline else str(i + 1),
        s.label,
        s.model,
        s.dataset + (" (subset)" if "test" in run.capped else ""),
        str(run.seed),
        str(s.epochs),
        fmt_pct(s.best_val),
        fmt_pct(s.test_accuracy),
        f"{fmt_pct(ci[0])} - {fmt_pct(ci[1])}" if ci else "",
        "n/a" if s.test_loss is None else f"{s.test_loss:.4f}",
        fmt_int(s.parameters),
        fmt_int(s.tokens),
        fmt_seconds(s.train_seconds),
        "n/a" if s.images_per_s is None else f"{s.images_per_s:,.0f}",
        "" if delta is None else f"{100 * delta:+.2f}",
    ]


def seed_table(runs: list[ReportRun]) -> list:
    rows = []
    for group in seed_groups(runs):
        scored = [r.summary.test_accuracy for r in group if r.summary.test_accuracy is not None]
        if not scored:
            continue
        mean, std = stats.mean_std(scored)
        rows.append(
            [
                group[0].summary.model,
                group[0].summary.dataset,
                ", ".join(str(r.seed) for r in group),
                fmt_pct(mean),
                "" if std is None else f"{100 * std:.2f}",
                f"{fmt_pct(min(scored))} - {fmt_pct(max(scored))}",
            ]
        )
    if not rows:
        return []
    return [
        Table(
            "Runs that differ only in seed: mean test accuracy, its sample standard deviation (points) and "
            "range over the seeds that finished",
            ["model", "data", "seeds", "mean test", "std", "range"],
            rows,
            numeric=[3, 4],
        )
    ]


# --- curves ------------------------------------------------------------------------------------------


KEYS = ("train_loss", "val_loss", "train_accuracy", "val_accuracy")


def curves(study: Study) -> Section:
    section = Section("Curves")
    lone = [r for r in study.runs if r.sweep is None and r.summary.history]
    if lone:
        section.blocks += _curve_figure("curves", lone, "the runs")
    for sweep in study.sweeps:
        scored = ranked([r for r in sweep.runs if r.summary.history])
        if scored:
            section.blocks += _curve_figure(f"curves-{sweep.dir.name}", scored, f"sweep {sweep.dir.name}")
    return section


def _curve_figure(name: str, runs: list[ReportRun], what: str) -> list:
    series: list[plots.Curve] = []
    for group in by_seed(runs):
        if len(group) == 1:
            history = group[0].summary.history
            series.append(
                plots.Curve(
                    group[0].label,
                    [m["epoch"] for m in history],
                    {k: [m.get(k) for m in history] for k in KEYS},
                )
            )
            continue
        bands = {k: stats.seed_bands([[m.get(k) for m in r.summary.history] for r in group]) for k in KEYS}
        first = bands["val_accuracy"]
        label = f"{group[0].summary.model}, mean of {len(group)} seeds"
        series.append(
            plots.Curve(label, first.epochs, {k: b.mean for k, b in bands.items()}, bands, len(group))
        )
    shown = series[: plots.MAX_CURVES]
    blocks: list = [
        Figure(
            name,
            plots.curves_png(shown),
            f"Loss and accuracy per epoch of {what}: train dashed, validation solid. Runs that differ only "
            "in seed are drawn as their mean with the band from their lowest to their highest value.",
        )
    ]
    if len(series) > len(shown):
        blocks.append(
            Note(f"{len(series) - len(shown)} more runs of {what} are not drawn (the best {len(shown)} are)")
        )
    return blocks
