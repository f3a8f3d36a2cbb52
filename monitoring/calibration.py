"""Alert thresholds that mean the same at any window size, calibrated from the reference itself.

A window of n served payments is never at distance 0 from the reference, even when nothing
changed: a small window differs by chance, more so when its payments share customers,
terminals and hours, as a day's do. So each check alerts only when its statistic is above
both the configured distance (the smallest change that matters, the floor) and what chance
alone gives at this window size (the chance level), measured on the reference period:

- clean windows are drawn from the reference as blocks of n consecutive payments (in time
  order, so a block keeps a day's mix of customers and hours) and each block is compared
  with the rest of the reference by the very statistic the job computes;
- the chance level is the largest statistic of `resamples` such blocks times `margin` (from
  the top 1/resamples of clean windows to rarer ones: `benchmarks/drift_calibration.py`
  measures the false alarms that leaves);
- each level is scaled by sqrt((1/n + 1/m) / (1/n0 + 1/(m - n0))) from the block comparison
  (n0 rows against the other m - n0) to the job's (n against all m): a distance's noise
  shrinks with the square root of both sides' sizes. A window larger than half the
  reference is calibrated with blocks of half its size, scaled the same way.

The statistics are Evidently's (tests/monitoring/test_calibration.py checks the numbers). A
window's are computed with them; the resamples' with the same formulas over the reference
sorted once (a block's distribution is the reference's minus the rest's), ~50x faster.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import numpy as np
import pandas as pd
from scipy import stats
from scipy.spatial import distance

Method = Literal["wasserstein", "jensenshannon", "share", "missing"]


@dataclass(frozen=True)
class Statistic:
    """One check's statistic: what it measures, on which column, and the configured floor."""

    kind: str
    feature: str
    name: str
    floor: float
    method: Method
    column: str
    value: object = None  # for "share": the value whose share is measured
    alerting: bool = True

    def measure(self, reference: pd.DataFrame, current: pd.DataFrame) -> tuple[float, float | None, float | None]:
        """(statistic, the reference's own share, the window's own share); shares only for share checks."""
        before, now = reference[self.column], current[self.column]
        if self.method == "share":  # among the rows that have the column (reference rows may not be scored)
            was, is_ = float((before.dropna() == self.value).mean()), float((now.dropna() == self.value).mean())
            return abs(is_ - was), was, is_
        if self.method == "missing":
            was, is_ = float(before.isna().mean()), float(now.isna().mean())
            return is_ - was, was, is_
        present_before, present_now = before.dropna().to_numpy(), now.dropna().to_numpy()
        if not len(present_before) or not len(present_now):
            return math.nan, None, None  # no distribution on one side: the missing-value check speaks
        if self.method == "wasserstein":
            norm = max(float(np.std(present_before)), 0.001)
            return float(stats.wasserstein_distance(present_before, present_now)) / norm, None, None
        keys = np.union1d(present_before, present_now)
        return float(distance.jensenshannon(_shares(present_before, keys), _shares(present_now, keys))), None, None


def chance_levels(
    reference: pd.DataFrame, statistics: list[Statistic], window_rows: int, resamples: int, margin: float
) -> np.ndarray:
    """Per statistic, what clean windows of `window_rows` payments reach by chance (see the module docstring)."""
    rows = len(reference)
    size = min(window_rows, rows // 2)
    if size < 2 or resamples < 1:
        return np.zeros(len(statistics))  # too small a reference to say anything about chance
    starts = np.unique(np.linspace(0, rows - size, resamples).astype(int))
    scale = math.sqrt((1 / window_rows + 1 / rows) / (1 / size + 1 / (rows - size)))
    levels = np.array([_largest_null(reference[s.column].to_numpy(), s, starts, size) for s in statistics])
    return levels * margin * scale


def _largest_null(values: np.ndarray, statistic: Statistic, starts: np.ndarray, size: int) -> float:
    """The largest statistic of the blocks [start, start + size) against the rest of `values`."""
    if statistic.method == "wasserstein":
        null = _SortedColumn(values)
        results = [null.wasserstein_block(values[start : start + size]) for start in starts]
    elif statistic.method == "jensenshannon":
        results = [_split_jensen_shannon(values, start, size) for start in starts]
    else:
        present = np.ones(len(values), dtype=bool) if statistic.method == "missing" else ~pd.isna(values)
        hit = values == statistic.value if statistic.method == "share" else pd.isna(values)
        shown = np.array([int(present[s : s + size].sum()) for s in starts])
        counts = np.array([int(hit[s : s + size].sum()) for s in starts])
        with np.errstate(invalid="ignore", divide="ignore"):
            block = counts / shown
            rest = (int(hit.sum()) - counts) / (int(present.sum()) - shown)
        results = list(np.abs(block - rest) if statistic.method == "share" else block - rest)
    return float(np.nanmax(np.abs(results), initial=0.0))


class _SortedColumn:
    """A column's present values, sorted once, with what the blocks' distances need."""

    def __init__(self, values: np.ndarray) -> None:
        present = values[~np.isnan(values)]
        self.sorted = np.sort(present)
        self.widths = np.diff(self.sorted)
        self.below = np.arange(1, len(self.sorted))  # values at or below each gap's left end
        self.sum, self.squares = float(present.sum()), float((present * present).sum())

    def wasserstein_block(self, block_values: np.ndarray) -> float:
        """Evidently's normed Wasserstein distance between the rest (reference) and the block (window)."""
        block = np.sort(block_values[~np.isnan(block_values)])
        rest_count = len(self.sorted) - len(block)
        if not len(block) or rest_count < 1:
            return math.nan
        in_block = np.searchsorted(block, self.sorted[:-1], side="right")
        gap = np.abs((self.below - in_block) / rest_count - in_block / len(block))
        mean = (self.sum - block.sum()) / rest_count
        variance = max((self.squares - float((block * block).sum())) / rest_count - mean * mean, 0.0)
        return float((gap * self.widths).sum()) / max(math.sqrt(variance), 0.001)


def _split_jensen_shannon(values: np.ndarray, start: int, size: int) -> float:
    block = values[start : start + size]
    rest = np.concatenate([values[:start], values[start + size :]])
    block, rest = block[~pd.isna(block)], rest[~pd.isna(rest)]
    if not len(block) or not len(rest):
        return math.nan
    keys = np.union1d(rest, block)
    return float(distance.jensenshannon(_shares(rest, keys), _shares(block, keys)))


def _shares(values: np.ndarray, keys: np.ndarray) -> np.ndarray:
    found, counts = np.unique(values, return_counts=True)
    shares = np.zeros(len(keys))
    shares[np.searchsorted(keys, found)] = counts / len(values)
    return shares
