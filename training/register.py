"""The MLflow model registry: logging a trained model with its lineage, and the champion alias."""

from __future__ import annotations

import logging
import subprocess
from dataclasses import dataclass

import mlflow
import numpy as np
import pandas as pd
import xgboost as xgb
from mlflow.entities.model_registry import ModelVersion
from mlflow.models import infer_signature
from mlflow.tracking import MlflowClient

from data.settings import REPO_ROOT, Settings
from training.report import EvaluationReport, log_report_to_mlflow

log = logging.getLogger(__name__)

EXPERIMENT = "fraud-detection"
CHAMPION = "champion"


@dataclass(frozen=True)
class Lineage:
    """Where a model came from: its data, its features and its code."""

    feature_service: str
    feature_names: list[str]
    data_source: str
    data_start: str
    data_end: str
    code_version: str


def configure_mlflow(settings: Settings, experiment: str = EXPERIMENT) -> MlflowClient:
    """Point MLflow at the settings' tracking store and make sure the experiment exists."""
    mlflow.set_tracking_uri(settings.mlflow_tracking_uri)
    if mlflow.get_experiment_by_name(experiment) is None:
        local_store = settings.mlflow_tracking_uri.startswith(("sqlite:", "file:", "/"))
        # A local store keeps artifacts under FRAUD_DATA_DIR, not in the working directory.
        location = (settings.mlflow_artifacts_dir / experiment).as_uri() if local_store else None
        mlflow.create_experiment(experiment, artifact_location=location)
    mlflow.set_experiment(experiment)
    return MlflowClient(tracking_uri=settings.mlflow_tracking_uri)


def code_version() -> str:
    """The git commit of the code that trains, or 'unknown' outside a git checkout."""
    result = subprocess.run(["git", "-C", str(REPO_ROOT), "rev-parse", "HEAD"],
                            capture_output=True, text=True, check=False)
    return result.stdout.strip() if result.returncode == 0 else "unknown"


def log_and_register(settings: Settings, booster: xgb.Booster, *, params: dict[str, object],
                     metrics: dict[str, float], training_set: pd.DataFrame,
                     lineage: Lineage, report: EvaluationReport) -> ModelVersion:
    """Log the run (params, metrics, data set, lineage, evaluation report, model); register it."""
    client = configure_mlflow(settings)
    tags = {
        "feature_service": lineage.feature_service,
        "code_version": lineage.code_version,
        "data_start": lineage.data_start,
        "data_end": lineage.data_end,
    }
    with mlflow.start_run(tags=tags) as run:
        mlflow.log_params({k: str(v) for k, v in params.items()})
        mlflow.log_metrics(metrics)
        mlflow.log_dict({"feature_service": lineage.feature_service,
                         "features": lineage.feature_names}, "feature_service.json")
        dataset = mlflow.data.from_pandas(training_set, source=lineage.data_source,
                                          name="training_set", targets="is_fraud")
        mlflow.log_input(dataset, context="training")
        log_report_to_mlflow(report)
        sample = training_set[lineage.feature_names].head(100).astype(np.float64)
        signature = infer_signature(sample, booster.inplace_predict(sample.to_numpy()))
        info = mlflow.xgboost.log_model(
            booster, name="model", model_format="ubj", signature=signature,
            registered_model_name=settings.model_name,
            # Listing requirements ourselves skips MLflow's slow dependency inference.
            pip_requirements=[f"xgboost=={xgb.__version__}"],
        )
    version = client.get_model_version(settings.model_name, str(info.registered_model_version))
    for key, value in tags.items():
        client.set_model_version_tag(settings.model_name, version.version, key, value)
    log.info("registered %s version %s (run %s)", settings.model_name, version.version, run.info.run_id)
    return version


def set_champion(settings: Settings, version: str) -> None:
    """Point the `champion` alias (what the scorer serves) at `version`."""
    configure_mlflow(settings).set_registered_model_alias(settings.model_name, CHAMPION, version)


def get_champion(settings: Settings) -> ModelVersion:
    """The model version the `champion` alias points at."""
    return configure_mlflow(settings).get_model_version_by_alias(settings.model_name, CHAMPION)
