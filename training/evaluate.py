"""`fraud evaluate`: the Handbook protocol on whatever data is in the raw store."""

from __future__ import annotations

import pandas as pd
from feast import FeatureStore

from data.settings import Settings
from feature_repo.store import model_feature_names
from training.dataset import build_training_set, feature_matrix
from training.models import ModelKind, fit_scorer
from training.protocol import evaluate_scores, handbook_split


def evaluate_handbook(settings: Settings, store: FeatureStore, transactions: pd.DataFrame,
                      train_start: pd.Timestamp, model: ModelKind = "xgboost") -> dict[str, float | int]:
    """Train on the book's training week and score its test week, features from the store."""
    if "is_fraud" not in transactions.columns:
        raise ValueError("the raw store holds no labels (is_fraud); evaluation needs labelled data")
    service = store.get_feature_service(settings.feature_service)
    names = model_feature_names(store, service)
    split = handbook_split(transactions, train_start.date(), delay_days=settings.label_delay_days)
    train_set = build_training_set(store, service, split.train)
    test_set = build_training_set(store, service, split.test)
    scorer = fit_scorer(model, feature_matrix(train_set, names), train_set["is_fraud"].to_numpy(), names)
    metrics = evaluate_scores(test_set, scorer(feature_matrix(test_set, names)))
    return {**metrics.as_dict(), "n_train": len(train_set), "n_test": len(test_set)}
