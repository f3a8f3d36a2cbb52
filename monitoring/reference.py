"""The reference profile: what a model's inputs and scores looked like offline, kept with the model.

Training saves it in the model's MLflow run (artifact `reference/reference.parquet`):
one row per payment of the holdout period, the model's inputs exactly as the offline
store built them, and the model's score. The holdout, not the fitted rows, because its
scores are out of sample, as served scores are (scores on rows the trees were fitted on
sit closer to 0 and 1), and it is the period nearest to what the model will serve.
The drift job compares the served window against it.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
from mlflow.exceptions import MlflowException

from data.settings import Settings

ARTIFACT_DIR = "reference"
ARTIFACT_FILE = "reference.parquet"
SCORE_COLUMN = "risk_score"
SAMPLE_SEED = 0


def build_reference(feature_rows: pd.DataFrame, feature_names: list[str], scores: np.ndarray,
                    max_rows: int) -> pd.DataFrame:
    """Model inputs (float, NaN when missing) and scores, sampled down to `max_rows` rows."""
    reference = feature_rows[feature_names].astype(np.float64).reset_index(drop=True)
    reference[SCORE_COLUMN] = np.asarray(scores, dtype=np.float64)
    if len(reference) > max_rows:
        reference = reference.sample(n=max_rows, random_state=SAMPLE_SEED).reset_index(drop=True)
    return reference


def log_reference(reference: pd.DataFrame) -> None:
    """Save the profile in the active MLflow run."""
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / ARTIFACT_FILE
        reference.to_parquet(path, index=False)
        mlflow.log_artifact(str(path), artifact_path=ARTIFACT_DIR)


def load_reference(settings: Settings, model_version: str) -> pd.DataFrame:
    """The profile saved with a registered model version."""
    from training.register import configure_mlflow

    client = configure_mlflow(settings)
    try:
        run_id = client.get_model_version(settings.model_name, model_version).run_id
        with tempfile.TemporaryDirectory() as folder:
            path = mlflow.artifacts.download_artifacts(run_id=run_id, artifact_path=f"{ARTIFACT_DIR}/{ARTIFACT_FILE}",
                                                       dst_path=folder, tracking_uri=settings.mlflow_tracking_uri)
            return pd.read_parquet(path)
    except (MlflowException, OSError) as error:
        raise ValueError(f"{settings.model_name} v{model_version} has no reference profile in the registry "
                         f"({error}); retrain it with `fraud train` to monitor it") from error


def feature_columns(reference: pd.DataFrame) -> list[str]:
    """The model inputs a profile holds (every column but the score)."""
    return [column for column in reference.columns if column != SCORE_COLUMN]
