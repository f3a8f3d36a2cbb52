"""A challenger against the champion over one interval of the prediction log: figures per
version, the checks, and a verdict.

Shadow: both versions scored the same payments (the champion answered, the worker logged the
challenger's score beside it), so the scores are compared pair by pair: their distributions'
distance, how often both decide alike at the operating thresholds, the block-rate ratio.
Canary: each payment met one version (customers split by a stable hash), so the groups are
comparable traffic, not the same payments: score distance, block-rate ratio and the p99
latency ratio. Fewer than `rollout_min_rows` payments for a version give no verdict.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Literal

import numpy as np
import pandas as pd

from contracts.decision import DECISIONS, decide
from contracts.rollout import RolloutPlan
from contracts.settings import Settings

Verdict = Literal["healthy", "breach", "insufficient"]
SHADOW_SCORE, SHADOW_VERSION = "shadow_score", "shadow_version"  # the worker's columns for shadow payments


@dataclass(frozen=True)
class VersionFigures:
    """One version's answers in the interval."""

    version: str
    rows: int
    decision_shares: dict[str, float]
    p99_latency_ms: float | None  # None in shadow for the challenger: it answered nobody


@dataclass(frozen=True)
class RolloutCheck:
    """One comparison of the challenger with the champion, and whether it passed."""

    name: str
    value: float
    threshold: float
    passed: bool

    def message(self) -> str:
        relation = "within" if self.passed else "beyond"
        return f"{self.name} {self.value:.4g} {relation} {self.threshold:.4g}"


@dataclass(frozen=True)
class IntervalVerdict:
    """What one interval showed: kept per interval, read by `fraud rollout status`."""

    start: str
    end: str
    mode: str
    champion: VersionFigures
    challenger: VersionFigures
    checks: list[RolloutCheck] = field(default_factory=list)
    verdict: Verdict = "insufficient"

    @property
    def breaches(self) -> list[RolloutCheck]:
        return [check for check in self.checks if not check.passed]

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


def analyse_interval(
    log: pd.DataFrame, plan: RolloutPlan, champion: str, start: datetime, end: datetime, settings: Settings
) -> IntervalVerdict:
    """The verdict on `plan`'s challenger over the log rows of [start, end)."""
    if plan.mode == "shadow":
        return _shadow(log, plan, champion, start, end, settings)
    return _canary(log, plan, champion, start, end, settings)


def _shadow(
    log: pd.DataFrame, plan: RolloutPlan, champion: str, start: datetime, end: datetime, settings: Settings
) -> IntervalVerdict:
    answered = log[log["model_version"].astype(str) == champion]
    paired = answered[answered[SHADOW_VERSION].astype(str) == plan.version].dropna(subset=[SHADOW_SCORE])
    ours = paired["risk_score"].to_numpy(float)
    theirs = paired[SHADOW_SCORE].to_numpy(float)
    challenger_decisions = pd.Series([decide(score, settings) for score in theirs], dtype=object)
    figures = (
        _figures(champion, paired["decision"], paired["latency_ms"]),
        _figures(plan.version, challenger_decisions, None),
    )
    verdict = IntervalVerdict(start.isoformat(), end.isoformat(), "shadow", *figures)
    if len(paired) < settings.rollout_min_rows:
        return verdict
    agreement = float((challenger_decisions.to_numpy() == paired["decision"].to_numpy()).mean())
    checks = [
        _at_most("score distance", wasserstein(ours, theirs), settings.rollout_max_score_distance),
        _at_least("decision agreement", agreement, settings.rollout_min_decision_agreement),
        _block_rate_check(figures[0], figures[1], settings),
    ]
    return _with_checks(verdict, checks)


def _canary(
    log: pd.DataFrame, plan: RolloutPlan, champion: str, start: datetime, end: datetime, settings: Settings
) -> IntervalVerdict:
    groups = {version: log[log["model_version"].astype(str) == version] for version in (champion, plan.version)}
    ours_figures, theirs_figures = (_figures(v, rows["decision"], rows["latency_ms"]) for v, rows in groups.items())
    figures = (ours_figures, theirs_figures)
    verdict = IntervalVerdict(start.isoformat(), end.isoformat(), "canary", ours_figures, theirs_figures)
    if min(len(rows) for rows in groups.values()) < settings.rollout_min_rows:
        return verdict
    ours, theirs = (groups[v]["risk_score"].to_numpy(float) for v in (champion, plan.version))
    latency = (figures[1].p99_latency_ms or 0.0) / max(figures[0].p99_latency_ms or 0.0, 1e-9)
    checks = [
        _at_most("score distance", wasserstein(ours, theirs), settings.rollout_max_score_distance),
        _block_rate_check(figures[0], figures[1], settings),
        _at_most("p99 latency ratio", latency, settings.rollout_max_p99_latency_ratio),
    ]
    return _with_checks(verdict, checks)


def wasserstein(a: np.ndarray, b: np.ndarray) -> float:
    """The 1-D Wasserstein (earth mover's) distance between two samples: the area between their CDFs."""
    if not len(a) or not len(b):
        return float("nan")
    values = np.sort(np.concatenate([a, b]))
    widths = np.diff(values)
    cdf_a = np.searchsorted(np.sort(a), values[:-1], side="right") / len(a)
    cdf_b = np.searchsorted(np.sort(b), values[:-1], side="right") / len(b)
    return float(np.sum(np.abs(cdf_a - cdf_b) * widths))


def _figures(version: str, decisions: pd.Series, latency_ms: pd.Series | None) -> VersionFigures:
    counts = decisions.value_counts()
    total = max(len(decisions), 1)
    shares: dict[str, float] = {decision: float(counts.get(decision, 0)) / total for decision in DECISIONS}
    p99 = float(np.percentile(latency_ms.to_numpy(float), 99)) if latency_ms is not None and len(latency_ms) else None
    return VersionFigures(version=version, rows=len(decisions), decision_shares=shares, p99_latency_ms=p99)


def _block_rate_check(champion: VersionFigures, challenger: VersionFigures, settings: Settings) -> RolloutCheck:
    # One block in the window's rows is the floor: a champion that blocked nothing does not
    # make any challenger block an infinite ratio.
    floor = 1.0 / max(champion.rows, 1)
    ratio = challenger.decision_shares["block"] / max(champion.decision_shares["block"], floor)
    return _at_most("block-rate ratio", ratio, settings.rollout_max_block_rate_ratio)


def _at_most(name: str, value: float, threshold: float) -> RolloutCheck:
    return RolloutCheck(name, value, threshold, passed=bool(value <= threshold))


def _at_least(name: str, value: float, threshold: float) -> RolloutCheck:
    return RolloutCheck(name, value, threshold, passed=bool(value >= threshold))


def _with_checks(verdict: IntervalVerdict, checks: list[RolloutCheck]) -> IntervalVerdict:
    state: Verdict = "healthy" if all(check.passed for check in checks) else "breach"
    return IntervalVerdict(
        verdict.start, verdict.end, verdict.mode, verdict.champion, verdict.challenger, checks, state
    )
