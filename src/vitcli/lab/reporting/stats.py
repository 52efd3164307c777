"""The numbers behind a `vitcli report` page: how far an accuracy can be trusted, how much seeds spread a
curve, which runs are the best accuracy for what they cost, and which swept option mattered.

    wilson_interval, accuracy_interval   the 95% interval of a test accuracy measured on n images (the
                                         first is training/confidence.py's, which eval's tables use too)
    seed_bands                           per epoch, the mean and min-max of runs that differ only in seed
    mean_std                             a table cell's mean and, only over two or more values, its spread
    pareto_front                         the runs no other run beats on both cost and accuracy
    variance_shares, VARIANCE_METHOD     the share of a sweep's accuracy variance each option explains
    delta                                a value against the baseline's, when both exist

Pure Python (math, statistics, json): the page is written on any machine that holds the runs, with or
without numpy or torch, and every number on it can be recomputed by hand from the run files.
"""

from __future__ import annotations

import json
import math
import statistics
from dataclasses import dataclass

from vitcli.training.confidence import wilson_interval  # torch-free; the run table and eval use it too

VARIANCE_METHOD = (
    "η² of a one-way ANOVA per option: the between-value sum of squares over the total, runs grouped by "
    "that option's value alone (on a full grid the main effects' shares add up to at most 1, the rest is "
    "interactions and noise); simpler than the random forest behind W&B's parameter importance, and "
    "exactly reproducible."
)


def accuracy_interval(accuracy: float, total: int) -> tuple[float, float]:
    """`wilson_interval` from a stored accuracy (a fraction) and the number of examples it was measured on.

    Runs store the accuracy, not the count right; accuracy·total is the count up to float rounding, so it
    is rounded back to the integer it was.
    """
    if not 0.0 <= accuracy <= 1.0:
        raise ValueError(f"accuracy must be a fraction in [0, 1], got {accuracy}")
    if total < 1:
        raise ValueError(f"an interval needs at least one test example, got total={total}")
    return wilson_interval(round(accuracy * total), total)


@dataclass
class SeedBand:
    """Per epoch, runs that differ only in seed: their mean and the band from the lowest to the highest.

    The band is min-max, not mean ± std: with the 2-3 seeds a lab affords, a standard deviation is itself
    a guess, while min-max shows exactly the runs there are. `count` is how many runs have a value at
    each epoch (runs stopped early, epochs without that metric), so a band narrowing because runs ended is
    not read as seeds agreeing. An epoch no run has a value for keeps its place with None.
    """

    epochs: list[int]  # 1-based
    mean: list[float | None]
    low: list[float | None]
    high: list[float | None]
    count: list[int]


def _present(value: float | None) -> bool:
    # NaN (a diverged loss) is left out like a missing value: min/max over a NaN depend on the order of
    # the runs, and `count` shows the run is missing from that epoch.
    return value is not None and not math.isnan(value)


def seed_bands(series: list[list[float | None]]) -> SeedBand:
    """The `SeedBand` of runs given as per-epoch lists (index 0 is epoch 1); lists may differ in length."""
    length = max((len(run) for run in series), default=0)
    band = SeedBand(epochs=[], mean=[], low=[], high=[], count=[])
    for index in range(length):
        values = [run[index] for run in series if index < len(run) and _present(run[index])]
        band.epochs.append(index + 1)
        band.count.append(len(values))
        if values:
            band.mean.append(math.fsum(values) / len(values))
            band.low.append(min(values))
            band.high.append(max(values))
        else:
            band.mean.append(None)
            band.low.append(None)
            band.high.append(None)
    return band


def mean_std(values: list[float]) -> tuple[float, float | None]:
    """The mean and the sample standard deviation (n - 1); None for one value, where there is no spread to
    show: a table must never print "± 0.0" over a single seed."""
    if not values:
        raise ValueError("mean_std needs at least one value")
    mean = statistics.fmean(values)
    if len(values) == 1:
        return mean, None
    return mean, statistics.stdev(values)


def pareto_front(points: list[tuple[float, float]]) -> list[int]:
    """The indices of the (cost, accuracy) points no other point beats, sorted by cost, then index.

    A point is off the front when another costs no more and scores no less, and is strictly better on
    one of the two. Identical points do not dominate each other, so both stay on the front. A point with a
    NaN or infinite coordinate is left out: it would compare neither better nor worse than anything.
    """
    finite = [i for i, (cost, acc) in enumerate(points) if math.isfinite(cost) and math.isfinite(acc)]

    def dominated(i: int) -> bool:
        cost, acc = points[i]
        for j in finite:
            other_cost, other_acc = points[j]
            if other_cost <= cost and other_acc >= acc and (other_cost < cost or other_acc > acc):
                return True
        return False

    # Quadratic, but a study holds tens of runs, and the definition read straight off is easy to check.
    front = [i for i in finite if not dominated(i)]
    return sorted(front, key=lambda i: (points[i][0], i))


# Marks a run whose row lacks the option; cannot collide with json.dumps output, which never starts with <.
_ABSENT = "<absent>"


def _group_key(row: dict[str, object], option: str) -> str:
    # JSON, not repr or the value itself: 1 and 1.0 and True group apart as the sweep wrote them apart
    # ("1", "1.0", "true"), and lists or dicts from a config become hashable keys.
    if option not in row:
        return _ABSENT
    return json.dumps(row[option], sort_keys=True, default=str)


def variance_shares(rows: list[dict[str, object]], metric: list[float]) -> dict[str, float]:
    """For each swept option, the share of `metric`'s variance it explains alone (see VARIANCE_METHOD).

    `rows[i]` maps option names to run i's values and `metric[i]` is its accuracy. Per option, runs are
    grouped by its value and the share is η² = SS_between / SS_total, in [0, 1]. An option with a single
    value, or a metric that does not vary, explains nothing: 0.0. A run lacking an option forms its own
    group. Options are returned in the order they first appear in `rows`.
    """
    if len(rows) != len(metric):
        raise ValueError(f"{len(rows)} rows but {len(metric)} metric values")
    if any(not math.isfinite(value) for value in metric):
        # A failed run's NaN would turn every share into NaN; the caller leaves such runs out and says so.
        raise ValueError("metric values must be finite numbers; leave out runs without a result")
    options: list[str] = []
    for row in rows:
        options.extend(name for name in row if name not in options)
    if not metric or max(metric) == min(metric):
        return dict.fromkeys(options, 0.0)

    grand = math.fsum(metric) / len(metric)
    ss_total = math.fsum((value - grand) ** 2 for value in metric)
    shares: dict[str, float] = {}
    for option in options:
        groups: dict[str, list[float]] = {}
        for row, value in zip(rows, metric):
            groups.setdefault(_group_key(row, option), []).append(value)
        if len(groups) < 2:
            shares[option] = 0.0
            continue
        ss_between = math.fsum(
            len(values) * (math.fsum(values) / len(values) - grand) ** 2 for values in groups.values()
        )
        # Float sums can land a hair past 1 when the option explains everything.
        shares[option] = min(1.0, ss_between / ss_total)
    return shares


def delta(value: float | None, baseline: float | None) -> float | None:
    """`value - baseline`, or None when either is missing (a run or a baseline without that metric)."""
    if value is None or baseline is None:
        return None
    return value - baseline
