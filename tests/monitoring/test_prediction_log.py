"""Reading the prediction log the worker writes: columns and types, date filters."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pandas as pd

from contracts.events import ScoringEvent
from contracts.files import write_parquet_atomically
from contracts.prediction_log import BASE_COLUMNS, log_dir, plan_batch, prediction_table
from contracts.settings import Settings
from monitoring.prediction_log import read_prediction_log

START = pd.Timestamp("2024-03-01T00:00:00Z")


def events_every(minutes: int, count: int) -> list[ScoringEvent]:
    return [
        ScoringEvent(
            transaction={
                "transaction_id": f"read-{i}",
                "tx_datetime": (START + pd.Timedelta(minutes=i * minutes)).isoformat(),
                "customer_id": 1 + i % 3,
                "terminal_id": i % 50,
                "tx_amount": 5.0 + i,
                "device_id": None,
            },
            features={"amount": 5.0 + i},
            risk_score=0.1,
            decision="approve",
            model_version="1",
            latency_ms=1.0,
            scored_at=(START + pd.Timedelta(minutes=i * minutes, seconds=1)).isoformat(),
        )
        for i in range(count)
    ]


def write_log(settings: Settings, events: list[ScoringEvent]) -> None:
    for log_file in plan_batch(prediction_table([(f"{i}-0", e) for i, e in enumerate(events)])):
        write_parquet_atomically(log_dir(settings) / log_file.relative_path, log_file.table)


def test_reading_an_empty_log_gives_an_empty_frame_with_the_log_columns_and_types(tmp_path: Path) -> None:
    log = read_prediction_log(Settings(data_dir=tmp_path))
    assert log.empty and tuple(log.columns) == BASE_COLUMNS
    assert str(log["tx_datetime"].dtype).startswith("datetime64") and str(log["tx_datetime"].dt.tz) == "UTC"
    assert str(log["scored_at"].dt.tz) == "UTC"
    assert log["customer_id"].dtype == "int64" and log["risk_score"].dtype == "float64"


def test_reading_the_log_filters_by_payment_date(tmp_path: Path) -> None:
    local = Settings(data_dir=tmp_path)
    events = events_every(90, 48)  # 3 days
    write_log(local, events)
    days = [date(2024, 3, 1), date(2024, 3, 2), date(2024, 3, 3)]

    def logged_days(log: pd.DataFrame) -> set[date]:
        return set(log["tx_datetime"].dt.date)

    assert logged_days(read_prediction_log(local)) == set(days)
    assert logged_days(read_prediction_log(local, start=days[1])) == set(days[1:])
    assert logged_days(read_prediction_log(local, end=days[1])) == set(days[:2])
    assert logged_days(read_prediction_log(local, start="2024-03-02", end="2024-03-02")) == {days[1]}
    assert read_prediction_log(local, start=date(2024, 4, 1)).empty
    assert len(read_prediction_log(local)) == len(events)


def test_reading_selected_columns_keeps_the_order_columns_and_fills_absent_features(tmp_path: Path) -> None:
    local = Settings(data_dir=tmp_path)
    write_log(local, events_every(1, 5))
    log = read_prediction_log(local, columns=["risk_score", "amount", "not_logged"])
    assert set(log.columns) == {"tx_datetime", "stream_id", "risk_score", "amount"}
    assert log["amount"].tolist() == [5.0, 6.0, 7.0, 8.0, 9.0]
