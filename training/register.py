"""The MLflow model registry: a trained model logged with its lineage and registered as a version.

Every version carries: the training set as an MLflow dataset input (digest, source, time
range, rows, frauds), the feature service and its exact feature list, the code version,
parameters, metrics, the gate's checks, the evaluation report, the signature, the
monitoring reference profile, and the model in XGBoost's own format (ubj). Registering
does not deploy: see training/lifecycle.py.
"""

from __future__ import annotations

import json
import logging
import subprocess
from dataclasses import asdict, dataclass

import mlflow
import mlflow.xgboost
import numpy as np
import pandas as pd
import xgboost as xgb
from mlflow.data.pandas_dataset import from_pandas
from mlflow.entities.model_registry import ModelVersion
from mlflow.models import infer_signature

from contracts.registry import (
    MODEL_ARTIFACT,
    TRAINING_EXPERIMENT,
    VersionTag,
    experiment_id,
    fluent_tracking,
    registry_client,
)
from contracts.settings import REPO_ROOT, Settings
from training.reference import log_reference
from training.report import EvaluationReport, log_report_to_mlflow
from training.validate import GateCheck

log = logging.getLogger(__name__)


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


def code_version() -> str:
    """The git commit of the code that trains, or 'unknown' outside a git checkout."""
    result = subprocess.run(
        ["git", "-C", str(REPO_ROOT), "rev-parse", "HEAD"], capture_output=True, text=True, check=False
    )
    return result.stdout.strip() if result.returncode == 0 else "unknown"


def _lineage_tags(lineage: Lineage, digest: str) -> dict[str, str]:
    return {
        VersionTag.FEATURE_SERVICE: lineage.feature_service,
        VersionTag.FEATURES: json.dumps(lineage.feature_names),
        VersionTag.CODE_VERSION: lineage.code_version,
        VersionTag.DATA_DIGEST: digest,
        VersionTag.DATA_SOURCE: lineage.data_source,
        VersionTag.DATA_START: lineage.data_start,
        VersionTag.DATA_END: lineage.data_end,
        VersionTag.DATA_ROWS: str(lineage.data_rows),
        VersionTag.DATA_FRAUDS: str(lineage.data_frauds),
    }


@dataclass(frozen=True)
class CandidateRun:
    """What every training run logs, registered or not."""

    params: dict[str, object]
    metrics: dict[str, float]
    training_set: pd.DataFrame
    lineage: Lineage
    checks: list[GateCheck]
    report: EvaluationReport


def _log_run_contents(candidate: CandidateRun) -> str:
    """Log a candidate's run contents in the active run; returns the data set digest."""
    lineage = candidate.lineage
    mlflow.log_params({k: str(v) for k, v in candidate.params.items()})
    mlflow.log_metrics(candidate.metrics)
    mlflow.log_dict(
        {"feature_service": lineage.feature_service, "features": lineage.feature_names}, "feature_service.json"
    )
    mlflow.log_dict({"checks": [asdict(c) for c in candidate.checks]}, "gate.json")
    dataset = from_pandas(candidate.training_set, source=lineage.data_source, name="training_set", targets="is_fraud")
    mlflow.log_input(
        dataset,
        context="training",
        tags={
            "time_range": f"{lineage.data_start} .. {lineage.data_end}",
            "rows": str(lineage.data_rows),
            "frauds": str(lineage.data_frauds),
        },
    )
    log_report_to_mlflow(candidate.report)
    return dataset.digest


def log_rejected(settings: Settings, candidate: CandidateRun) -> str:
    """Keep a run of a candidate the gate rejected (no model version), for the record."""
    experiment = experiment_id(registry_client(settings), settings, TRAINING_EXPERIMENT)
    with fluent_tracking(settings), mlflow.start_run(experiment_id=experiment, tags={"gate": "failed"}) as run:
        mlflow.set_tags(_lineage_tags(candidate.lineage, _log_run_contents(candidate)))
    return run.info.run_id


def log_and_register(
    settings: Settings, booster: xgb.Booster, candidate: CandidateRun, reference: pd.DataFrame
) -> ModelVersion:
    """Log the run with its lineage and monitoring reference profile (training/reference.py),
    and register the model as a new version (not deployed)."""
    client = registry_client(settings)
    experiment = experiment_id(client, settings, TRAINING_EXPERIMENT)
    with fluent_tracking(settings), mlflow.start_run(experiment_id=experiment, tags={"gate": "passed"}) as run:
        tags = _lineage_tags(candidate.lineage, _log_run_contents(candidate))
        log_reference(reference)
        mlflow.set_tags(tags)
        sample = candidate.training_set[candidate.lineage.feature_names].head(100).astype(np.float64)
        signature = infer_signature(sample, booster.inplace_predict(sample.to_numpy()))
        info = mlflow.xgboost.log_model(
            booster,
            name=MODEL_ARTIFACT,
            model_format="ubj",
            signature=signature,
            registered_model_name=settings.model_name,
            # Listing requirements ourselves skips MLflow's slow dependency inference.
            pip_requirements=[f"xgboost=={xgb.__version__}"],
        )
    version = str(info.registered_model_version)
    for key, value in tags.items():
        client.set_model_version_tag(settings.model_name, version, key, value)
    log.info("registered %s version %s (run %s)", settings.model_name, version, run.info.run_id)
    return client.get_model_version(settings.model_name, version)
