"""`fraud features materialize` and `fraud features refresh` as an operator runs them: a fresh
store is filled whatever the data's dates, each view says what it loaded, and what cannot be
loaded fails in one sentence."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import date
from pathlib import Path

import pandas as pd
import pytest
import yaml

from contracts.settings import Settings
from data.simulate import SimulationConfig, simulate_transactions
from feature_repo.store import feature_store

FRAUD = str(Path(sys.executable).parent / "fraud")
START = date(2023, 3, 1)  # years before today: Feast's own first load (now minus the TTL) would load nothing
DAYS = 20


def fraud(*args: str, data_dir: Path, redis_url: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "FRAUD_DATA_DIR": str(data_dir), "REDIS_URL": redis_url}
    return subprocess.run([FRAUD, *args], env=env, capture_output=True, text=True, timeout=300)


def simulated(days: int = DAYS) -> pd.DataFrame:
    return simulate_transactions(
        SimulationConfig(n_customers=40, n_terminals=80, n_days=days, start_date=START, seed=21)
    )


def loaded_rows(stdout: str) -> dict[str, tuple[int, int]]:
    """view -> (entities with rows, served online), from the printed table."""
    rows = {}
    for line in stdout.splitlines():
        cells = [cell.strip() for cell in line.strip("│┃ ").split("│")]
        if len(cells) == 5 and cells[0] in ("customer_state", "terminal_labels", "device_profile"):
            rows[cells[0]] = (int(cells[3].replace(",", "")), int(cells[4].replace(",", "")))
    return rows


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory, second_redis_url: str) -> tuple[Path, pd.DataFrame]:
    """A world ingested, built and applied with the CLI, nothing loaded online yet."""
    data_dir = tmp_path_factory.mktemp("materialize")
    frame = simulated()
    raw = data_dir / "payments.parquet"
    frame.to_parquet(raw, index=False)
    for step in (("ingest", str(raw)), ("features", "build"), ("features", "apply")):
        result = fraud(*step, data_dir=data_dir, redis_url=second_redis_url)
        assert result.returncode == 0, result.stderr
    return data_dir, frame


def test_a_fresh_store_is_filled_from_old_data_and_a_second_load_has_nothing_new(built, second_redis_url) -> None:
    data_dir, frame = built
    end = (pd.Timestamp(START) + pd.Timedelta(days=DAYS)).isoformat()
    first = fraud("features", "materialize", "--end", end, data_dir=data_dir, redis_url=second_redis_url)
    assert first.returncode == 0, first.stderr
    loaded = loaded_rows(first.stdout)
    assert loaded["customer_state"] == (frame["customer_id"].nunique(),) * 2
    assert loaded["terminal_labels"][0] == loaded["terminal_labels"][1] > 0
    assert loaded["device_profile"][0] == loaded["device_profile"][1] > 0
    store = feature_store(Settings(data_dir=data_dir, redis_url=second_redis_url))
    customers = sorted(int(c) for c in frame["customer_id"].unique())
    online = store.get_online_features(
        features=["customer_state:recent_tx_amounts"], entity_rows=[{"customer_id": c} for c in customers]
    ).to_dict()["recent_tx_amounts"]
    assert all(amounts for amounts in online)
    again = fraud("features", "materialize", "--end", end, data_dir=data_dir, redis_url=second_redis_url)
    assert again.returncode == 0, again.stderr
    assert "already up to date" in again.stdout


def test_an_end_before_the_data_fails_in_one_sentence(built, second_redis_url) -> None:
    data_dir, _ = built
    result = fraud(
        "features", "materialize", "--start", "2020-01-01", "--end", "2021-01-01",
        data_dir=data_dir, redis_url=second_redis_url,
    )  # fmt: skip
    assert result.returncode != 0
    assert "the offline tables start at 2023-03-01" in result.stderr and "pass a later --end" in result.stderr


def test_a_start_after_the_end_is_refused(built, second_redis_url) -> None:
    data_dir, _ = built
    result = fraud(
        "features", "materialize", "--start", "2023-03-05", "--end", "2023-03-02",
        data_dir=data_dir, redis_url=second_redis_url,
    )  # fmt: skip
    assert result.returncode != 0 and "is not before --end" in result.stderr


def test_materialize_without_tables_says_to_build_them(tmp_path: Path, second_redis_url: str) -> None:
    result = fraud("features", "materialize", data_dir=tmp_path, redis_url=second_redis_url)
    assert result.returncode != 0 and "run `fraud features build` first" in result.stderr


def test_refresh_takes_the_inbox_rejects_a_bad_file_and_extends_day_by_day(
    tmp_path: Path, second_redis_url: str
) -> None:
    frame = simulated(DAYS + 1)
    last_day = frame["tx_datetime"] >= pd.Timestamp(START, tz="UTC") + pd.Timedelta(days=DAYS)
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    frame[~last_day].to_parquet(inbox / "history.parquet", index=False)
    broken = frame[last_day].head(5).assign(tx_amount=-1.0)
    broken.to_csv(inbox / "broken.csv", index=False)
    first = fraud("features", "refresh", data_dir=tmp_path, redis_url=second_redis_url)
    assert first.returncode == 1  # a rejected file is the operator's to fix
    assert (
        "rejected broken.csv" in first.stderr
        and "tx_amount" in (inbox / "rejected" / "broken.csv.report.txt").read_text()
    )
    assert "full (the offline tables were never built" in first.stdout
    assert (inbox / "done" / "history.parquet").is_file() and not list(inbox.glob("*.*"))
    assert loaded_rows(first.stdout)["customer_state"][1] == frame.loc[~last_day, "customer_id"].nunique()

    frame[last_day].to_parquet(inbox / "day.parquet", index=False)
    second = fraud("features", "refresh", data_dir=tmp_path, redis_url=second_redis_url)
    assert second.returncode == 0, second.stderr
    assert "incremental build" in second.stdout
    customers, online = loaded_rows(second.stdout)["customer_state"]
    assert customers == online == frame.loc[last_day, "customer_id"].nunique()


def test_compose_runs_the_daily_job_on_the_stack_s_data_and_redis() -> None:
    compose = yaml.safe_load((Path(__file__).resolve().parents[2] / "docker-compose.yml").read_text())
    job, worker = compose["services"]["features"], compose["services"]["worker"]
    assert "fraud features refresh" in " ".join(job["command"]) and "sleep" in " ".join(job["command"])
    assert job["volumes"] == worker["volumes"] and job["environment"] == worker["environment"]
    assert job["restart"] == "unless-stopped"
