"""The MLflow model registry: a trained model logged with its lineage and registered as a version.

Every version carries: the training set as an MLflow dataset input (digest, source, time
range, rows, frauds), the feature service and its exact feature list, the code version,
parameters, metrics, the gate's checks, the evaluation report, the signature, and the
model in XGBoost's own format (ubj). Registering does not deploy: see training/lifecycle.py.
"""

from __future__ import annotations

import json
import logging
import subprocess
from dataclasses import asdict, dataclass

import mlflow
import numpy as np
import pandas as pd
import xgboost as xgb
from mlflow.entities.model_registry import ModelVersion
from mlflow.models import infer_signature
from mlflow.tracking import MlflowClient

from data.settings import REPO_ROOT, Settings
from monitoring.reference import log_reference
from training.report import EvaluationReport, log_report_to_mlflow
from training.validate import Check

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
    data_rows: int
    data_frauds: int
    code_version: str


def configure_mlflow(settings: Settings, experiment: str = EXPERIMENT) -> MlflowClient:
    """Point MLflow at the settings' tracking store and make sure the experiment exists."""
    mlflow.set_tracking_uri(settings.mlflow_tracking_uri)
    if mlflow.get_experiment_by_name(experiment) is None:
        # Without a tracking server, artifacts live under FRAUD_DATA_DIR, not in the
        # working directory (MLflow's default).
        served = settings.mlflow_tracking_uri.startswith(("http://", "https://"))
        location = None if served else (settings.mlflow_artifacts_dir / experiment).as_uri()
        mlflow.create_experiment(experiment, artifact_location=location)
    mlflow.set_experiment(experiment)
    return MlflowClient(tracking_uri=settings.mlflow_tracking_uri)


def code_version() -> str:
    """The git commit of the code that trains, or 'unknown' outside a git checkout."""
    result = subprocess.run(["git", "-C", str(REPO_ROOT), "rev-parse", "HEAD"],
                            capture_output=True, text=True, check=False)
    return result.stdout.strip() if result.returncode == 0 else "unknown"


def _lineage_tags(lineage: Lineage, digest: str) -> dict[str, str]:
    return {
        "feature_service": lineage.feature_service,
        "features": json.dumps(lineage.feature_names),
        "code_version": lineage.code_version,
        "data_digest": digest,
        "data_source": lineage.data_source,
        "data_start": lineage.data_start,
        "data_end": lineage.data_end,
        "data_rows": str(lineage.data_rows),
        "data_frauds": str(lineage.data_frauds),
    }


def _log_run_contents(training_set: pd.DataFrame, lineage: Lineage, params: dict[str, object],
                      metrics: dict[str, float], checks: list[Check], report: EvaluationReport) -> str:
    """What every training run logs, registered or not; returns the data set digest."""
    mlflow.log_params({k: str(v) for k, v in params.items()})
    mlflow.log_metrics(metrics)
    mlflow.log_dict({"feature_service": lineage.feature_service, "features": lineage.feature_names},
                    "feature_service.json")
    mlflow.log_dict({"checks": [asdict(c) for c in checks]}, "gate.json")
    dataset = mlflow.data.from_pandas(training_set, source=lineage.data_source, name="training_set",
                                      targets="is_fraud")
    mlflow.log_input(dataset, context="training", tags={
        "time_range": f"{lineage.data_start} .. {lineage.data_end}",
        "rows": str(lineage.data_rows), "frauds": str(lineage.data_frauds)})
    log_report_to_mlflow(report)
    return dataset.digest


def log_rejected(settings: Settings, *, params: dict[str, object], metrics: dict[str, float],
                 training_set: pd.DataFrame, lineage: Lineage, checks: list[Check],
                 report: EvaluationReport) -> str:
    """Keep a run of a candidate the gate rejected (no model version), for the record."""
    configure_mlflow(settings)
    with mlflow.start_run(tags={"gate": "failed"}) as run:
        digest = _log_run_contents(training_set, lineage, params, metrics, checks, report)
        mlflow.set_tags(_lineage_tags(lineage, digest))
    return run.info.run_id


def log_and_register(settings: Settings, booster: xgb.Booster, *, params: dict[str, object],
                     metrics: dict[str, float], training_set: pd.DataFrame, lineage: Lineage,
                     checks: list[Check], report: EvaluationReport, reference: pd.DataFrame) -> ModelVersion:
    """Log the run with its lineage and monitoring reference profile (monitoring/reference.py),
    and register the model as a new version (not deployed)."""
    client = configure_mlflow(settings)
    with mlflow.start_run(tags={"gate": "passed"}) as run:
        digest = _log_run_contents(training_set, lineage, params, metrics, checks, report)
        log_reference(reference)
        tags = _lineage_tags(lineage, digest)
        mlflow.set_tags(tags)
        sample = training_set[lineage.feature_names].head(100).astype(np.float64)
        signature = infer_signature(sample, booster.inplace_predict(sample.to_numpy()))
        info = mlflow.xgboost.log_model(
            booster, name="model", model_format="ubj", signature=signature,
            registered_model_name=settings.model_name,
            # Listing requirements ourselves skips MLflow's slow dependency inference.
            pip_requirements=[f"xgboost=={xgb.__version__}"],
        )
    version = str(info.registered_model_version)
    for key, value in tags.items():
        client.set_model_version_tag(settings.model_name, version, key, value)
    log.info("registered %s version %s (run %s)", settings.model_name, version, run.info.run_id)
    return client.get_model_version(settings.model_name, version)
