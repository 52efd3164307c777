"""The nearest valid word to a mistyped one, for error messages: "unknown dataset 'mnst'; did you mean
mnist? use one of ..."."""

from __future__ import annotations

import difflib
from collections.abc import Iterable


def closest(given: object, choices: Iterable[object]) -> str | None:
    """The choice most like `given` (difflib's ratio, at least 0.6), or None when none is close."""
    words = [str(c) for c in choices]
    match = difflib.get_close_matches(str(given), words, n=1) or difflib.get_close_matches(
        str(given).lower(), [w.lower() for w in words], n=1
    )
    if not match:
        return None
    return next((w for w in words if w.lower() == match[0].lower()), match[0])


def did_you_mean(given: object, choices: Iterable[object]) -> str:
    """`did you mean mnist? ` when a choice is close to `given`, else '': to put before the list of
    choices, as in "unknown dataset 'mnst'; did you mean mnist? use one of ..."."""
    match = closest(given, choices)
    return "" if match is None else f"did you mean {match}? "
