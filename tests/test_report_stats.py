"""The statistics behind `vitcli report` (lab/reporting/stats.py) against numbers worked out by hand or
published: Wilson intervals, seed bands over runs of different lengths, the cost-accuracy front with ties,
η² shares of a sweep's variance, and that the module imports without numpy or torch."""

import math
import subprocess
import sys

import pytest

from vitcli.lab.reporting.stats import (
    VARIANCE_METHOD,
    SeedBand,
    accuracy_interval,
    delta,
    mean_std,
    pareto_front,
    seed_bands,
    variance_shares,
    wilson_interval,
)

# --- Wilson intervals -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("correct", "total", "low", "high"),
    [
        # Published Wilson 95% bounds (as statsmodels' proportion_confint(method="wilson") gives them).
        (8, 10, 0.4902, 0.9433),
        (5, 10, 0.2366, 0.7634),
        (95, 100, 0.8882, 0.9785),
        (0, 10, 0.0, 0.2775),
        (10, 10, 0.7225, 1.0),
        (1, 1, 0.2065, 1.0),
    ],
)
def test_wilson_matches_published_bounds(correct, total, low, high):
    got_low, got_high = wilson_interval(correct, total)
    assert round(got_low, 4) == low
    assert round(got_high, 4) == high


def test_wilson_bounds_are_exact_at_none_and_all_correct():
    # Not 0.9999999999999999 or -1e-17: the page prints these, and 100% must read as 100%.
    assert wilson_interval(0, 10)[0] == 0.0
    assert wilson_interval(10, 10)[1] == 1.0
    assert wilson_interval(0, 1) == (0.0, pytest.approx(0.7934506882, abs=1e-9))


def test_wilson_close_to_normal_approximation_for_large_n():
    n, p = 1_000_000, 0.9
    half = 1.959964 * math.sqrt(p * (1 - p) / n)
    low, high = wilson_interval(int(p * n), n)
    # Wilson's centre sits z²(1 - 2p) / 2n = 1.5e-6 towards 0.5; its width is the normal one to 1e-5.
    assert low == pytest.approx(p - half, abs=2e-6)
    assert high == pytest.approx(p + half, abs=2e-6)
    assert high - low == pytest.approx(2 * half, rel=1e-5)
    assert (low + high) / 2 == pytest.approx(p + 1.959964**2 * (1 - 2 * p) / (2 * n), abs=1e-9)
    # And visibly not the normal interval on a small test set, where the two differ.
    assert wilson_interval(9, 10)[1] < 1.0 < p + 1.959964 * math.sqrt(p * (1 - p) / 10)


def test_wilson_z_sets_the_width():
    # z = 1 for 8/10 by hand: centre (0.8 + 0.05) / 1.1, half sqrt(0.016 + 0.0025) / 1.1.
    low, high = wilson_interval(8, 10, z=1.0)
    assert low == pytest.approx((0.85 - math.sqrt(0.0185)) / 1.1, abs=1e-12)
    assert high == pytest.approx((0.85 + math.sqrt(0.0185)) / 1.1, abs=1e-12)


@pytest.mark.parametrize(("correct", "total"), [(0, 0), (1, 0), (-1, 10), (11, 10)])
def test_wilson_rejects_impossible_counts(correct, total):
    with pytest.raises(ValueError):
        wilson_interval(correct, total)


def test_accuracy_interval_rounds_back_to_the_count():
    # 0.7 * 10 is 6.999999999999999 in floats: the count is still 7.
    assert accuracy_interval(0.7, 10) == wilson_interval(7, 10)
    assert accuracy_interval(0.8, 10) == wilson_interval(8, 10)
    assert accuracy_interval(0.9912, 10_000) == wilson_interval(9912, 10_000)
    assert accuracy_interval(1.0, 10) == (pytest.approx(0.7224671970, abs=1e-9), 1.0)


@pytest.mark.parametrize(("accuracy", "total"), [(-0.1, 10), (1.5, 10), (0.5, 0)])
def test_accuracy_interval_rejects_bad_input(accuracy, total):
    with pytest.raises(ValueError):
        accuracy_interval(accuracy, total)


# --- seed bands ---------------------------------------------------------------------------------------


def test_seed_bands_over_runs_of_different_lengths():
    band = seed_bands(
        [
            [0.5, 0.6, 0.7],
            [0.3, None, 0.9, 0.95],
            [0.4, 0.8],
        ]
    )
    assert band == SeedBand(
        epochs=[1, 2, 3, 4],
        mean=[pytest.approx(0.4), pytest.approx(0.7), pytest.approx(0.8), 0.95],
        low=[0.3, 0.6, 0.7, 0.95],
        high=[0.5, 0.8, 0.9, 0.95],
        count=[3, 2, 2, 1],
    )


def test_seed_bands_keep_epochs_no_run_has_and_skip_nan():
    band = seed_bands([[None, 1.0, float("nan")], [None, 3.0, 2.0]])
    assert band.epochs == [1, 2, 3]
    assert band.count == [0, 2, 1]
    assert band.mean == [None, 2.0, 2.0]
    assert band.low == [None, 1.0, 2.0]
    assert band.high == [None, 3.0, 2.0]


def test_seed_bands_of_nothing_is_empty():
    assert seed_bands([]) == SeedBand(epochs=[], mean=[], low=[], high=[], count=[])
    assert seed_bands([[], []]).epochs == []


def test_seed_band_of_one_run_is_that_run():
    band = seed_bands([[0.1, 0.2]])
    assert band.mean == band.low == band.high == [0.1, 0.2]
    assert band.count == [1, 1]


# --- mean and spread ----------------------------------------------------------------------------------


def test_mean_std_sample_deviation():
    mean, std = mean_std([0.7, 0.8, 0.9])
    assert mean == pytest.approx(0.8, abs=1e-12)
    assert std == pytest.approx(0.1, abs=1e-12)  # n - 1: sqrt((0.01 + 0 + 0.01) / 2)
    mean, std = mean_std([1.0, 3.0])
    assert (mean, std) == (2.0, pytest.approx(math.sqrt(2), abs=1e-12))


def test_mean_std_of_one_value_has_no_spread():
    assert mean_std([0.75]) == (0.75, None)


def test_mean_std_of_nothing_raises():
    with pytest.raises(ValueError):
        mean_std([])


# --- the cost-accuracy front --------------------------------------------------------------------------


def test_pareto_front_drops_dominated_points_and_sorts_by_cost():
    points = [
        (3.0, 0.90),  # 0: front, dearest and best
        (1.0, 0.70),  # 1: front, cheapest
        (2.0, 0.65),  # 2: off, 1 is cheaper and better
        (2.0, 0.80),  # 3: front
        (3.0, 0.85),  # 4: off, same cost as 0 and worse
        (2.5, 0.80),  # 5: off, same accuracy as 3 and dearer
    ]
    assert pareto_front(points) == [1, 3, 0]


def test_pareto_front_keeps_identical_points_in_index_order():
    points = [(2.0, 0.8), (1.0, 0.5), (2.0, 0.8), (2.0, 0.7)]
    assert pareto_front(points) == [1, 0, 2]


def test_pareto_front_edge_cases():
    assert pareto_front([]) == []
    assert pareto_front([(5.0, 0.1)]) == [0]
    # Every point the same cost: only the best accuracy (both, if tied) stays.
    assert pareto_front([(1.0, 0.6), (1.0, 0.9), (1.0, 0.9)]) == [1, 2]
    # A NaN would be neither better nor worse than anything: it is left out, and dominates nothing.
    assert pareto_front([(1.0, float("nan")), (2.0, 0.5), (float("inf"), 0.99)]) == [1]


# --- which option mattered ----------------------------------------------------------------------------


def test_variance_shares_metric_depends_on_one_option_only():
    rows = [{"a": a, "b": b} for a in ("x", "y", "z") for b in (1, 2)]
    metric = [{"x": 0.5, "y": 0.6, "z": 0.9}[row["a"]] for row in rows]
    shares = variance_shares(rows, metric)
    assert list(shares) == ["a", "b"]
    assert shares["a"] == pytest.approx(1.0, abs=1e-12)
    assert shares["b"] == pytest.approx(0.0, abs=1e-12)


def test_variance_shares_additive_balanced_grid_by_hand():
    # metric = 0.5 + 0.2·a + 0.1·b on the 2x2 grid: 0.5, 0.6, 0.7, 0.8, grand mean 0.65.
    # SS_total = 2·0.15² + 2·0.05² = 0.05; SS_a = 4·0.1² = 0.04; SS_b = 4·0.05² = 0.01.
    rows = [{"a": a, "b": b} for a in (0, 1) for b in (0, 1)]
    metric = [0.5 + 0.2 * row["a"] + 0.1 * row["b"] for row in rows]
    shares = variance_shares(rows, metric)
    assert shares["a"] == pytest.approx(0.8, abs=1e-12)
    assert shares["b"] == pytest.approx(0.2, abs=1e-12)


def test_variance_shares_pure_interaction_is_no_main_effect():
    # XOR: each option alone splits the runs into groups with the same mean; all variance is interaction.
    rows = [{"a": a, "b": b} for a in (False, True) for b in (False, True)]
    metric = [0.9 if row["a"] != row["b"] else 0.5 for row in rows]
    assert variance_shares(rows, metric) == {
        "a": pytest.approx(0.0, abs=1e-12),
        "b": pytest.approx(0.0, abs=1e-12),
    }


def test_variance_shares_unbalanced_groups_by_hand():
    # a=1 for runs 0-2 (0.1, 0.2, 0.3; mean 0.2), a=2 for run 3 (0.6); grand mean 0.3.
    # SS_total = 0.04 + 0.01 + 0 + 0.09 = 0.14; SS_between = 3·0.1² + 1·0.3² = 0.12.
    rows = [{"a": 1}, {"a": 1}, {"a": 1}, {"a": 2}]
    assert variance_shares(rows, [0.1, 0.2, 0.3, 0.6]) == {"a": pytest.approx(0.12 / 0.14, abs=1e-12)}


def test_variance_shares_constant_metric_and_single_value_option():
    rows = [{"a": a, "lr": 0.001} for a in ("x", "y")]
    assert variance_shares(rows, [0.7, 0.7]) == {"a": 0.0, "lr": 0.0}
    shares = variance_shares(rows, [0.6, 0.8])
    assert shares == {"a": pytest.approx(1.0, abs=1e-12), "lr": 0.0}


def test_variance_shares_groups_values_as_written():
    # 1, 1.0 and True are three values of a sweep, not one; None and a missing option are two more;
    # a list value groups by content.
    rows = [{"v": 1}, {"v": 1.0}, {"v": True}, {"v": None}, {}, {"v": [1, 2]}, {"v": [1, 2]}]
    metric = [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.6]
    assert variance_shares(rows, metric) == {"v": pytest.approx(1.0, abs=1e-12)}
    rows = [{"v": 1}, {"v": 1}]
    assert variance_shares(rows, [0.1, 0.2]) == {"v": 0.0}


def test_variance_shares_rejects_mismatched_or_missing_results():
    with pytest.raises(ValueError):
        variance_shares([{"a": 1}], [0.5, 0.6])
    with pytest.raises(ValueError):
        variance_shares([{"a": 1}, {"a": 2}], [0.5, float("nan")])
    assert variance_shares([], []) == {}


def test_variance_method_names_the_measure():
    assert "η²" in VARIANCE_METHOD
    assert "ANOVA" in VARIANCE_METHOD
    assert "random forest" in VARIANCE_METHOD
    assert VARIANCE_METHOD.count(". ") == 0 and VARIANCE_METHOD.endswith(".")  # one sentence


# --- deltas and the imports ---------------------------------------------------------------------------


def test_delta():
    assert delta(0.9, 0.75) == pytest.approx(0.15, abs=1e-15)
    assert delta(0.5, 0.75) == pytest.approx(-0.25, abs=1e-15)
    assert delta(None, 0.75) is None
    assert delta(0.9, None) is None
    assert delta(None, None) is None


def test_stats_import_without_numpy_or_torch():
    # The page is written wherever the runs are; the statistics must not pull in the training stack.
    code = (
        "import sys\n"
        "for name in ('numpy', 'torch', 'scipy'): sys.modules[name] = None\n"
        "import vitcli.lab.reporting.stats as s\n"
        "print(s.wilson_interval(8, 10))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
