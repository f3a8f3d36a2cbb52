"""The `fraud` command line, run as a user runs it (a real process)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pandas as pd
import pytest
from mlflow.tracking import MlflowClient

FRAUD = str(Path(sys.executable).parent / "fraud")


def fraud(*args: str, data_dir: Path | None = None) -> subprocess.CompletedProcess:
    env = dict(os.environ)
    if data_dir is not None:
        env["FRAUD_DATA_DIR"] = str(data_dir)
    return subprocess.run([FRAUD, *args], env=env, capture_output=True, text=True, timeout=300)


def test_ingest_rejects_a_broken_file_with_a_report_and_stores_nothing(tmp_path: Path) -> None:
    bad = tmp_path / "bad.csv"
    pd.DataFrame(
        {
            "transaction_id": [1, 2, 2],
            "tx_datetime": ["2024-01-01T10:00:00"] * 3,
            "customer_id": [1, 2, 3],
            "terminal_id": [4, 5, 6],
            "tx_amount": [10.0, -5.0, 3.0],
        }
    ).to_csv(bad, index=False)
    result = fraud("ingest", str(bad), data_dir=tmp_path / "store")
    assert result.returncode != 0
    assert "non_negative" in result.stderr and "unique" in result.stderr
    assert "tx_amount" in result.stderr and "transaction_id" in result.stderr
    assert not (tmp_path / "store" / "raw").exists() or not any((tmp_path / "store" / "raw").rglob("*"))


def test_ingest_accepts_a_clean_file(tmp_path: Path) -> None:
    good = tmp_path / "good.parquet"
    pd.DataFrame(
        {
            "transaction_id": ["a", "b"],
            "tx_datetime": pd.to_datetime(["2024-01-01", "2024-01-02"]),
            "customer_id": [1, 2],
            "terminal_id": [4, 5],
            "tx_amount": [10.0, 0.0],
        }
    ).to_parquet(good)
    result = fraud("ingest", str(good), data_dir=tmp_path / "store")
    assert result.returncode == 0, result.stderr
    assert "stored 2 transactions" in result.stdout
    assert len(list((tmp_path / "store" / "raw").rglob("*.parquet"))) == 1


def test_ingest_of_a_missing_file_says_so(tmp_path: Path) -> None:
    result = fraud("ingest", str(tmp_path / "nope.csv"), data_dir=tmp_path / "store")
    assert result.returncode != 0
    assert "nope.csv" in result.stderr


def test_evaluate_handbook_prints_the_metrics_as_json(settings, transactions) -> None:
    start = (transactions["tx_datetime"].min().date() + timedelta(days=14)).isoformat()
    result = fraud("evaluate", "--protocol", "handbook", "--train-start", start, "--json")
    assert result.returncode == 0, result.stderr[-3000:]
    metrics = json.loads(result.stdout)
    assert {"auc_roc", "average_precision", "card_precision_at_100", "n_train", "n_test"} <= set(metrics)
    assert 0.5 < metrics["auc_roc"] <= 1.0
    assert metrics["n_train"] > metrics["n_test"] > 0
    report = Path(metrics["report"])
    assert report.is_file() and (report.parent / "roc.png").is_file()
    client = MlflowClient(tracking_uri=settings.mlflow_tracking_uri)
    run = client.get_run(metrics["mlflow_run_id"])
    assert run.data.metrics["auc_roc"] == pytest.approx(metrics["auc_roc"])
    logged = {Path(a.path).name for a in client.list_artifacts(run.info.run_id, "evaluation")}
    assert {"index.html", "roc.png", "precision_recall.png", "scenarios.png"} <= logged


def test_evaluate_rejects_a_training_week_outside_the_data(settings, transactions) -> None:
    result = fraud("evaluate", "--protocol", "handbook", "--train-start", "2030-01-01", "--json")
    assert result.returncode != 0
    assert "training week" in result.stderr
