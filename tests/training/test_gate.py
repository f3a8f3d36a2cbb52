"""The validation gate: each failing check stops registration and says what failed and by how much."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from mlflow.tracking import MlflowClient

from contracts.registry import RegistryUnavailable
from contracts.settings import Settings
from tests.support.registry import relayed_registry
from training import train as train_module
from training.models import fit_xgboost
from training.validate import GateFailed, check_training_data


def versions(settings: Settings) -> int:
    client = MlflowClient(tracking_uri=settings.mlflow_tracking_uri)
    return len(client.search_model_versions(f"name = '{settings.model_name}'"))


def strict(settings: Settings, **thresholds) -> Settings:
    return Settings(**{**settings.model_dump(), **thresholds})


def test_candidate_below_the_metric_threshold_is_not_registered(
    settings, feature_store, transactions, trained_model
) -> None:
    before = versions(settings)
    with pytest.raises(GateFailed) as failed:
        train_module.train_candidate(strict(settings, gate_min_average_precision=0.99), feature_store, transactions)
    assert versions(settings) == before
    check = next(c for c in failed.value.checks if c.name == "average_precision")
    assert not check.passed and check.threshold == 0.99
    assert f"short by {0.99 - check.value:.4g}" in str(failed.value)


def test_candidate_below_the_recall_threshold_is_not_registered(
    settings, feature_store, transactions, trained_model
) -> None:
    before = versions(settings)
    with pytest.raises(GateFailed, match="recall at the review threshold"):
        train_module.train_candidate(strict(settings, gate_min_recall_at_review=1.0), feature_store, transactions)
    assert versions(settings) == before


def test_candidate_worse_than_the_champion_is_not_registered(
    settings, feature_store, transactions, trained_model, monkeypatch
) -> None:
    def weak(x, y, names):  # a deliberately weak candidate: one shallow tree instead of the platform's model
        return fit_xgboost(x, y, names, {"objective": "binary:logistic", "max_depth": 1}, 1)

    monkeypatch.setattr(train_module, "fit_xgboost", weak)
    before = versions(settings)
    with pytest.raises(GateFailed) as failed:
        train_module.train_candidate(
            strict(settings, gate_min_average_precision=0.0, gate_min_recall_at_review=0.0), feature_store, transactions
        )
    assert versions(settings) == before
    regression = [c for c in failed.value.checks if c.name.startswith("no_regression") and not c.passed]
    assert regression and f"champion v{trained_model.version}" in regression[0].message
    assert "worse by" in regression[0].message


def test_rejected_candidate_is_kept_as_a_run_for_the_record(
    settings, feature_store, transactions, trained_model
) -> None:
    client = MlflowClient(tracking_uri=settings.mlflow_tracking_uri)
    with pytest.raises(GateFailed):
        train_module.train_candidate(strict(settings, gate_min_average_precision=0.99), feature_store, transactions)
    experiment = client.get_experiment_by_name("fraud-detection")
    runs = client.search_runs([experiment.experiment_id], "tags.gate = 'failed'")
    assert runs and "gate.json" in {a.path for a in client.list_artifacts(runs[0].info.run_id)}


def test_training_data_checks_catch_contract_and_range_problems(settings, transactions) -> None:
    names = ["amount", "terminal_id_risk_7day_window"]
    good = pd.DataFrame({"amount": [1.0, 2.0], "terminal_id_risk_7day_window": [0.0, 0.5], "is_fraud": [0, 1]})
    raw = transactions.head(2)
    assert all(c.passed for c in check_training_data(raw, good, names, strict(settings, gate_min_training_frauds=1)))
    bad = good.assign(terminal_id_risk_7day_window=[0.0, 1.5], amount=[1.0, np.inf])
    broken_raw = raw.assign(tx_amount=[-1.0, 2.0])
    checks = {
        c.name: c for c in check_training_data(broken_raw, bad, names, strict(settings, gate_min_training_frauds=5))
    }
    assert not checks["data_contract"].passed and "tx_amount" in checks["data_contract"].message
    assert not checks["features_finite"].passed and "amount" in checks["features_finite"].message
    assert not checks["features_in_range"].passed
    assert "terminal_id_risk_7day_window" in checks["features_in_range"].message
    assert not checks["training_frauds"].passed and "short by 4" in checks["training_frauds"].message


def test_a_registry_failing_during_the_gate_stops_training_instead_of_passing_it(
    settings, feature_store, transactions, trained_model
) -> None:
    """The no-regression check needs the champion: a registry that fails must not read as "no champion"."""
    before = versions(settings)
    with relayed_registry(settings) as (relayed, proxy):
        proxy.cut()
        with pytest.raises(RegistryUnavailable, match=r"registry at .* failed"):
            train_module.train_candidate(relayed, feature_store, transactions)
    assert versions(settings) == before
