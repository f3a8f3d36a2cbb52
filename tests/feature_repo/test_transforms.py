"""The transforms on their own: state tables, the online state update, request-time features."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from feature_repo.transforms import (
    NO_DEVICE_HASH,
    STATE_STAMP_OFFSET,
    customer_request_features,
    customer_state_batches,
    device_hash,
    device_profile_table,
    entity_frame,
    entity_row,
    next_customer_state,
    terminal_request_features,
    terminal_state_batches,
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


def table(batches) -> pd.DataFrame:
    return pa.Table.from_batches(list(batches)).to_pandas()


def seconds(day: float) -> int:
    return int((T0 + pd.Timedelta(days=day)).timestamp())


def test_customer_state_row_holds_the_payment_and_is_stamped_after_it() -> None:
    history = tx(
        [(0.5, 1, 9, 10.0, 0), (31.0, 1, 9, 20.0, 0), (31.25, 1, 9, 30.0, 0), (1.0, 2, 9, 5.0, 0)],
        device=["a", "b", None, "a"],
    )
    state = table(customer_state_batches(history)).sort_values("event_timestamp")
    last = state[state["customer_id"] == 1].iloc[-1]
    assert last["event_timestamp"] == T0 + pd.Timedelta(days=31.25) + STATE_STAMP_OFFSET
    # The day-0.5 payment is more than 30 days before: it left the state.
    assert list(last["recent_tx_epoch_seconds"]) == [seconds(31.0), seconds(31.25)]
    assert list(last["recent_tx_amounts"]) == [20.0, 30.0]
    assert list(last["recent_tx_device_hashes"]) == [device_hash("b"), NO_DEVICE_HASH]
    assert len(state) == len(history)


def test_payments_of_one_customer_at_one_instant_share_one_state() -> None:
    # Two rows with one stamp: a point-in-time join or a materialisation may pick either,
    # so both must hold both payments (and a later payment on the other customer's state none).
    history = tx([(1.0, 1, 9, 10.0, 0), (2.0, 1, 8, 20.0, 0), (2.0, 1, 7, 30.0, 0), (2.0, 2, 7, 40.0, 0)])
    state = table(customer_state_batches(history))
    tied = state[(state["customer_id"] == 1) & (state["event_timestamp"] == state["event_timestamp"].max())]
    assert len(tied) == 2
    for amounts in tied["recent_tx_amounts"]:
        assert sorted(amounts) == [10.0, 20.0, 30.0]
    assert [list(a) for a in state.loc[state["customer_id"] == 2, "recent_tx_amounts"]] == [[40.0]]


def test_online_state_update_equals_the_offline_state_row() -> None:
    history = tx([(0.5, 1, 9, 10.0, 0), (20.0, 1, 9, 20.0, 0), (31.0, 1, 9, 30.0, 0)], device=["a", "a", "b"])
    rows = table(customer_state_batches(history)).sort_values("event_timestamp").reset_index(drop=True)
    previous = {
        k: list(rows.loc[1, k]) for k in ("recent_tx_epoch_seconds", "recent_tx_amounts", "recent_tx_device_hashes")
    }
    online = next_customer_state(previous, seconds(31.0), 30.0, device_hash("b"))
    for key, value in online.items():
        assert value == list(rows.loc[2, key]), key


def test_terminal_label_rows_are_stamped_when_the_label_is_known() -> None:
    history = tx([(0.5, 1, 5, 10.0, 1), (2.0, 2, 5, 10.0, 0)])
    labels = table(terminal_state_batches(history, label_delay_days=7)).sort_values("event_timestamp")
    assert list(labels["event_timestamp"]) == [T0 + pd.Timedelta(days=7.5), T0 + pd.Timedelta(days=9)]
    assert list(labels.iloc[-1]["labelled_tx_frauds"]) == [1, 0]
    # Each label as the moment it became known: the delay is applied once, here.
    assert list(labels.iloc[-1]["label_known_epoch_seconds"]) == [seconds(7.5), seconds(9.0)]


def test_terminal_label_table_is_empty_without_labels() -> None:
    assert list(terminal_state_batches(tx([(0.5, 1, 5, 10.0, 1)]).drop(columns="is_fraud"), 7)) == []


def request(
    t: float,
    amount: float,
    times: list[float],
    amounts: list[float],
    hashes: list[int] | None = None,
    device: int = NO_DEVICE_HASH,
) -> dict:
    return {
        "tx_epoch_seconds": seconds(t),
        "tx_amount": amount,
        "device_hash": device,
        "recent_tx_epoch_seconds": [seconds(d) for d in times],
        "recent_tx_amounts": amounts,
        "recent_tx_device_hashes": hashes or [NO_DEVICE_HASH] * len(times),
    }


def test_customer_windows_include_the_current_payment_and_slide() -> None:
    inputs = pd.DataFrame([request(10.5, 30.0, [2.0, 9.75, 10.0], [5.0, 10.0, 20.0])])
    out = pd.DataFrame(customer_request_features(inputs)).iloc[0]
    assert out["customer_id_nb_tx_1day_window"] == 3  # 9.75, 10.0 and the payment itself
    assert out["customer_id_avg_amount_1day_window"] == pytest.approx(20.0)
    assert out["customer_id_nb_tx_7day_window"] == 3  # day 2.0 is 8.5 days back
    assert out["customer_id_nb_tx_30day_window"] == 4
    assert out["customer_id_avg_amount_30day_window"] == pytest.approx(16.25)
    assert out["amount_over_customer_avg_30day"] == pytest.approx(30.0 / (35.0 / 3), abs=1e-6)
    assert out["seconds_since_previous_tx"] == pytest.approx(0.5 * 86400)


def test_customer_without_state_counts_one_payment() -> None:
    inputs = pd.DataFrame(
        [
            {
                "tx_epoch_seconds": seconds(1.0),
                "tx_amount": 12.5,
                "device_hash": 7,
                "recent_tx_epoch_seconds": None,
                "recent_tx_amounts": None,
                "recent_tx_device_hashes": None,
            }
        ]
    )
    out = pd.DataFrame(customer_request_features(inputs)).iloc[0]
    assert out["customer_id_nb_tx_30day_window"] == 1
    assert out["customer_id_avg_amount_30day_window"] == pytest.approx(12.5)
    assert np.isnan(out["amount_over_customer_avg_30day"])
    assert np.isnan(out["seconds_since_previous_tx"])
    assert out["device_used_by_customer_30day"] == 0.0


def test_request_time_flags_and_device_history() -> None:
    saturday_3am = 1.125  # T0 + 1 day is Saturday; 03:00
    inputs = pd.DataFrame(
        [
            request(saturday_3am, 10.0, [0.5], [10.0], hashes=[device_hash("a")], device=device_hash("a")),
            request(0.75, 10.0, [0.5], [10.0], hashes=[device_hash("a")], device=device_hash("b")),
            request(0.75, 10.0, [0.5], [10.0], hashes=[device_hash("a")], device=NO_DEVICE_HASH),
        ]
    )
    out = pd.DataFrame(customer_request_features(inputs))
    assert out["tx_during_weekend"].tolist() == [1, 0, 0]
    assert out["tx_during_night"].tolist() == [1, 0, 0]
    assert out["device_used_by_customer_30day"].iloc[0] == 1.0
    assert out["device_used_by_customer_30day"].iloc[1] == 0.0
    assert np.isnan(out["device_used_by_customer_30day"].iloc[2])
    assert out["hour_gap_from_customer_usual"].iloc[1] == pytest.approx(6.5, abs=1e-6)  # 18:00 vs 12:00


def test_terminal_windows_sit_behind_the_label_delay() -> None:
    # Payments on days 1.5, 2.5, 3.0 and 3.5, labels known 7 days later.
    history = tx([(1.5, 1, 5, 1.0, 1), (2.5, 2, 5, 1.0, 0), (3.0, 3, 5, 1.0, 1), (3.5, 4, 5, 1.0, 1)])
    state = table(terminal_state_batches(history, label_delay_days=7)).sort_values("event_timestamp").iloc[-1]
    inputs = pd.DataFrame(
        [
            {
                "tx_epoch_seconds": seconds(10.0),
                "label_known_epoch_seconds": list(state["label_known_epoch_seconds"]),
                "labelled_tx_frauds": list(state["labelled_tx_frauds"]),
            }
        ]
    )
    out = pd.DataFrame(terminal_request_features(inputs)).iloc[0]
    # Known up to day 3.0 inclusive: day 3.5 is younger than the delay.
    assert out["terminal_id_nb_tx_1day_window"] == 2  # (2.0, 3.0]
    assert out["terminal_id_risk_1day_window"] == pytest.approx(0.5)
    assert out["terminal_id_nb_tx_7day_window"] == 3
    assert out["terminal_id_risk_7day_window"] == pytest.approx(2 / 3, abs=1e-6)


def test_device_profile_counts_customers_seen_before_the_day() -> None:
    history = tx(
        [(0.5, 1, 5, 1.0, 0), (2.5, 2, 5, 1.0, 0), (2.7, 1, 5, 1.0, 0), (3.5, 3, 5, 1.0, 0)],
        device=["dev-a", "dev-a", "dev-a", None],
    )
    profile = device_profile_table(history)
    at = {row.event_timestamp: row for row in profile.itertuples()}
    assert at[T0 + pd.Timedelta(days=1)].device_nb_customers == 1
    assert at[T0 + pd.Timedelta(days=3)].device_nb_customers == 2
    assert at[T0 + pd.Timedelta(days=3)].device_age_days == 3
    assert min(at) == T0 + pd.Timedelta(days=1)  # no row before first sight


def test_device_profile_is_empty_without_device_columns() -> None:
    assert device_profile_table(tx([(0.5, 1, 5, 1.0, 0)])).empty


def test_online_entity_row_matches_offline_entity_frame() -> None:
    history = tx([(0.123456, 7, 8, 12.34, 0)], device=["dev-x"])
    offline = entity_frame(history).iloc[0]
    online = entity_row(7, 8, "dev-x", history["tx_datetime"].iloc[0].to_pydatetime(), 12.34)
    for key, value in online.items():
        assert offline[key] == value, key
