"""Expected failures end in one sentence and a non-zero exit, never a traceback, at any width."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

FRAUD = str(Path(sys.executable).parent / "fraud")


def fraud(world: Path, *args: str) -> subprocess.CompletedProcess:
    """A command on an empty world of its own (data dir, local registry), at 80 columns."""
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    env |= {"FRAUD_DATA_DIR": str(world), "COLUMNS": "80"}
    return subprocess.run([FRAUD, *args], cwd=world.parent, env=env, capture_output=True, text=True, timeout=300)


def one_sentence(result: subprocess.CompletedProcess) -> str:
    assert result.returncode != 0
    assert "Traceback" not in result.stderr and "Error:" not in result.stderr, result.stderr[-2000:]
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr  # not wrapped, not followed by anything
    assert lines[0].startswith("error: ")
    return lines[0]


@pytest.fixture()
def world(tmp_path: Path) -> Path:
    return tmp_path / "world"


def test_serve_without_a_registry_says_so_and_creates_none(world: Path) -> None:
    message = one_sentence(fraud(world, "serve", "--port", "1"))
    assert f"no registry at {world / 'mlflow.db'}" in message and "fraud train" in message
    assert not (world / "mlflow.db").exists()


def test_serve_and_score_file_without_a_champion_say_what_to_do(world: Path, tmp_path: Path) -> None:
    world.mkdir()
    MlflowClient(tracking_uri=f"sqlite:///{world / 'mlflow.db'}").search_registered_models()  # an empty registry
    for command in (["serve", "--port", "1"], ["score-file", str(_payments(tmp_path))]):
        message = one_sentence(fraud(world, *command))
        assert "no version of fraud_detector is champion" in message and "fraud model promote" in message


def test_model_list_on_an_empty_world_fails_without_creating_a_registry(world: Path) -> None:
    assert "no registry at" in one_sentence(fraud(world, "model", "list"))
    assert not (world / "mlflow.db").exists()


def test_materialize_before_build_says_to_build(world: Path) -> None:
    assert "run `fraud features build` first" in one_sentence(fraud(world, "features", "materialize"))


def test_materialize_and_train_before_apply_say_to_apply(world: Path, tmp_path: Path) -> None:
    simulated = tmp_path / "sim.parquet"
    made = fraud(world, "simulate", "--customers", "30", "--terminals", "60", "--days", "30", "--out", str(simulated))
    assert made.returncode == 0, made.stderr
    assert fraud(world, "ingest", str(simulated)).returncode == 0
    assert fraud(world, "features", "build").returncode == 0
    for command in (["features", "materialize"], ["train"]):
        assert "run `fraud features apply` first" in one_sentence(fraud(world, *command))


def _payments(folder: Path) -> Path:
    import pandas as pd

    path = folder / "payments.csv"
    pd.DataFrame(
        {
            "transaction_id": [1],
            "tx_datetime": ["2026-11-25T14:03:00Z"],
            "customer_id": [42],
            "terminal_id": [1337],
            "tx_amount": [87.5],
        }
    ).to_csv(path, index=False)
    return path
