"""The reference profile a model version was registered with (training/reference.py writes it):
what its inputs and scores looked like offline. The drift job compares the served window against it."""

from __future__ import annotations

import tempfile

import mlflow
import pandas as pd
from mlflow.exceptions import MlflowException

from contracts.registry import (
    REFERENCE_ARTIFACT_DIR,
    REFERENCE_ARTIFACT_FILE,
    REFERENCE_SCORE_COLUMN,
    REFERENCE_TIME_COLUMN,
    registry_client,
)
from contracts.settings import Settings

SCORE_COLUMN = REFERENCE_SCORE_COLUMN


def load_reference(settings: Settings, model_version: str) -> pd.DataFrame:
    """The profile saved with a registered model version."""
    try:
        run_id = registry_client(settings).get_model_version(settings.model_name, model_version).run_id
        with tempfile.TemporaryDirectory() as folder:
            path = mlflow.artifacts.download_artifacts(
                run_id=run_id,
                artifact_path=f"{REFERENCE_ARTIFACT_DIR}/{REFERENCE_ARTIFACT_FILE}",
                dst_path=folder,
                tracking_uri=settings.mlflow_tracking_uri,
            )
            return pd.read_parquet(path)
    except (MlflowException, OSError) as error:
        raise ValueError(
            f"{settings.model_name} v{model_version} has no reference profile in the registry "
            f"({error}); retrain it with `fraud train` to monitor it"
        ) from error


def feature_columns(reference: pd.DataFrame) -> list[str]:
    """The model inputs a profile holds (every column but the score and the payment time)."""
    return [column for column in reference.columns if column not in (SCORE_COLUMN, REFERENCE_TIME_COLUMN)]
