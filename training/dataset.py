"""Training sets built from the feature store (point-in-time joins), never from ad-hoc code."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from feast import FeatureService, FeatureStore

from feature_repo.store import model_feature_names, published_service
from feature_repo.transforms import entity_frame
from training.protocol import Split


def build_training_set(store: FeatureStore, service: FeatureService, transactions: pd.DataFrame) -> pd.DataFrame:
    """Features of `service` for each transaction as known at its time, plus its label.

    Rows come back in the order of `transactions`, with `transaction_id`, `tx_datetime`,
    `customer_id` and, where present, `is_fraud` and `fraud_scenario` alongside the features.
    """
    entities = entity_frame(transactions)
    joined = store.get_historical_features(entity_df=entities, features=service).to_df()
    joined = joined.set_index("transaction_id").reindex(entities["transaction_id"]).reset_index()
    passthrough = [c for c in ("is_fraud", "fraud_scenario") if c in transactions.columns]
    for column in passthrough:
        joined[column] = transactions[column].to_numpy()
    joined["tx_datetime"] = transactions["tx_datetime"].to_numpy()
    return joined


@dataclass(frozen=True)
class SplitSets:
    """Train and test sets of one split, and the model inputs the service offers."""

    feature_names: list[str]
    train: pd.DataFrame
    test: pd.DataFrame


def build_split_sets(store: FeatureStore, service_name: str, split: Split) -> SplitSets:
    """Both sides of a split through the same feature service, with its model inputs."""
    service = published_service(store, service_name)
    return SplitSets(
        feature_names=model_feature_names(store, service),
        train=build_training_set(store, service, split.train),
        test=build_training_set(store, service, split.test),
    )


def feature_matrix(frame: pd.DataFrame, feature_names: list[str]) -> np.ndarray:
    """The model's input matrix: features in model order, missing values as NaN."""
    return frame[feature_names].apply(pd.to_numeric, errors="coerce").to_numpy(dtype=np.float64)
