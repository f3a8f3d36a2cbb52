"""Behaviour of the transaction simulator (data/simulate.py)."""

from __future__ import annotations

import dataclasses
import datetime
from typing import Any

import numpy as np
import pandas as pd
import pytest

from data.simulate import (
    DEVICE_COLUMNS,
    TRANSACTION_COLUMNS,
    SimulationConfig,
    draw_compromised_customers,
    draw_compromised_terminals,
    generate_customer_profiles,
    generate_device_profiles,
    generate_terminal_profiles,
    simulate_transactions,
)

START = datetime.date(2021, 3, 1)
# SMALL runs in milliseconds; MEDIUM (the default sizes) is big enough to hold every fraud scenario.
SMALL = SimulationConfig(n_customers=100, n_terminals=200, n_days=30, start_date=START, seed=7)
MEDIUM = SimulationConfig(n_customers=1000, n_terminals=2000, n_days=61, start_date=START, seed=3)


@pytest.fixture(scope="module")
def small() -> pd.DataFrame:
    return simulate_transactions(SMALL)


@pytest.fixture(scope="module")
def medium() -> pd.DataFrame:
    return simulate_transactions(MEDIUM)


def _day_index(frame: pd.DataFrame, config: SimulationConfig) -> pd.Series:
    start = pd.Timestamp(config.resolved_start_date(), tz="UTC")
    return (frame["tx_datetime"] - start).dt.days


def test_simulation_is_reproducible_for_a_seed(small: pd.DataFrame) -> None:
    pd.testing.assert_frame_equal(simulate_transactions(SMALL), small)


def test_different_seeds_give_different_transactions(small: pd.DataFrame) -> None:
    other = simulate_transactions(dataclasses.replace(SMALL, seed=SMALL.seed + 1))
    assert len(other) != len(small) or not other["tx_amount"].equals(small["tx_amount"])


def test_columns_and_dtypes_match_the_contract(small: pd.DataFrame) -> None:
    assert tuple(small.columns) == TRANSACTION_COLUMNS
    assert str(small["tx_datetime"].dtype) == "datetime64[ns, UTC]"
    for column in ("transaction_id", "customer_id", "terminal_id", "is_fraud", "fraud_scenario"):
        assert small[column].dtype == np.int64, column
    assert small["tx_amount"].dtype == np.float64
    for column in DEVICE_COLUMNS:
        assert small[column].map(type).eq(str).all(), column


def test_transaction_ids_number_the_rows_in_time_order(small: pd.DataFrame) -> None:
    assert len(small) > 0
    assert small["tx_datetime"].is_monotonic_increasing
    np.testing.assert_array_equal(small["transaction_id"].to_numpy(), np.arange(len(small)))
    assert small.index.equals(pd.RangeIndex(len(small)))


def test_dates_fall_within_the_simulated_period(small: pd.DataFrame) -> None:
    days = _day_index(small, SMALL)
    assert days.min() >= 0
    assert days.max() < SMALL.n_days


def test_default_start_date_makes_the_data_end_yesterday() -> None:
    config = SimulationConfig(n_days=10)
    today = datetime.datetime.now(datetime.UTC).date()
    assert config.resolved_start_date() == today - datetime.timedelta(days=10)
    assert SMALL.resolved_start_date() == START


def test_handbook_preset_is_the_book_setup() -> None:
    config = SimulationConfig.handbook()
    assert (config.n_customers, config.n_terminals, config.n_days) == (5000, 10000, 183)
    assert (config.start_date, config.seed) == (datetime.date(2018, 4, 1), 0)


def test_transaction_volume_follows_the_customer_rates(medium: pd.DataFrame) -> None:
    customers = generate_customer_profiles(MEDIUM)
    legitimate_source = medium[medium["fraud_scenario"] != 4]
    active = customers[customers["customer_id"].isin(_customers_with_a_terminal(MEDIUM))]
    # Poisson rate per day, minus the ~3.1 % of Normal(43200, 20000) times outside the day.
    expected = active["mean_nb_tx_per_day"].sum() * MEDIUM.n_days * 0.969
    assert len(legitimate_source) == pytest.approx(expected, rel=0.03)


def test_amounts_are_non_negative_and_rounded_to_cents(medium: pd.DataFrame) -> None:
    cents = medium["tx_amount"] * 100
    assert (medium["tx_amount"] >= 0).all()
    assert np.allclose(cents, cents.round(), atol=1e-6)


def test_scenario_1_is_exactly_the_amounts_above_220(medium: pd.DataFrame) -> None:
    scenario_1 = medium["fraud_scenario"] == 1
    assert scenario_1.any()
    assert (medium.loc[scenario_1, "tx_amount"] > 220).all()
    assert (medium.loc[medium["tx_amount"] > 220, "is_fraud"] == 1).all()


def test_is_fraud_flags_exactly_the_fraud_scenarios(medium: pd.DataFrame) -> None:
    assert set(medium["fraud_scenario"].unique()) == {0, 1, 2, 3, 4}
    np.testing.assert_array_equal(medium["is_fraud"], (medium["fraud_scenario"] > 0).astype(int))


def test_compromised_terminals_are_fraud_throughout_their_window(medium: pd.DataFrame) -> None:
    schedule = draw_compromised_terminals(MEDIUM)
    days = _day_index(medium, MEDIUM)
    covered = pd.Series(False, index=medium.index)
    for terminal_id, day in schedule.itertuples(index=False):
        window = (medium["terminal_id"] == terminal_id) & days.between(day, day + 27)
        assert (medium.loc[window, "is_fraud"] == 1).all()
        covered |= window
    scenario_2 = medium["fraud_scenario"] == 2
    assert scenario_2.any()
    assert covered[scenario_2].all()


def test_scenario_3_hits_compromised_customers_in_their_window_with_inflated_amounts(
    medium: pd.DataFrame,
) -> None:
    schedule = draw_compromised_customers(MEDIUM)
    days = _day_index(medium, MEDIUM)
    covered = pd.Series(False, index=medium.index)
    for customer_id, day in schedule.itertuples(index=False):
        covered |= (medium["customer_id"] == customer_id) & days.between(day, day + 13)
    scenario_3 = medium[medium["fraud_scenario"] == 3]
    assert len(scenario_3) > 10
    assert covered[scenario_3.index].all()
    # Amounts are multiplied by 5, so they sit far above each customer's usual mean.
    means = generate_customer_profiles(MEDIUM).set_index("customer_id")["mean_amount"]
    ratio = scenario_3["tx_amount"] / scenario_3["customer_id"].map(means)
    assert ratio.median() > 3


def test_takeovers_use_a_device_the_customer_never_used_before(medium: pd.DataFrame) -> None:
    takeovers = medium[medium["fraud_scenario"] == 4]
    assert not takeovers.empty
    owned = set(generate_device_profiles(MEDIUM)["device_id"])
    for device_id, burst in takeovers.groupby("device_id"):
        assert device_id not in owned
        assert burst["customer_id"].nunique() == 1
        assert burst["device_type"].isin(["mobile", "desktop"]).all()
        earlier = medium[medium["tx_datetime"] < burst["tx_datetime"].min()]
        assert device_id not in set(earlier["device_id"])
        assert (medium.loc[medium["device_id"] == device_id, "fraud_scenario"] == 4).all()


def test_takeover_bursts_are_short_night_time_and_above_usual_amounts(medium: pd.DataFrame) -> None:
    takeovers = medium[medium["fraud_scenario"] == 4]
    assert not takeovers.empty
    assert (takeovers["tx_datetime"].dt.hour < 6).all()
    means = generate_customer_profiles(MEDIUM).set_index("customer_id")["mean_amount"]
    ratio = takeovers["tx_amount"] / takeovers["customer_id"].map(means)
    assert ratio.between(1.5 - 1e-3, 3.0 + 1e-3).all()
    for _, burst in takeovers.groupby("device_id"):
        assert 3 <= len(burst) <= 8
        assert burst["tx_datetime"].max() - burst["tx_datetime"].min() <= pd.Timedelta(hours=1)


def test_takeovers_only_use_terminals_the_customer_can_reach(medium: pd.DataFrame) -> None:
    takeovers = medium[medium["fraud_scenario"] == 4]
    assert not takeovers.empty
    assert (_distances(takeovers, MEDIUM) < MEDIUM.radius).all()


def test_legitimate_transactions_use_at_most_three_devices_of_their_customer(medium: pd.DataFrame) -> None:
    own = medium[medium["fraud_scenario"] != 4]
    devices = generate_device_profiles(MEDIUM)
    owners = own["device_id"].map(devices.set_index("device_id")["customer_id"])
    assert owners.notna().all()
    assert (owners.astype(np.int64) == own["customer_id"]).all()
    assert own.groupby("customer_id")["device_id"].nunique().max() <= 3
    assert devices.groupby("customer_id").size().between(1, 3).all()
    assert devices["device_id"].is_unique


def test_main_device_is_used_more_often_than_the_others(medium: pd.DataFrame) -> None:
    devices = generate_device_profiles(MEDIUM)
    multi = devices.groupby("customer_id")["device_id"].transform("size") > 1
    index = medium["device_id"].map(devices[multi].set_index("device_id")["device_index"]).dropna()
    assert len(index) > 1000
    assert (index == 0).mean() > 0.5


def test_device_os_is_consistent_with_device_type(medium: pd.DataFrame) -> None:
    allowed = {
        "mobile": {"ios", "android"},
        "tablet": {"ios", "android"},
        "desktop": {"windows", "macos", "linux"},
    }
    assert set(medium["device_type"]) == set(allowed)
    for device_type, names in allowed.items():
        rows = medium[medium["device_type"] == device_type]
        assert set(rows["device_os"]) <= names, device_type
    # Each device keeps one type and one OS across all its transactions.
    assert (medium.groupby("device_id")[["device_type", "device_os"]].nunique() == 1).all().all()


def test_without_devices_the_device_columns_are_absent_and_the_rest_unchanged(small: pd.DataFrame) -> None:
    bare = simulate_transactions(dataclasses.replace(SMALL, with_devices=False))
    assert tuple(bare.columns) == tuple(c for c in TRANSACTION_COLUMNS if c not in DEVICE_COLUMNS)
    pd.testing.assert_frame_equal(bare, small.drop(columns=list(DEVICE_COLUMNS)))


def test_takeovers_are_added_without_devices_too() -> None:
    bare = simulate_transactions(dataclasses.replace(MEDIUM, with_devices=False))
    assert (bare["fraud_scenario"] == 4).any()


def _customers_with_a_terminal(config: SimulationConfig) -> np.ndarray:
    customers = generate_customer_profiles(config)
    terminals = generate_terminal_profiles(config)
    dx = customers["x"].to_numpy()[:, None] - terminals["x"].to_numpy()[None, :]
    dy = customers["y"].to_numpy()[:, None] - terminals["y"].to_numpy()[None, :]
    return customers["customer_id"].to_numpy()[(np.hypot(dx, dy) < config.radius).any(axis=1)]


def _distances(frame: pd.DataFrame, config: SimulationConfig) -> pd.Series:
    customers = generate_customer_profiles(config).set_index("customer_id")
    terminals = generate_terminal_profiles(config).set_index("terminal_id")
    dx = frame["customer_id"].map(customers["x"]) - frame["terminal_id"].map(terminals["x"])
    dy = frame["customer_id"].map(customers["y"]) - frame["terminal_id"].map(terminals["y"])
    return np.hypot(dx, dy)


@pytest.mark.parametrize("radius", [2.0, 5.0, 12.0])
def test_customers_only_use_terminals_within_the_radius(radius: float) -> None:
    config = dataclasses.replace(SMALL, radius=radius)
    frame = simulate_transactions(config)
    assert len(frame) > 0
    assert (_distances(frame, config) < radius).all()


def test_customers_without_a_terminal_in_range_make_no_transaction(small: pd.DataFrame) -> None:
    reachable = set(_customers_with_a_terminal(SMALL))
    assert len(reachable) < SMALL.n_customers  # the config must leave some customers isolated
    assert set(small["customer_id"]) <= reachable


def test_profiles_cover_the_grid_and_the_book_ranges() -> None:
    customers = generate_customer_profiles(MEDIUM)
    terminals = generate_terminal_profiles(MEDIUM)
    assert len(customers) == MEDIUM.n_customers and len(terminals) == MEDIUM.n_terminals
    for table in (customers, terminals):
        assert table[["x", "y"]].stack().between(0, 100).all()
    assert customers["mean_amount"].between(5, 100).all()
    assert np.allclose(customers["std_amount"], customers["mean_amount"] / 2)
    assert customers["mean_nb_tx_per_day"].between(0, 4).all()


@pytest.mark.parametrize(
    "field, value",
    [
        ("n_customers", 0),
        ("n_terminals", -1),
        ("n_days", 0),
        ("radius", 0.0),
        ("radius", -2.5),
        ("radius", float("nan")),
        ("seed", -1),
        ("n_days", 1.5),
    ],
)
def test_invalid_config_raises_value_error(field: str, value: Any) -> None:
    with pytest.raises(ValueError, match=field):
        SimulationConfig(**{field: value})
