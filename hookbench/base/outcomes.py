"""The words a run's verdict and its failures are stored, compared, worded and coloured by, defined once.

`StrEnum`s, so a member equals the plain string already in existing MLflow stores and CSV files
(`Verdict.IMPROVES == "improves"`) and formats as that string in tags, reports and plots.
Imports nothing, so stats, reports and tracking can all use it.
"""

from __future__ import annotations

from enum import StrEnum


class Verdict(StrEnum):
    """A job's verdict on the patch (its own, or after multiple-comparison correction)."""

    IMPROVES = "improves"
    HURTS = "hurts"
    NO_DETECTABLE_CHANGE = "no detectable change"
    NO_CHANGE_OBSERVED = "no change observed"  # not one item changed: nothing to test or correct
    NO_DATA = "no data"  # no paired items, or a NaN p (a failed or screened-out job)


class FailureKind(StrEnum):
    """Why one generation (or its grading) has no score."""

    API_ERROR = "api_error"  # the server or network failed: missing data
    TIMEOUT = "timeout"  # also missing data
    EMPTY = "empty"  # an empty answer
    ERROR_TEXT = "error_text"  # the server answered with an error text instead of a generation
    NO_ANSWER = "no_answer"  # the server returned nothing for this field
    JUDGE_ERROR = "judge_error"  # the judge could not grade: a failure, not a wrong answer


class Agreement(StrEnum):
    """A reproduction's verdict on the run it repeats (`hookbench.reproduced` tag)."""

    AGREES = "agrees"
    DISAGREES = "disagrees"
    INCONCLUSIVE = "inconclusive"  # neither equivalent within the margin nor significantly different


class Screen(StrEnum):
    """The loss screen's outcome for a job (`screen` tag): rejected jobs generate nothing."""

    PASSED = "passed"
    REJECTED = "rejected"


class GuardVerdict(StrEnum):
    """A guard's verdict: did the patch keep the guard task within its margin (`guard_verdict` tag)?"""

    NON_INFERIOR = "non-inferior"  # the (1 − 2α) interval of the guard's delta lies above −margin
    HURTS = "hurts"  # the guard's own paired test (as for the target) calls a decrease
    INCONCLUSIVE = "inconclusive"  # neither: too few items to tell
    NO_DATA = "no data"  # no guard item scored in both arms
