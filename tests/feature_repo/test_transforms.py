"""Exact feature values on hand-built histories: windows, label delay, request-time features."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from feature_repo.transforms import (
    customer_spending_table,
    device_profile_table,
    entity_frame,
    entity_row,
    request_time_features,
    terminal_risk_table,
)

T0 = pd.Timestamp("2024-03-01", tz="UTC")  # a Friday


def tx(rows: list[tuple[float, int, int, float, int]], device: list[str | None] | None = None) -> pd.DataFrame:
    """(days after T0, customer, terminal, amount, is_fraud) -> a raw transactions frame."""
    frame = pd.DataFrame(rows, columns=["day", "customer_id", "terminal_id", "tx_amount", "is_fraud"])
    frame.insert(0, "transaction_id", [str(i) for i in range(len(frame))])
    frame.insert(1, "tx_datetime", T0 + pd.to_timedelta(frame.pop("day"), unit="D"))
    if device is not None:
        frame["device_id"] = device
    return frame


def snapshot(table: pd.DataFrame, key: str, entity: int | str, day: int) -> pd.Series:
    at = T0 + pd.Timedelta(days=day)
    row = table[(table[key] == entity) & (table["event_timestamp"] == at)]
    assert len(row) == 1, f"expected one snapshot of {entity} at day {day}"
    return row.iloc[0]


def test_customer_snapshot_covers_only_days_before_it() -> None:
    history = tx([(0.5, 1, 9, 10.00, 0), (1.25, 1, 9, 20.00, 0), (1.75, 1, 9, 40.50, 0), (2.5, 1, 9, 99.99, 0)])
    table = customer_spending_table(history)
    day2 = snapshot(table, "customer_id", 1, 2)  # sees days 0 and 1, not the payment on day 2
    assert day2["customer_id_nb_tx_1day_window"] == 2
    assert day2["customer_id_avg_amount_1day_window"] == pytest.approx(30.25, abs=1e-9)
    assert day2["customer_id_nb_tx_7day_window"] == 3
    assert day2["customer_id_avg_amount_7day_window"] == pytest.approx(23.50, abs=1e-9)
    first = snapshot(table, "customer_id", 1, 1)
    assert first["customer_id_nb_tx_30day_window"] == 1
    assert first["customer_id_avg_amount_30day_window"] == pytest.approx(10.00, abs=1e-9)


def test_customer_window_drops_days_that_slid_out() -> None:
    history = tx([(0.5, 1, 9, 10.00, 0), (8.5, 1, 9, 30.00, 0), (9.5, 2, 9, 1.00, 0)])
    table = customer_spending_table(history)
    day9 = snapshot(table, "customer_id", 1, 9)  # 7-day window = days 2..8: only the day-8 payment
    assert day9["customer_id_nb_tx_7day_window"] == 1
    assert day9["customer_id_avg_amount_7day_window"] == pytest.approx(30.00, abs=1e-9)
    assert day9["customer_id_nb_tx_30day_window"] == 2
    assert day9["customer_id_avg_amount_30day_window"] == pytest.approx(20.00, abs=1e-9)
    quiet = snapshot(table, "customer_id", 2, 5)  # no payment yet: zero count, zero average
    assert quiet["customer_id_nb_tx_30day_window"] == 0
    assert quiet["customer_id_avg_amount_30day_window"] == 0.0


def test_terminal_risk_ignores_labels_younger_than_the_delay() -> None:
    history = tx([(0.5, 1, 5, 10.0, 1), (1.5, 2, 5, 10.0, 0), (6.5, 3, 5, 10.0, 1), (9.5, 4, 6, 1.0, 0)])
    table = terminal_risk_table(history, label_delay_days=7)
    day8 = snapshot(table, "terminal_id", 5, 8)  # knows days [.., 1): only the day-0 fraud
    assert day8["terminal_id_nb_tx_1day_window"] == 1
    assert day8["terminal_id_risk_1day_window"] == pytest.approx(1.0)
    assert day8["terminal_id_nb_tx_7day_window"] == 1
    day9 = snapshot(table, "terminal_id", 5, 9)  # days [.., 2): fraud on day 0, legit on day 1
    assert day9["terminal_id_nb_tx_7day_window"] == 2
    assert day9["terminal_id_risk_7day_window"] == pytest.approx(0.5)
    assert day9["terminal_id_risk_1day_window"] == pytest.approx(0.0)  # day 1 alone: no fraud
    day10 = snapshot(table, "terminal_id", 5, 10)  # the day-6 fraud is still inside the delay
    assert day10["terminal_id_nb_tx_30day_window"] == 2
    assert day10["terminal_id_risk_30day_window"] == pytest.approx(0.5)


def test_terminal_risk_is_missing_without_labels() -> None:
    history = tx([(0.5, 1, 5, 10.0, 1), (9.5, 2, 5, 10.0, 0)]).drop(columns="is_fraud")
    table = terminal_risk_table(history, label_delay_days=7)
    assert table["terminal_id_risk_7day_window"].isna().all()
    assert snapshot(table, "terminal_id", 5, 9)["terminal_id_nb_tx_7day_window"] == 1


def test_device_profile_counts_customers_seen_before_the_day() -> None:
    history = tx([(0.5, 1, 5, 1.0, 0), (2.5, 2, 5, 1.0, 0), (2.7, 1, 5, 1.0, 0), (3.5, 3, 5, 1.0, 0)],
                 device=["dev-a", "dev-a", "dev-a", None])
    table = device_profile_table(history)
    assert set(table["device_id"]) == {"dev-a"}
    assert snapshot(table, "device_id", "dev-a", 1)["device_nb_customers"] == 1
    day3 = snapshot(table, "device_id", "dev-a", 3)
    assert day3["device_nb_customers"] == 2
    assert day3["device_age_days"] == 3
    assert table["event_timestamp"].min() == T0 + pd.Timedelta(days=1)  # no row before first sight


def test_device_profile_is_empty_without_device_columns() -> None:
    table = device_profile_table(tx([(0.5, 1, 5, 1.0, 0)]))
    assert table.empty
    assert list(table.columns) == ["device_id", "event_timestamp", "device_nb_customers", "device_age_days"]


def test_request_time_features_flag_weekend_night_and_amount_ratio() -> None:
    saturday_3am = int(pd.Timestamp("2024-03-02 03:00", tz="UTC").timestamp())
    friday_noon = int(pd.Timestamp("2024-03-01 12:00", tz="UTC").timestamp())
    inputs = pd.DataFrame({"tx_amount": [50.0, 12.5], "tx_epoch_seconds": [saturday_3am, friday_noon],
                           "customer_id_avg_amount_30day_window": [25.0, None]})
    out = request_time_features(inputs)
    assert out["tx_during_weekend"].tolist() == [1, 0]
    assert out["tx_during_night"].tolist() == [1, 0]
    assert out["tx_hour"].tolist() == [3, 12]
    assert out["amount_over_customer_avg_30day"].iloc[0] == pytest.approx(2.0)
    assert np.isnan(out["amount_over_customer_avg_30day"].iloc[1])  # unknown customer: no ratio


def test_online_entity_row_matches_offline_entity_frame() -> None:
    history = tx([(0.123456, 7, 8, 12.34, 0)], device=[None])
    offline = entity_frame(history).iloc[0]
    online = entity_row(7, 8, None, history["tx_datetime"].iloc[0].to_pydatetime(), 12.34)
    for key, value in online.items():
        assert offline[key] == value, key
