"""`fraud evaluate`: the Handbook protocol on whatever data is in the raw store."""

from __future__ import annotations

import mlflow
import pandas as pd
from feast import FeatureStore

from contracts.registry import EVALUATION_EXPERIMENT, experiment_id, fluent_tracking, registry_client
from contracts.settings import Settings
from training.dataset import build_split_sets, feature_matrix
from training.models import ModelKind, fit_scorer
from training.protocol import evaluate_scores, handbook_split
from training.report import log_report_to_mlflow, report_dir, write_evaluation_report


def evaluate_handbook(
    settings: Settings,
    store: FeatureStore,
    transactions: pd.DataFrame,
    train_start: pd.Timestamp,
    model: ModelKind = "xgboost",
) -> dict[str, float | int | str]:
    """Train on the book's training week and score its test week, every feature from the store.

    The metrics and an evaluation report (curves, score distribution, per-scenario
    recall) are logged to an MLflow run of the `fraud-evaluation` experiment.
    """
    if "is_fraud" not in transactions.columns:
        raise ValueError("the raw store holds no labels (is_fraud); evaluation needs labelled data")
    split = handbook_split(transactions, train_start.date(), delay_days=settings.label_delay_days)
    sets = build_split_sets(store, settings.feature_service, split)
    names, train_set, test_set = sets.feature_names, sets.train, sets.test
    scorer = fit_scorer(model, feature_matrix(train_set, names), train_set["is_fraud"].to_numpy(), names)
    scores = scorer(feature_matrix(test_set, names))
    metrics = evaluate_scores(test_set, scores).as_dict()
    report = write_evaluation_report(
        test_set,
        scores,
        report_dir(settings, "evaluation"),
        metrics=metrics,
        title=f"Handbook protocol, {model}, training week from {train_start.date()}",
        review_threshold=settings.review_threshold,
    )
    experiment = experiment_id(registry_client(settings), settings, EVALUATION_EXPERIMENT)
    tags = {"protocol": "handbook", "feature_service": settings.feature_service}
    with fluent_tracking(settings), mlflow.start_run(experiment_id=experiment, tags=tags) as run:
        mlflow.log_params(
            {"model": model, "train_start": str(train_start.date()), "label_delay_days": settings.label_delay_days}
        )
        mlflow.log_metrics(metrics)
        log_report_to_mlflow(report)
    return {
        **metrics,
        "n_train": len(train_set),
        "n_test": len(test_set),
        "report": str(report.html),
        "mlflow_run_id": run.info.run_id,
    }
