"""Train a candidate from the feature store, gate it on a later period, register it if it passes."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import xgboost as xgb
from feast import FeatureStore
from mlflow.exceptions import MlflowException

from contracts.registry import CHAMPION, alias_version, load_booster, registry_client
from contracts.settings import Settings
from contracts.tracing import step
from training.dataset import build_split_sets, feature_matrix
from training.models import XGBOOST_PARAMS, XGBOOST_ROUNDS, fit_xgboost
from training.protocol import Metrics, Split, evaluate_scores
from training.reference import build_reference, context_rows
from training.register import CandidateRun, Lineage, code_version, log_and_register, log_rejected
from training.report import report_dir, write_evaluation_report
from training.validate import (
    GateCheck,
    GateFailed,
    check_metrics,
    check_no_regression,
    check_training_data,
    recall_at,
)

log = logging.getLogger(__name__)

HOLDOUT_DAYS = 7


@dataclass(frozen=True)
class TrainingResult:
    model_name: str
    version: str
    run_id: str | None
    metrics: dict[str, float]
    checks: list[GateCheck]
    n_train: int
    n_test: int
    report: Path  # the evaluation report's index.html (also logged in the run)


def holdout_split(transactions: pd.DataFrame, delay_days: int, test_days: int = HOLDOUT_DAYS) -> Split:
    """Train on everything before a label-delay gap, evaluate on the last `test_days` days.

    The gap keeps the evaluation honest: labels of the test period's first days would
    not be known when the model was trained in real life.
    """
    end = transactions["tx_datetime"].max().floor("D") + pd.Timedelta(days=1)
    test_start = end - pd.Timedelta(days=test_days)
    train_end = test_start - pd.Timedelta(days=delay_days)
    train = transactions[transactions["tx_datetime"] < train_end]
    test = transactions[transactions["tx_datetime"] >= test_start]
    for name, part in (("training", train), ("evaluation", test)):
        if part.empty or part["is_fraud"].nunique() < 2:
            raise ValueError(
                f"the {name} period has no frauds or no legitimate payments; ingest more "
                f"days (at least {test_days + delay_days + 7} days of labelled data)"
            )
    return Split(train=train, test=test)


def train_candidate(settings: Settings, store: FeatureStore, transactions: pd.DataFrame) -> TrainingResult:
    """Fit XGBoost on features from the store, gate it, and register it as a new version.

    Raises GateFailed (after logging the rejected run) when a check fails. Registering
    does not deploy: approve the version, then promote it (training/lifecycle.py).
    """
    if "is_fraud" not in transactions.columns:
        raise ValueError("the raw store holds no labels (is_fraud); training needs labelled data")
    with step("train.candidate", {"fraud.model_name": settings.model_name}) as span:
        with step("train.build_training_set"):
            split = holdout_split(transactions, settings.label_delay_days)
            sets = build_split_sets(store, settings.feature_service, split)
        names, train_set, test_set = sets.feature_names, sets.train, sets.test
        span.set_attributes({"fraud.train_rows": len(train_set), "fraud.holdout_rows": len(test_set)})
        with step("train.fit"):
            booster = fit_xgboost(feature_matrix(train_set, names), train_set["is_fraud"].to_numpy(), names)
        with step("train.evaluate"):
            scores, candidate = _evaluate(settings, booster, names, split, train_set, test_set)
        with step("train.register"):
            if not all(check.passed for check in candidate.checks):
                log_rejected(settings, candidate)
                raise GateFailed(candidate.checks)
            reference = build_reference(
                test_set,
                names,
                scores,
                settings.reference_max_rows,
                context=context_rows(train_set, settings.reference_context_days),
            )
            version = log_and_register(settings, booster, candidate, reference)
        span.set_attribute("fraud.model_version", str(version.version))
    return TrainingResult(
        model_name=settings.model_name,
        version=str(version.version),
        run_id=version.run_id,
        metrics=candidate.metrics,
        checks=candidate.checks,
        n_train=len(train_set),
        n_test=len(test_set),
        report=candidate.report.html,
    )


def _evaluate(
    settings: Settings,
    booster: xgb.Booster,
    names: list[str],
    split: Split,
    train_set: pd.DataFrame,
    test_set: pd.DataFrame,
) -> tuple[np.ndarray, CandidateRun]:
    """Score the holdout, gate the candidate against the checks and the champion, write its report."""
    scores = booster.inplace_predict(feature_matrix(test_set, names))
    metrics = evaluate_scores(test_set, scores)
    labels = test_set["is_fraud"].to_numpy()
    recall = recall_at(labels, scores, settings.review_threshold)
    champion_version, champion_metrics = _champion_on_holdout(settings, test_set)
    checks = [
        *check_training_data(split.train, train_set, names, settings),
        *check_metrics(metrics, recall, settings),
        *check_no_regression(metrics, champion_metrics, champion_version, settings),
    ]
    logged_metrics = {**metrics.as_dict(), "recall_at_review": recall}
    report = write_evaluation_report(
        test_set,
        scores,
        report_dir(settings, "training"),
        metrics=logged_metrics,
        title=f"{settings.model_name} candidate: holdout of the last {HOLDOUT_DAYS} days",
        review_threshold=settings.review_threshold,
    )
    lineage = Lineage(
        feature_service=settings.feature_service,
        feature_names=names,
        data_source=str(settings.raw_dir),
        data_start=str(split.train["tx_datetime"].min()),
        data_end=str(split.train["tx_datetime"].max()),
        data_rows=len(train_set),
        data_frauds=int(train_set["is_fraud"].sum()),
        code_version=code_version(),
    )
    candidate = CandidateRun(
        params={**XGBOOST_PARAMS, "num_boost_round": XGBOOST_ROUNDS},
        metrics=logged_metrics,
        training_set=train_set,
        lineage=lineage,
        checks=checks,
        report=report,
    )
    return scores, candidate


def _champion_on_holdout(settings: Settings, test_set: pd.DataFrame) -> tuple[str | None, Metrics | None]:
    """The current champion's metrics on the candidate's holdout (None before any champion)."""
    version = alias_version(registry_client(settings), settings, CHAMPION)
    if version is None:
        return None, None
    try:
        champion = load_booster(settings, version)
    except MlflowException as error:
        raise ValueError(f"the champion v{version} could not be loaded to compare against: {error}") from error
    names = list(champion.feature_names or [])  # the platform only registers boosters that carry them
    absent = [n for n in names if n not in test_set.columns]
    if absent:
        raise GateFailed(
            [
                GateCheck(
                    "no_regression",
                    False,
                    None,
                    None,
                    f"champion v{version} needs features the service no longer offers "
                    f"({', '.join(absent)}): it cannot be compared on the same holdout",
                )
            ]
        )
    scores = champion.inplace_predict(test_set[names].astype(np.float64).to_numpy())
    return version, evaluate_scores(test_set, scores)
