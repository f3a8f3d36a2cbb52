"""Training through the feature store registers an XGBoost model in MLflow, aliased champion."""

from __future__ import annotations

import json
from pathlib import Path

import mlflow
import mlflow.xgboost
import numpy as np
import pandas as pd
import pytest
import xgboost as xgb
from mlflow.tracking import MlflowClient

from contracts.registry import CHAMPION, REFERENCE_TIME_COLUMN, fluent_tracking, load_booster
from monitoring.reference import SCORE_COLUMN, feature_columns, load_reference
from training.train import holdout_split


def test_trained_model_is_registered_with_alias_champion(settings, trained_model) -> None:
    client = MlflowClient(tracking_uri=settings.mlflow_tracking_uri)
    champion = client.get_model_version_by_alias(settings.model_name, CHAMPION)
    assert str(champion.version) == trained_model.version
    assert champion.tags["feature_service"] == settings.feature_service
    run = client.get_run(champion.run_id)
    assert float(run.data.metrics["auc_roc"]) == pytest.approx(trained_model.metrics["auc_roc"])
    assert run.inputs.dataset_inputs, "the training set is logged as a dataset input"
    report = {Path(a.path).name for a in client.list_artifacts(champion.run_id, "evaluation")}
    assert {"index.html", "roc.png", "score_distribution.png"} <= report


def test_registered_model_is_stored_in_xgboost_format_and_predicts(settings, trained_model) -> None:
    with fluent_tracking(settings):  # MLflow's own loader, as a user would call it
        booster = mlflow.xgboost.load_model(f"models:/{settings.model_name}@{CHAMPION}")
        local = mlflow.artifacts.download_artifacts(f"models:/{settings.model_name}/{trained_model.version}")
    assert isinstance(booster, xgb.Booster)
    mlmodel = open(f"{local}/MLmodel").read()
    assert "model_format: ubj" in mlmodel and "pickle" not in mlmodel
    scores = booster.inplace_predict(np.zeros((3, len(booster.feature_names))))
    assert ((scores >= 0) & (scores <= 1)).all()


def test_model_beats_chance_on_the_later_holdout(trained_model) -> None:
    assert trained_model.metrics["auc_roc"] > 0.75
    assert trained_model.n_test > 0 and trained_model.n_train > trained_model.n_test


def test_model_inputs_are_the_feature_service_features(settings, trained_model) -> None:
    client = MlflowClient(tracking_uri=settings.mlflow_tracking_uri)
    path = client.download_artifacts(trained_model.run_id, "feature_service.json")
    logged = json.load(open(path))
    booster = load_booster(settings, trained_model.version)
    assert logged["feature_service"] == settings.feature_service
    assert booster.feature_names == logged["features"]


def test_holdout_split_leaves_a_label_delay_gap(transactions) -> None:
    split = holdout_split(transactions, delay_days=7, test_days=7)
    gap = split.test["tx_datetime"].min() - split.train["tx_datetime"].max()
    assert gap >= pd.Timedelta(days=7)


def test_holdout_split_rejects_too_short_a_history(transactions) -> None:
    short = transactions[transactions["tx_datetime"] < transactions["tx_datetime"].min() + pd.Timedelta(days=10)]
    with pytest.raises(ValueError, match="ingest more days"):
        holdout_split(short, delay_days=7, test_days=7)


def test_registered_version_carries_its_monitoring_reference(settings, trained_model) -> None:
    reference = load_reference(settings, trained_model.version)
    booster = load_booster(settings, trained_model.version)
    assert feature_columns(reference) == booster.feature_names
    # The holdout's rows: out-of-sample scores, as the model's own on the stored inputs.
    scored = reference[reference[SCORE_COLUMN].notna()]
    assert len(scored) == trained_model.n_test
    scores = booster.inplace_predict(scored[booster.feature_names].to_numpy(np.float64))
    np.testing.assert_allclose(scored[SCORE_COLUMN].to_numpy(), scores, rtol=1e-6)
    # Before them, in time order, the inputs of the training period's last week, without a score.
    context = reference[reference[SCORE_COLUMN].isna()]
    assert len(context) > 0 and context[REFERENCE_TIME_COLUMN].max() < scored[REFERENCE_TIME_COLUMN].min()
    assert context[REFERENCE_TIME_COLUMN].max() - context[REFERENCE_TIME_COLUMN].min() <= pd.Timedelta(days=7)
    assert reference[REFERENCE_TIME_COLUMN].is_monotonic_increasing


def test_monitoring_reference_is_refused_for_an_unknown_version(settings) -> None:
    with pytest.raises(ValueError, match="no reference profile"):
        load_reference(settings, "999")
