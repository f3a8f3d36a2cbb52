"""The validation gate a candidate model must pass before it is registered.

Three kinds of check: the training data (contract and feature sanity), the candidate's
own metrics on the later holdout against thresholds from the settings, and no
regression against the current champion scored on the same holdout.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from contracts.settings import Settings
from data.contract import CONTRACT_COLUMNS, check_contract
from training.protocol import Metrics


@dataclass(frozen=True)
class GateCheck:
    """One gate check; `message` says what failed and by how much."""

    name: str
    passed: bool
    value: float | None
    threshold: float | None
    message: str


class GateFailed(ValueError):
    """The candidate failed the gate; it carries every check, passed or not."""

    def __init__(self, checks: list[GateCheck]) -> None:
        self.checks = checks
        failed = [c.message for c in checks if not c.passed]
        super().__init__("the candidate was not registered: " + "; ".join(failed))


def check_training_data(
    transactions: pd.DataFrame, training_set: pd.DataFrame, feature_names: list[str], settings: Settings
) -> list[GateCheck]:
    """The raw rows obey the contract; features are finite or missing, counts and shares in range."""
    checks = []
    violations = check_contract(
        transactions.drop(columns=[c for c in transactions.columns if c not in CONTRACT_COLUMNS])
    )
    checks.append(
        GateCheck(
            "data_contract",
            not violations,
            float(len(violations)),
            0.0,
            "training data breaks the contract: " + "; ".join(v.message for v in violations)
            if violations
            else "training data obeys the contract",
        )
    )
    frauds = int(training_set["is_fraud"].sum())
    checks.append(_at_least("training_frauds", frauds, settings.gate_min_training_frauds, "frauds in the training set"))
    values = training_set[feature_names].apply(pd.to_numeric, errors="coerce")
    infinite = [n for n in feature_names if np.isinf(values[n].to_numpy(dtype=np.float64)).any()]
    checks.append(
        GateCheck(
            "features_finite",
            not infinite,
            float(len(infinite)),
            0.0,
            f"infinite values in {', '.join(infinite)}" if infinite else "every feature is finite",
        )
    )
    out_of_range = [n for n in feature_names if _out_of_range(n, values[n])]
    checks.append(
        GateCheck(
            "features_in_range",
            not out_of_range,
            float(len(out_of_range)),
            0.0,
            f"values out of range in {', '.join(out_of_range)}"
            if out_of_range
            else "counts are non-negative and shares within [0, 1]",
        )
    )
    return checks


def check_metrics(metrics: Metrics, recall_at_review: float, settings: Settings) -> list[GateCheck]:
    """The candidate's holdout metrics against the configured minimums."""
    return [
        _at_least(
            "average_precision",
            metrics.average_precision,
            settings.gate_min_average_precision,
            "average precision on the holdout",
        ),
        _at_least(
            "recall_at_review",
            recall_at_review,
            settings.gate_min_recall_at_review,
            f"recall at the review threshold {settings.review_threshold}",
        ),
    ]


def check_no_regression(
    candidate: Metrics, champion: Metrics | None, champion_version: str | None, settings: Settings
) -> list[GateCheck]:
    """The candidate may not lose more than the allowed margin to the champion on the same holdout."""
    if champion is None:
        return [GateCheck("no_regression", True, None, None, "no champion yet: nothing to regress against")]
    checks = []
    for name in ("average_precision", "auc_roc"):
        ours, theirs = getattr(candidate, name), getattr(champion, name)
        floor = theirs - settings.gate_max_regression
        checks.append(
            GateCheck(
                f"no_regression_{name}",
                ours >= floor,
                ours,
                floor,
                f"{name} {ours:.4f} vs champion v{champion_version} {theirs:.4f}"
                + (
                    ""
                    if ours >= floor
                    else f": worse by {theirs - ours:.4f}, more than the allowed {settings.gate_max_regression}"
                ),
            )
        )
    return checks


def recall_at(labels: np.ndarray, scores: np.ndarray, threshold: float) -> float:
    """Share of frauds whose score reaches `threshold` (what review or block would catch)."""
    frauds = labels == 1
    return float((scores[frauds] >= threshold).mean()) if frauds.any() else 0.0


def _at_least(name: str, value: float, minimum: float, what: str) -> GateCheck:
    passed = value >= minimum
    return GateCheck(
        name,
        passed,
        float(value),
        float(minimum),
        f"{what} is {value:.4g}"
        + ("" if passed else f", below the minimum {minimum:.4g} (short by {minimum - value:.4g})"),
    )


def _out_of_range(name: str, values: pd.Series) -> bool:
    present = values.dropna()
    if "_nb_" in name or name.endswith(("_days", "_customers")) or name == "amount":
        return bool((present < 0).any())
    if "_risk_" in name or name.startswith("tx_during_"):
        return bool(((present < 0) | (present > 1)).any())
    return False
