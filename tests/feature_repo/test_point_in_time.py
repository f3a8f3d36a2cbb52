"""Point-in-time correctness through real Feast: exact values on hand-built histories, and
agreement with an independent Handbook-style computation (pandas rolling windows)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from contracts.settings import Settings
from feature_repo.pipeline import build_offline_tables
from feature_repo.store import apply_definitions, feature_store
from training.dataset import build_training_set

T0 = pd.Timestamp("2024-03-04", tz="UTC")  # a Monday


def at(days: float, hours: float = 0, seconds: float = 0) -> pd.Timestamp:
    return T0 + pd.Timedelta(days=days, hours=hours, seconds=seconds)


# id, time, customer, terminal, amount, is_fraud
HISTORY = [
    ("A", at(0, 10), 1, 5, 10.00, 1),
    ("B", at(0, 18), 1, 5, 20.00, 0),
    ("C", at(1, 9), 1, 6, 40.50, 0),
    ("D", at(1, 11), 1, 6, 99.99, 0),
    ("H", at(1, 12), 1, 6, 7.77, 0),  # after D: D must not see it
    ("G1", at(7, 9, 3599), 2, 5, 1.00, 0),  # one second before A's label is known
    ("G2", at(7, 10), 3, 5, 1.00, 0),  # the very second A's label is known
    ("E", at(8, 10), 4, 5, 3.00, 0),
    ("F", at(8, 12), 5, 5, 4.00, 1),  # after E on the same terminal
]


@pytest.fixture(scope="module")
def hand_built(tmp_path_factory: pytest.TempPathFactory, settings: Settings) -> pd.DataFrame:
    """The HISTORY above through the whole pipeline, offline retrieval of every payment."""
    frame = pd.DataFrame(
        HISTORY, columns=["transaction_id", "tx_datetime", "customer_id", "terminal_id", "tx_amount", "is_fraud"]
    )
    tiny = Settings(data_dir=Path(tmp_path_factory.mktemp("hand-built")), redis_url=settings.redis_url)
    build_offline_tables(tiny, frame)
    store = feature_store(tiny)
    apply_definitions(store, tiny)
    joined = build_training_set(store, store.get_feature_service(tiny.feature_service), frame)
    return joined.set_index("transaction_id")


def test_payment_never_sees_its_own_state_row(hand_built: pd.DataFrame) -> None:
    first = hand_built.loc["A"]
    assert first["customer_id_nb_tx_1day_window"] == 1  # itself, from the request; no state row
    assert first["customer_id_avg_amount_1day_window"] == pytest.approx(10.00, abs=0.005)
    assert np.isnan(first["seconds_since_previous_tx"])


def test_customer_windows_are_exact_to_the_cent(hand_built: pd.DataFrame) -> None:
    c = hand_built.loc["C"]  # (day0 09:00, day1 09:00]: A, B and C itself
    assert c["customer_id_nb_tx_1day_window"] == 3
    assert round(c["customer_id_avg_amount_1day_window"], 2) == 23.50
    d = hand_built.loc["D"]  # (day0 11:00, day1 11:00]: B, C, D; A slid out, H is the future
    assert d["customer_id_nb_tx_1day_window"] == 3
    assert round(d["customer_id_avg_amount_1day_window"], 2) == 53.50
    assert d["customer_id_nb_tx_7day_window"] == 4
    assert round(d["customer_id_avg_amount_7day_window"], 2) == 42.62
    assert d["seconds_since_previous_tx"] == 2 * 3600
    assert round(d["amount_over_customer_avg_30day"], 4) == round(99.99 / (70.5 / 3), 4)


def test_no_label_younger_than_the_delay(hand_built: pd.DataFrame) -> None:
    before = hand_built.loc["G1"]  # A's label becomes known one second later
    assert before["terminal_id_nb_tx_7day_window"] == 0
    assert before["terminal_id_risk_7day_window"] == 0.0
    known = hand_built.loc["G2"]
    assert known["terminal_id_nb_tx_1day_window"] == 1
    assert known["terminal_id_risk_1day_window"] == 1.0


def test_terminal_window_is_exact_and_ignores_the_future(hand_built: pd.DataFrame) -> None:
    e = hand_built.loc["E"]  # known up to day1 10:00; 1-day window (day0 10:00, day1 10:00]: B only
    assert e["terminal_id_nb_tx_1day_window"] == 1
    assert e["terminal_id_risk_1day_window"] == 0.0
    assert e["terminal_id_nb_tx_7day_window"] == 2  # A and B
    assert e["terminal_id_risk_7day_window"] == 0.5
    assert e["customer_id_nb_tx_30day_window"] == 1  # customer 4's only payment; F is later


def handbook_reference(transactions: pd.DataFrame, delay_days: int) -> pd.DataFrame:
    """The book's own definition, by pandas rolling windows over each customer and terminal."""
    out = transactions.sort_values("tx_datetime").set_index("transaction_id", drop=False)
    for _, group in out.groupby("customer_id"):
        series = group.set_index("tx_datetime")["tx_amount"]
        for w in (1, 7, 30):
            count = series.rolling(f"{w}D").count().to_numpy()
            out.loc[group.index, f"customer_id_nb_tx_{w}day_window"] = count
            out.loc[group.index, f"customer_id_avg_amount_{w}day_window"] = (
                series.rolling(f"{w}D").sum().to_numpy() / count
            )
    for _, group in out.groupby("terminal_id"):
        fraud = group.set_index("tx_datetime")["is_fraud"].astype(float)
        nb_delay, fr_delay = fraud.rolling(f"{delay_days}D").count(), fraud.rolling(f"{delay_days}D").sum()
        for w in (1, 7, 30):
            nb = (fraud.rolling(f"{delay_days + w}D").count() - nb_delay).to_numpy()
            fr = (fraud.rolling(f"{delay_days + w}D").sum() - fr_delay).to_numpy()
            out.loc[group.index, f"terminal_id_nb_tx_{w}day_window"] = nb
            out.loc[group.index, f"terminal_id_risk_{w}day_window"] = np.where(nb > 0, fr / np.maximum(nb, 1), 0)
    return out


def test_store_features_equal_the_handbook_definition(feature_store, transactions, settings) -> None:
    reference = handbook_reference(transactions, settings.label_delay_days)
    window = transactions[transactions["tx_datetime"] >= transactions["tx_datetime"].min() + pd.Timedelta(days=35)]
    sample = window.sample(n=400, random_state=5)
    service = feature_store.get_feature_service(settings.feature_service)
    joined = build_training_set(feature_store, service, sample).set_index("transaction_id")
    columns = [
        c
        for c in reference.columns
        if c.startswith(("customer_id_", "terminal_id_")) and c not in ("customer_id", "terminal_id")
    ]
    assert len(columns) == 12
    expected = reference.loc[joined.index, columns].astype(float)
    np.testing.assert_allclose(joined[columns].astype(float).to_numpy(), expected.to_numpy(), rtol=0, atol=1e-6)
