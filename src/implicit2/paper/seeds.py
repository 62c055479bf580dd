"""Seed noise: is a per-seed quantity clearly on one side of a limit?

Every claim reduces a comparison to one number per seed (a difference of PSNRs, a ratio of
times, a mean iteration count) and asks on which side of a limit it lies. With at least
:data:`MIN_SEEDS_FOR_SPREAD` seeds the answer uses the seed spread: the two-sided 95 % Student-t
interval of the mean must lie entirely on one side. With fewer seeds there is no spread to judge
noise by, so the mean alone decides and the evidence says so.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from scipy import stats

MIN_SEEDS_FOR_SPREAD = 3
CONFIDENCE = 0.95

Outcome = Literal["holds", "fails", "unclear"]
_NUMBER_WORDS: dict[int, str] = {1: "one seed", 2: "two seeds"}


@dataclass(frozen=True)
class Estimate:
    """The mean of per-seed values and, with enough seeds, its confidence half-width.

    Attributes:
        mean: mean over seeds.
        half_width: half-width of the 95 % t-interval; None with fewer than
            :data:`MIN_SEEDS_FOR_SPREAD` seeds.
        seeds: how many seeds.
    """

    mean: float
    half_width: float | None
    seeds: int

    def side(self, limit: float, higher_is_better: bool) -> Outcome:
        """``holds`` on the good side of ``limit``, ``fails`` on the bad one, else ``unclear``.

        With a half-width the whole interval must be on one side; without one the mean decides
        (a mean exactly at the limit is ``unclear``).
        """
        margin = self.half_width or 0.0
        above, below = self.mean - margin > limit, self.mean + margin < limit
        if not (above or below):
            return "unclear"
        return "holds" if above == higher_is_better else "fails"

    def plus_minus(self, decimals: int) -> str:
        """``+/- 0.12`` (the half-width), or an empty string without a seed spread."""
        if self.half_width is None:
            return ""
        return f" +/- {self.half_width:.{decimals}f}"


def estimate(values: Sequence[float]) -> Estimate:
    """Mean and t-interval half-width of per-seed values (at least one, all finite).

    Raises:
        ValueError: no values, or a value that is not finite.
    """
    if not values or not all(math.isfinite(v) for v in values):
        raise ValueError(f"need at least one finite value per seed, got {list(values)}")
    mean = statistics.fmean(values)
    if len(values) < MIN_SEEDS_FOR_SPREAD:
        return Estimate(mean, None, len(values))
    sem = statistics.stdev(values) / math.sqrt(len(values))
    quantile = float(stats.t.ppf(0.5 + CONFIDENCE / 2, len(values) - 1))
    return Estimate(mean, quantile * sem, len(values))


def seeds_phrase(counts: Sequence[int]) -> str:
    """How the seed noise was judged, for cells with ``counts`` seeds each.

    ``one seed`` / ``two seeds`` say that no seed spread was available; three or more say which
    interval was used.
    """
    if not counts:
        return "no seeds"
    low, high = min(counts), max(counts)
    if high < MIN_SEEDS_FOR_SPREAD:
        words = _NUMBER_WORDS[high] if low == high else "one or two seeds"
        return f"{words}: no seed spread, the value alone decides"
    spread = f"{int(CONFIDENCE * 100)}% t-interval over seeds"
    if low >= MIN_SEEDS_FOR_SPREAD:
        return f"{low}-{high} seeds, {spread}" if low != high else f"{low} seeds, {spread}"
    return f"{low}-{high} seeds: {spread} where 3 or more, else the value alone decides"
