"""The registry's conventions on a real MLflow store: explicit URIs, nothing left process-wide."""

from __future__ import annotations

import os
from pathlib import Path

import mlflow
import mlflow.xgboost
import numpy as np
import pandas as pd
import pytest
import xgboost as xgb

from contracts.registry import alias_version, experiment_id, fluent_tracking, load_booster, registry_client
from contracts.settings import Settings


@pytest.fixture()
def local(tmp_path: Path) -> Settings:
    return Settings(data_dir=tmp_path, mlflow_tracking_uri=f"sqlite:///{tmp_path / 'registry.db'}")


def test_experiments_are_created_once_with_artifacts_under_the_data_dir(local: Settings) -> None:
    client = registry_client(local)
    first = experiment_id(client, local, "fraud-test")
    assert experiment_id(client, local, "fraud-test") == first
    location = client.get_experiment(first).artifact_location
    assert location == (local.data_dir / "mlartifacts" / "fraud-test").as_uri()


def test_an_alias_that_points_nowhere_yet_reads_as_none(local: Settings) -> None:
    assert alias_version(registry_client(local), local) is None


def test_fluent_tracking_points_mlflow_at_the_settings_and_puts_everything_back(
    local: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("MLFLOW_REGISTRY_URI", raising=False)
    before_environment = {k: os.environ.get(k) for k in ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI")}
    before = mlflow.get_tracking_uri(), mlflow.get_registry_uri()
    with fluent_tracking(local):
        assert mlflow.get_tracking_uri() == local.mlflow_tracking_uri
        assert mlflow.get_registry_uri() == local.mlflow_tracking_uri
        with mlflow.start_run(experiment_id=experiment_id(registry_client(local), local, "fraud-test")) as run:
            mlflow.log_metric("m", 1.0)
    assert (mlflow.get_tracking_uri(), mlflow.get_registry_uri()) == before
    assert {k: os.environ.get(k) for k in before_environment} == before_environment
    assert registry_client(local).get_run(run.info.run_id).data.metrics == {"m": 1.0}


def test_fluent_tracking_puts_things_back_when_the_block_fails(local: Settings) -> None:
    before = mlflow.get_tracking_uri()
    with pytest.raises(RuntimeError, match="boom"), fluent_tracking(local):
        raise RuntimeError("boom")
    assert mlflow.get_tracking_uri() == before


def test_a_version_loads_from_the_settings_registry_whatever_the_process_points_at(
    local: Settings, settings: Settings
) -> None:
    """The session's environment points MLflow at its PostgreSQL registry; `local` is elsewhere."""
    assert mlflow.get_registry_uri() != local.mlflow_tracking_uri
    frame = pd.DataFrame({"a": [0.0, 1.0, 2.0, 3.0] * 10, "is_fraud": [0, 0, 1, 1] * 10})
    booster = xgb.train({"objective": "binary:logistic"}, xgb.DMatrix(frame[["a"]], label=frame["is_fraud"]), 2)
    with fluent_tracking(local), mlflow.start_run(experiment_id=experiment_id(registry_client(local), local, "t")):
        mlflow.xgboost.log_model(
            booster, name="model", registered_model_name=local.model_name, pip_requirements=["xgboost"]
        )
    loaded = load_booster(local, "1")
    assert loaded.inplace_predict(np.array([[3.0]])) == pytest.approx(booster.inplace_predict(np.array([[3.0]])))
