"""The monitoring reference profile, saved with every registered version (monitoring reads it back).

One row per payment of the holdout period, in time order: the model's inputs exactly as the
offline store built them, the model's score, and when the payment was made. The holdout,
not the fitted rows, because its scores are out of sample, as served scores are (scores on
rows the trees were fitted on sit closer to 0 and 1), and it is the period nearest to what
the model will serve. Before it, the inputs of the last `context` days of the training
period, without a score: one week cannot show how much a week's inputs vary from the
next (fraud-driven terminal features above all), and the drift job calibrates its
thresholds on that variation (monitoring/calibration.py).
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd

from contracts.registry import (
    REFERENCE_ARTIFACT_DIR,
    REFERENCE_ARTIFACT_FILE,
    REFERENCE_SCORE_COLUMN,
    REFERENCE_TIME_COLUMN,
)

SAMPLE_SEED = 0


def build_reference(
    feature_rows: pd.DataFrame,
    feature_names: list[str],
    scores: np.ndarray,
    max_rows: int,
    context: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """Model inputs (float, NaN when missing), scores and payment times of the scored rows, after
    the inputs of the `context` rows (score NaN), sampled down to `max_rows` rows and kept in time
    order (monitoring calibrates its thresholds on runs of consecutive rows)."""
    parts = [_profile(feature_rows, feature_names, np.asarray(scores, dtype=np.float64))]
    if context is not None and len(context):
        parts.insert(0, _profile(context, feature_names, np.full(len(context), np.nan)))
    reference = pd.concat(parts, ignore_index=True)
    if len(reference) > max_rows:
        reference = reference.sample(n=max_rows, random_state=SAMPLE_SEED)
    return reference.sort_values(REFERENCE_TIME_COLUMN, kind="stable").reset_index(drop=True)


def context_rows(training_set: pd.DataFrame, days: int) -> pd.DataFrame:
    """The training rows of the last `days` days of the training period."""
    since = training_set["tx_datetime"].max() - pd.Timedelta(days=days)
    return training_set[training_set["tx_datetime"] > since]


def _profile(rows: pd.DataFrame, feature_names: list[str], scores: np.ndarray) -> pd.DataFrame:
    profile = rows[feature_names].astype(np.float64).reset_index(drop=True)
    profile[REFERENCE_SCORE_COLUMN] = scores
    profile[REFERENCE_TIME_COLUMN] = pd.to_datetime(rows["tx_datetime"], utc=True).to_numpy()
    return profile


def log_reference(reference: pd.DataFrame) -> None:
    """Save the profile in the active MLflow run."""
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / REFERENCE_ARTIFACT_FILE
        reference.to_parquet(path, index=False)
        mlflow.log_artifact(str(path), artifact_path=REFERENCE_ARTIFACT_DIR)
