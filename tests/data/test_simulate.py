"""Behaviour of the transaction simulator (data/simulate.py)."""

from __future__ import annotations

import dataclasses
import datetime
import hashlib
import random
from typing import Any

import numpy as np
import pandas as pd
import pytest

import data.simulate as simulate
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


# --------------------------------------------------------------------------- the book's data set

# The book's published data set (simulated-data-raw): first and last transactions as
# (transaction_id, timestamp, customer_id, terminal_id, amount), and counts per month.
BOOK_FIRST_AND_LAST = [
    (0, "2018-04-01 00:00:31", 596, 3156, 57.16),
    (1, "2018-04-01 00:02:10", 4961, 3412, 81.51),
    (2, "2018-04-01 00:07:56", 2, 1365, 146.00),
    (3, "2018-04-01 00:09:29", 4128, 8737, 64.49),
    (4, "2018-04-01 00:10:34", 927, 9906, 50.99),
    (1754150, "2018-09-30 23:56:36", 161, 655, 54.24),
    (1754151, "2018-09-30 23:57:38", 4342, 6181, 1.23),
    (1754152, "2018-09-30 23:58:21", 618, 1502, 6.62),
    (1754153, "2018-09-30 23:59:52", 4056, 3067, 55.40),
    (1754154, "2018-09-30 23:59:57", 3542, 9849, 23.59),
]
BOOK_DIGEST = "97869fedf2e3dd884a2d40e05acab74ff5080682f8bc6e8f14a222265573085a"
BOOK_MONTHS = {  # month: (transactions, frauds)
    "2018-04": (288_062, 1_702),
    "2018-05": (297_115, 2_639),
    "2018-06": (287_618, 2_504),
    "2018-07": (296_928, 2_620),
    "2018-08": (296_559, 2_669),
    "2018-09": (287_873, 2_547),
}


def test_handbook_without_extensions_is_the_books_data_set() -> None:
    """Full size, about 3 s: the book's counts, scenario labels, first and last rows, every row."""
    config = SimulationConfig.handbook(extensions=False)
    assert config == dataclasses.replace(SimulationConfig.handbook(), with_devices=False, takeovers=False)
    frame = simulate_transactions(config)

    assert len(frame) == 1_754_155
    assert frame["is_fraud"].sum() == 14_681
    assert frame["fraud_scenario"].value_counts().to_dict() == {0: 1_739_474, 1: 973, 2: 9_077, 3: 4_631}
    assert frame["customer_id"].nunique() == 4_990
    by_month = frame.groupby(frame["tx_datetime"].dt.month)["is_fraud"].agg(["size", "sum"])
    assert {f"2018-{m:02d}": (int(n), int(f)) for m, (n, f) in by_month.iterrows()} == BOOK_MONTHS

    rows = frame.iloc[[row[0] for row in BOOK_FIRST_AND_LAST]]
    actual = list(
        zip(
            rows["transaction_id"],
            rows["tx_datetime"].dt.strftime("%Y-%m-%d %H:%M:%S"),
            rows["customer_id"],
            rows["terminal_id"],
            rows["tx_amount"],
        )
    )
    assert actual == BOOK_FIRST_AND_LAST

    # Every row, ties included: SHA-256 of the columns the book's own code (the literal
    # chapter 3.2 notebook code, run once at this size) gives, in transaction-id order.
    digest = hashlib.sha256()
    for column in ("tx_datetime", "customer_id", "terminal_id", "tx_amount", "fraud_scenario"):
        values = frame[column].dt.tz_localize(None).astype("int64") if column == "tx_datetime" else frame[column]
        digest.update(np.ascontiguousarray(values.to_numpy()).tobytes())
    assert digest.hexdigest() == BOOK_DIGEST


def _book_reference(config: SimulationConfig, terminals_per_day: int, customers_per_day: int) -> pd.DataFrame:
    """The book's chapter 3.2 code, call for call, with the module's documented seeds.

    ``np.random.seed(k); np.random.f(...)`` is written ``RandomState(k).f(...)`` and
    ``random.seed(k); random.f(...)`` is ``random.Random(k).f(...)``: the same draws,
    without touching the global generators. Returns the book's columns after add_frauds.
    """

    def seed_of(book_seed: int) -> int:
        return (book_seed + config.seed * 1_000_003) % 2**32

    rs = np.random.RandomState(seed_of(0))
    customer_rows = []
    for customer_id in range(config.n_customers):
        x, y = rs.uniform(0, 100), rs.uniform(0, 100)
        mean_amount = rs.uniform(5, 100)
        customer_rows.append([customer_id, x, y, mean_amount, mean_amount / 2, rs.uniform(0, 4)])
    customers = pd.DataFrame(
        customer_rows, columns=["CUSTOMER_ID", "x", "y", "mean_amount", "std_amount", "mean_nb_tx_per_day"]
    )
    rs = np.random.RandomState(seed_of(1))
    terminal_rows = [[terminal_id, rs.uniform(0, 100), rs.uniform(0, 100)] for terminal_id in range(config.n_terminals)]
    terminals = pd.DataFrame(terminal_rows, columns=["TERMINAL_ID", "x", "y"])
    x_y_terminals = terminals[["x", "y"]].values.astype(float)

    rows = []
    for profile in customers.itertuples():  # what groupby("CUSTOMER_ID").apply iterates
        dist = np.sqrt(np.sum(np.square(np.array([profile.x, profile.y]) - x_y_terminals), axis=1))
        available_terminals = list(np.where(dist < config.radius)[0])
        rs = np.random.RandomState(seed_of(profile.CUSTOMER_ID))
        rnd = random.Random(seed_of(profile.CUSTOMER_ID))
        for day in range(config.n_days):
            nb_tx = rs.poisson(profile.mean_nb_tx_per_day)
            for _ in range(nb_tx):
                time_tx = int(rs.normal(86400 / 2, 20000))
                if (time_tx > 0) and (time_tx < 86400):
                    amount = rs.normal(profile.mean_amount, profile.std_amount)
                    if amount < 0:
                        amount = rs.uniform(0, profile.mean_amount * 2)
                    amount = np.round(amount, decimals=2)
                    if len(available_terminals) > 0:
                        terminal_id = rnd.choice(available_terminals)
                        rows.append([time_tx + day * 86400, day, profile.CUSTOMER_ID, terminal_id, amount])
    tx = pd.DataFrame(rows, columns=["TX_TIME_SECONDS", "TX_TIME_DAYS", "CUSTOMER_ID", "TERMINAL_ID", "TX_AMOUNT"])
    tx["TX_DATETIME"] = pd.to_datetime(tx["TX_TIME_SECONDS"], unit="s", origin=str(config.start_date))
    tx = tx.sort_values("TX_DATETIME").reset_index(drop=True)

    tx["TX_FRAUD"] = 0
    tx["TX_FRAUD_SCENARIO"] = 0
    tx.loc[tx.TX_AMOUNT > 220, ["TX_FRAUD", "TX_FRAUD_SCENARIO"]] = 1
    for day in range(tx.TX_TIME_DAYS.max()):
        compromised_terminals = terminals.TERMINAL_ID.sample(n=terminals_per_day, random_state=seed_of(day))
        hit = (tx.TX_TIME_DAYS >= day) & (tx.TX_TIME_DAYS < day + 28) & tx.TERMINAL_ID.isin(compromised_terminals)
        tx.loc[hit, "TX_FRAUD"] = 1
        tx.loc[hit, "TX_FRAUD_SCENARIO"] = 2
    for day in range(tx.TX_TIME_DAYS.max()):
        compromised_customers = customers.CUSTOMER_ID.sample(n=customers_per_day, random_state=seed_of(day)).values
        compromised = tx[
            (tx.TX_TIME_DAYS >= day) & (tx.TX_TIME_DAYS < day + 14) & tx.CUSTOMER_ID.isin(compromised_customers)
        ]
        index_frauds = random.Random(seed_of(day)).sample(list(compromised.index.values), k=int(len(compromised) / 3))
        tx.loc[index_frauds, "TX_AMOUNT"] = tx.loc[index_frauds, "TX_AMOUNT"] * 5
        tx.loc[index_frauds, "TX_FRAUD"] = 1
        tx.loc[index_frauds, "TX_FRAUD_SCENARIO"] = 3
    return tx


# 10,000 terminals keep the book's 2 compromised terminals a day; 400 customers scale 3 down to 1.
REFERENCE = SimulationConfig(
    n_customers=400,
    n_terminals=10_000,
    n_days=40,
    start_date=datetime.date(2018, 4, 1),
    with_devices=False,
    takeovers=False,
)
# About one terminal per customer in range: many customers draw transactions but cannot pay.
SPARSE_REFERENCE = dataclasses.replace(REFERENCE, n_terminals=150, n_days=30, seed=3)


@pytest.mark.parametrize(
    "config, terminals_per_day",
    [(REFERENCE, 2), (dataclasses.replace(REFERENCE, seed=5), 2), (SPARSE_REFERENCE, 1)],
    ids=["seed-0", "seed-5", "sparse-terminals"],
)
def test_simulation_is_the_books_code_draw_for_draw(config: SimulationConfig, terminals_per_day: int) -> None:
    expected = _book_reference(config, terminals_per_day=terminals_per_day, customers_per_day=1)
    frame = simulate_transactions(config)

    assert len(frame) == len(expected) > 1_000
    assert expected["TX_DATETIME"].duplicated().any()  # ties, whose order the book's sort decides
    for scenario in (1, 2, 3):  # every scenario is exercised
        assert (expected["TX_FRAUD_SCENARIO"] == scenario).any(), scenario
    np.testing.assert_array_equal(frame["transaction_id"], expected.index)
    np.testing.assert_array_equal(frame["tx_datetime"].dt.tz_localize(None), expected["TX_DATETIME"])
    np.testing.assert_array_equal(frame["customer_id"], expected["CUSTOMER_ID"])
    np.testing.assert_array_equal(frame["terminal_id"], expected["TERMINAL_ID"])
    np.testing.assert_array_equal(frame["tx_amount"], expected["TX_AMOUNT"])  # exact, not approximate
    np.testing.assert_array_equal(frame["is_fraud"], expected["TX_FRAUD"])
    np.testing.assert_array_equal(frame["fraud_scenario"], expected["TX_FRAUD_SCENARIO"])


def test_customers_that_need_more_doubles_get_the_same_draws(monkeypatch: pytest.MonkeyPatch) -> None:
    config = dataclasses.replace(SMALL, with_devices=False, takeovers=False)
    expected = simulate_transactions(config)
    monkeypatch.setattr(simulate, "_initial_doubles", lambda rate, n_days: 1)  # every customer retries
    pd.testing.assert_frame_equal(simulate_transactions(config), expected)


def test_book_sizes_compromise_2_terminals_and_3_customers_every_day_but_the_last() -> None:
    config = SimulationConfig.handbook()
    terminals = draw_compromised_terminals(config)
    customers = draw_compromised_customers(config)
    assert terminals.groupby("day").size().to_dict() == {day: 2 for day in range(182)}
    assert customers.groupby("day").size().to_dict() == {day: 3 for day in range(182)}
    # The book's draws: Series.sample seeded with the day.
    ids = pd.Series(np.arange(10_000))
    day_9 = terminals.loc[terminals["day"] == 9, "terminal_id"].tolist()
    assert day_9 == ids.sample(n=2, random_state=9).tolist()


@pytest.mark.parametrize(
    "n_customers, n_terminals, customers_per_day, terminals_per_day",
    [
        (5_000, 10_000, 3, 2),
        (1_000, 2_000, 1, 1),  # 0.6 and 0.4 round to 1 and 0, at least 1
        (12_500, 25_000, 8, 5),  # 7.5 rounds half up
        (50_000, 1, 30, 1),  # never more than the population
    ],
)
def test_daily_compromises_scale_with_the_population(
    n_customers: int, n_terminals: int, customers_per_day: int, terminals_per_day: int
) -> None:
    config = SimulationConfig(n_customers=n_customers, n_terminals=n_terminals, n_days=3, start_date=START)
    assert draw_compromised_customers(config).groupby("day").size().tolist() == [customers_per_day] * 2
    assert draw_compromised_terminals(config).groupby("day").size().tolist() == [terminals_per_day] * 2


def test_extensions_leave_the_books_rows_unchanged(medium: pd.DataFrame) -> None:
    book = simulate_transactions(dataclasses.replace(MEDIUM, with_devices=False, takeovers=False))
    assert not (book["fraud_scenario"] == 4).any()
    with_devices = simulate_transactions(dataclasses.replace(MEDIUM, takeovers=False))
    pd.testing.assert_frame_equal(with_devices.drop(columns=list(DEVICE_COLUMNS)), book)

    # Takeovers add rows; the others are the book's, in the book's order, renumbered.
    assert (medium["fraud_scenario"] == 4).any()
    others = medium[medium["fraud_scenario"] != 4].drop(columns=["transaction_id", *DEVICE_COLUMNS])
    pd.testing.assert_frame_equal(others.reset_index(drop=True), book.drop(columns="transaction_id"))
    pd.testing.assert_frame_equal(
        medium.loc[medium["fraud_scenario"] != 4, list(DEVICE_COLUMNS)].reset_index(drop=True),
        with_devices[list(DEVICE_COLUMNS)],
    )


def test_start_date_only_shifts_the_timestamps(small: pd.DataFrame) -> None:
    shifted = simulate_transactions(dataclasses.replace(SMALL, start_date=START + datetime.timedelta(days=400)))
    pd.testing.assert_frame_equal(shifted.drop(columns="tx_datetime"), small.drop(columns="tx_datetime"))
    assert (shifted["tx_datetime"] - small["tx_datetime"]).eq(pd.Timedelta(days=400)).all()


def test_seeds_shift_every_book_stream() -> None:
    base, other = SMALL, dataclasses.replace(SMALL, seed=SMALL.seed + 1)
    assert not generate_customer_profiles(base).equals(generate_customer_profiles(other))
    assert not generate_terminal_profiles(base).equals(generate_terminal_profiles(other))
    assert not draw_compromised_terminals(base).equals(draw_compromised_terminals(other))
    assert not draw_compromised_customers(base).equals(draw_compromised_customers(other))


# --------------------------------------------------------------------------- behaviour


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
    assert (config.start_date, config.seed, config.radius) == (datetime.date(2018, 4, 1), 0, 5.0)
    assert config.with_devices and config.takeovers  # the platform's shape
    exact = SimulationConfig.handbook(extensions=False)
    assert exact == dataclasses.replace(config, with_devices=False, takeovers=False)


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


def test_takeovers_can_be_switched_off() -> None:
    frame = simulate_transactions(dataclasses.replace(MEDIUM, takeovers=False))
    assert set(frame["fraud_scenario"].unique()) == {0, 1, 2, 3}
    assert tuple(frame.columns) == TRANSACTION_COLUMNS


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
        ("with_devices", 1),
        ("takeovers", "no"),
    ],
)
def test_invalid_config_raises_value_error(field: str, value: Any) -> None:
    with pytest.raises(ValueError, match=field):
        SimulationConfig(**{field: value})
