"""How far an accuracy measured on n images can be trusted: its 95% Wilson score interval (Wilson 1927;
Brown, Cai and DasGupta 2001 for why Wilson), and which splits are small enough for a table to show it.

    wilson_interval(81, 263)   (0.2553, 0.3662): 81 right out of 263, as fractions
    shows_interval(359)        True: under SMALL_TEST images, the tables print the interval

Pure Python, no torch: `vitcli report` (lab/reporting/stats.py) and the command line's tables use it
without loading the training stack; `EvalResult.interval` (evaluation.py) gives it for every evaluation.
"""

from __future__ import annotations

import math

# z of a two-sided 95% interval. Six digits, not 1.96: Wilson bounds printed to four decimals then match
# the published tables (and statsmodels' proportion_confint) to the last digit.
Z_95 = 1.959964

# The standard test sets (MNIST, Fashion-MNIST, CIFAR-10/100) have 10,000 images: there a 95% interval is
# at most +-1 point (+-0.3 at 97%), and their tables, like the published ones, give the accuracy alone.
# Under that (an image folder's test split, --subset) it is wide enough to matter: 348 right of 359 images
# (96.94%) is 94.6-98.3%, 3.7 points wide: wider than most differences between two runs.
SMALL_TEST = 10_000


def wilson_interval(correct: int, total: int, z: float = Z_95) -> tuple[float, float]:
    """The Wilson score interval of `correct` right out of `total`, as fractions in [0, 1].

    Wilson rather than the textbook p ± z·sqrt(p(1-p)/n): that one collapses to a zero-width interval at
    0% or 100% and runs past [0, 1] near them, which is exactly where small test sets and tiny runs land.
    """
    if total < 1:
        raise ValueError(f"an interval needs at least one test example, got total={total}")
    if not 0 <= correct <= total:
        raise ValueError(f"correct must be between 0 and total={total}, got {correct}")
    p = correct / total
    z2n = z * z / total
    centre = (p + z2n / 2) / (1 + z2n)
    half = z / (1 + z2n) * math.sqrt(p * (1 - p) / total + z2n / (4 * total))
    low, high = centre - half, centre + half
    # At 0 or all correct one bound is exactly 0 or 1 in exact arithmetic; set it so, since float rounding
    # lands a hair off (0.9999999999999999 for 10/10), and clamp so no bound can print outside [0, 1].
    if correct == 0:
        low = 0.0
    if correct == total:
        high = 1.0
    return max(0.0, low), min(1.0, high)


def shows_interval(count: int) -> bool:
    """Whether a table gives an accuracy measured on `count` images its interval: on a split of at least
    one image and under SMALL_TEST. (JSON gives it always, so that scripts need not check a size.)"""
    return 0 < count < SMALL_TEST
