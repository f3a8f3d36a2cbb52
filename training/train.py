"""Train the fraud model from the feature store, evaluate it on a later period, register it."""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd
from feast import FeatureStore

from data.settings import Settings
from feature_repo.store import model_feature_names
from training.dataset import build_training_set, feature_matrix
from training.models import XGBOOST_PARAMS, XGBOOST_ROUNDS, fit_xgboost
from training.protocol import Split, evaluate_scores
from training.register import Lineage, code_version, log_and_register, set_champion
from training.report import report_dir, write_evaluation_report

HOLDOUT_DAYS = 7


@dataclass(frozen=True)
class TrainingResult:
    model_name: str
    version: str
    run_id: str
    metrics: dict[str, float]
    n_train: int
    n_test: int


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
            raise ValueError(f"the {name} period has no frauds or no legitimate payments; ingest more "
                             f"days (at least {test_days + delay_days + 7} days of labelled data)")
    return Split(train=train, test=test)


def train_and_register(settings: Settings, store: FeatureStore, transactions: pd.DataFrame,
                       promote: bool = True) -> TrainingResult:
    """Build train and holdout sets through the feature service, fit XGBoost, register, promote."""
    if "is_fraud" not in transactions.columns:
        raise ValueError("the raw store holds no labels (is_fraud); training needs labelled data")
    service = store.get_feature_service(settings.feature_service)
    names = model_feature_names(store, service)
    split = holdout_split(transactions, settings.label_delay_days)
    train_set = build_training_set(store, service, split.train)
    test_set = build_training_set(store, service, split.test)
    booster = fit_xgboost(feature_matrix(train_set, names), train_set["is_fraud"].to_numpy(), names)
    scores = booster.inplace_predict(feature_matrix(test_set, names))
    metrics = evaluate_scores(test_set, scores)
    report = write_evaluation_report(
        test_set, scores, report_dir(settings, "training"), title=f"{settings.model_name}: holdout of the last "
        f"{HOLDOUT_DAYS} days", metrics=metrics.as_dict(), review_threshold=settings.review_threshold)
    lineage = Lineage(
        feature_service=service.name, feature_names=names, data_source=str(settings.raw_dir),
        data_start=str(split.train["tx_datetime"].min()), data_end=str(split.train["tx_datetime"].max()),
        code_version=code_version(),
    )
    version = log_and_register(settings, booster, params={**XGBOOST_PARAMS, "num_boost_round": XGBOOST_ROUNDS},
                               metrics=metrics.as_dict(), training_set=train_set, lineage=lineage,
                               report=report)
    if promote:
        set_champion(settings, str(version.version))
    return TrainingResult(model_name=settings.model_name, version=str(version.version), run_id=version.run_id,
                          metrics=metrics.as_dict(), n_train=len(train_set), n_test=len(test_set))
