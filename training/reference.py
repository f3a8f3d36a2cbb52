"""The monitoring reference profile, saved with every registered version (monitoring reads it back).

One row per payment of the holdout period: the model's inputs exactly as the offline store
built them, and the model's score. The holdout, not the fitted rows, because its scores are
out of sample, as served scores are (scores on rows the trees were fitted on sit closer to
0 and 1), and it is the period nearest to what the model will serve.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd

from contracts.registry import REFERENCE_ARTIFACT_DIR, REFERENCE_ARTIFACT_FILE, REFERENCE_SCORE_COLUMN

SAMPLE_SEED = 0


def build_reference(
    feature_rows: pd.DataFrame, feature_names: list[str], scores: np.ndarray, max_rows: int
) -> pd.DataFrame:
    """Model inputs (float, NaN when missing) and scores, sampled down to `max_rows` rows."""
    reference = feature_rows[feature_names].astype(np.float64).reset_index(drop=True)
    reference[REFERENCE_SCORE_COLUMN] = np.asarray(scores, dtype=np.float64)
    if len(reference) > max_rows:
        reference = reference.sample(n=max_rows, random_state=SAMPLE_SEED).reset_index(drop=True)
    return reference


def log_reference(reference: pd.DataFrame) -> None:
    """Save the profile in the active MLflow run."""
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / REFERENCE_ARTIFACT_FILE
        reference.to_parquet(path, index=False)
        mlflow.log_artifact(str(path), artifact_path=REFERENCE_ARTIFACT_DIR)
