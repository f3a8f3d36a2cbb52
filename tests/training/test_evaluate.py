"""The Handbook evaluation runs on any data in the contract: here, without device columns."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pandas as pd
import pytest

from contracts.settings import Settings
from data.raw_store import RawStore
from data.simulate import SimulationConfig, simulate_transactions
from feature_repo.pipeline import build_offline_tables
from feature_repo.store import apply_definitions, feature_store
from training.evaluate import evaluate_handbook


@pytest.fixture(scope="module")
def deviceless(tmp_path_factory: pytest.TempPathFactory, settings: Settings):
    tiny = Settings(data_dir=Path(tmp_path_factory.mktemp("no-devices")), redis_url=settings.redis_url)
    frame = simulate_transactions(
        SimulationConfig(
            n_customers=300, n_terminals=600, n_days=40, start_date=date(2023, 6, 1), seed=3, with_devices=False
        )
    )
    RawStore(tiny).ingest_frame(frame, source="no-devices")
    transactions = RawStore(tiny).load()
    build_offline_tables(tiny, transactions)
    store = feature_store(tiny)
    apply_definitions(store, tiny)
    return tiny, store, transactions


def test_evaluation_runs_without_device_columns(deviceless) -> None:
    tiny, store, transactions = deviceless
    assert "device_id" not in transactions.columns
    result = evaluate_handbook(tiny, store, transactions, pd.Timestamp("2023-06-10"), "xgboost")
    assert 0.5 < result["auc_roc"] <= 1.0
    assert result["n_test"] > 0
    assert Path(result["report"]).is_file()


def test_logistic_regression_handles_missing_device_features(deviceless) -> None:
    tiny, store, transactions = deviceless
    result = evaluate_handbook(tiny, store, transactions, pd.Timestamp("2023-06-10"), "logistic")
    assert 0.5 < result["auc_roc"] <= 1.0
