"""A sweep's section: test accuracy against each swept option, against train time and parameters with
the cost front marked, and the share of the accuracy's variance each option explains."""

from __future__ import annotations

import json
import math

from vitcli.lab.reporting import plots, stats
from vitcli.lab.reporting.document import Figure, Heading, Note, Section, Table, Text
from vitcli.lab.reporting.ranking import fmt_int, fmt_seconds, interval
from vitcli.lab.reporting.study import ReportRun, ReportSweep, Study
from vitcli.sweeps.results import describe, fmt_pct, fmt_value


def sweeps(study: Study) -> Section:
    section = Section("Sweeps")
    for sweep in study.sweeps:
        section.blocks.append(Heading(f"sweep {sweep.dir.name}"))
        scored = [r for r in sweep.runs if r.summary.test_accuracy is not None]
        if not scored:
            section.blocks.append(Note(f"{sweep.dir} has no finished run to chart yet"))
            continue
        options = [a for a in sweep.axes if a != "seed"]
        panels = []
        for option in options:
            points = [_point(r, fmt_value(r.values.get(option))) for r in scored]
            means = []
            for value in _in_order([r.values.get(option) for r in scored]):
                mine = [p.accuracy for p in points if p.label == fmt_value(value)]
                means.append(plots.Point(fmt_value(value), sum(mine) / len(mine)))
            panels.append((option, points, means))
        if panels:
            section.blocks.append(
                Figure(
                    f"options-{sweep.dir.name}",
                    plots.options_png(panels),
                    "Test accuracy against each swept option: a dot per run with its test set's 95% interval "
                    "where that set is small, the bar the mean at each value. The axis spans at least "
                    f"{100 * plots.MIN_SPAN:.0f} points, so that noise does not look like a trend.",
                )
            )
        section.blocks += _cost(sweep, scored)
        section.blocks += _importance(sweep, scored, options)
    return section


def _in_order(values: list) -> list:
    """An option's values once each: numbers from low to high, anything else (a model's name) as swept."""
    unique = list({json.dumps(v, sort_keys=True): v for v in values}.values())
    numbers = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in unique)
    return sorted(unique) if numbers else unique


def _point(run: ReportRun, label: str) -> plots.Point:
    ci = interval(run)
    return plots.Point(label, run.summary.test_accuracy, *(ci or (None, None)))


def _cost(sweep: ReportSweep, scored: list[ReportRun]) -> list:
    points = [
        (r.label, r.summary.test_accuracy, r.summary.train_seconds, r.summary.parameters) for r in scored
    ]
    front = {}
    for key, index in (("seconds", 2), ("parameters", 3)):
        known = [i for i, p in enumerate(points) if p[index] is not None]
        chosen = stats.pareto_front([(points[i][index], points[i][1]) for i in known])
        front[key] = [known[i] for i in chosen]
    blocks: list = [
        Figure(
            f"cost-{sweep.dir.name}",
            plots.cost_png(points, front),
            "Test accuracy against train time and against parameters (log axes where they span more than "
            "tenfold). Ringed and joined: the runs "
            "on the best-accuracy-for-cost front (no other run is both cheaper and more accurate).",
        )
    ]
    rows = []
    for i in front["seconds"]:
        run = scored[i]
        rows.append(
            [
                run.label,
                describe(run.values),
                fmt_pct(run.summary.test_accuracy),
                fmt_seconds(run.summary.train_seconds),
                fmt_int(run.summary.parameters),
            ]
        )
    if rows:
        blocks.append(
            Table(
                "The runs on the accuracy-for-train-time front, cheapest first",
                ["run", "values", "test", "train s", "params"],
                rows,
                numeric=[2, 3, 4],
            )
        )
    return blocks


def _importance(sweep: ReportSweep, scored: list[ReportRun], options: list[str]) -> list:
    if not options:
        return []
    if len(scored) < 3:
        return [Note("which options mattered needs 3 or more finished runs")]
    axes = options + (["seed"] if "seed" in sweep.axes else [])
    shares = stats.variance_shares(
        [{a: r.values.get(a) for a in axes} for r in scored], [r.summary.test_accuracy for r in scored]
    )
    rows = [
        [option + (" (run-to-run noise)" if option == "seed" else ""), f"{100 * shares[option]:.1f}%"]
        for option in sorted(axes, key=lambda o: -shares[o])
    ]
    blocks: list = [
        Text(
            f"Which options mattered: the share of the test accuracy's variance over the {len(scored)} "
            f"finished runs that each option explains. Method: {stats.VARIANCE_METHOD}"
        ),
        Table("Variance of the test accuracy explained", ["option", "share"], rows, numeric=[1]),
    ]
    combinations = {json.dumps([r.values.get(a) for a in axes], sort_keys=True) for r in scored}
    grid = math.prod(len({json.dumps(r.values.get(a)) for r in scored}) for a in axes)
    if len(combinations) < grid:  # zip mode, or a grid with runs missing
        blocks.append(
            Note(
                f"these runs are not a full grid ({len(combinations)} of the {grid} combinations of their "
                f"values): options changed together, so their shares overlap (here they add up to "
                f"{100 * sum(shares[a] for a in axes):.0f}%) and say how far each option's values line up "
                "with the accuracy, not what each option did alone"
            )
        )
    return blocks
