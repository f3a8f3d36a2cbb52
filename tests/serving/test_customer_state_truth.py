"""One truth per online customer state: whatever order the worker's pushes and the daily
batch's writes arrive in, the online state ends equal to the offline table's, a batch
repairs a state a push built on nothing, and a push never shortens a state."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import date, datetime
from pathlib import Path

import pandas as pd
import pyarrow.dataset as ds
import pytest
import redis
from feast import FeatureStore

from contracts.events import ScoringEvent, publish_event
from contracts.settings import Settings
from data.raw_store import RawStore
from data.simulate import SimulationConfig, simulate_transactions
from feature_repo.pipeline import build_offline_tables
from feature_repo.store import (
    apply_definitions,
    clear_online_store,
    feature_store,
    materialize_views,
    table_dir,
)
from feature_repo.store import definitions as feast_definitions
from feature_repo.transforms import CUSTOMER_STATE_COLUMNS
from serving.worker import Worker, WorkerConfig

START = date(2024, 6, 1)
HISTORY_DAYS = 12
TWIN_ID = 10**9  # the transaction id of a second payment at the instant of the live day's first


@pytest.fixture(scope="module")
def world(second_redis_url: str, tmp_path_factory: pytest.TempPathFactory, test_environment: None) -> Settings:
    return Settings(
        data_dir=Path(tmp_path_factory.mktemp("state-truth")),
        redis_url=second_redis_url,
        scoring_stream="fraud:test-state-truth:events",
    )


@pytest.fixture(scope="module")
def payments(world: Settings) -> pd.DataFrame:
    """Twelve days of history and a live day, with two payments of one customer at one instant."""
    frame = simulate_transactions(
        SimulationConfig(n_customers=25, n_terminals=50, n_days=HISTORY_DAYS + 1, start_date=START, seed=11)
    )
    live = frame[frame["tx_datetime"] >= live_start()]
    twin = live.sort_values("tx_datetime").iloc[0].copy()
    twin["transaction_id"], twin["terminal_id"], twin["tx_amount"] = TWIN_ID, (twin["terminal_id"] + 1) % 50, 77.7
    RawStore(world).ingest_frame(pd.concat([frame, twin.to_frame().T.astype(frame.dtypes)]), source="world")
    return RawStore(world).load()


@pytest.fixture(scope="module")
def store(world: Settings, payments: pd.DataFrame) -> FeatureStore:
    store = feature_store(world)
    apply_definitions(store, world)
    return store


@pytest.fixture()
def client(world: Settings) -> Iterator[redis.Redis]:
    connection = redis.Redis.from_url(world.redis_url)
    yield connection
    connection.close()


def live_start() -> pd.Timestamp:
    return pd.Timestamp(START, tz="UTC") + pd.Timedelta(days=HISTORY_DAYS)


def end_of_world() -> datetime:
    return (live_start() + pd.Timedelta(days=1)).to_pydatetime()


def build(world: Settings, payments: pd.DataFrame, until: pd.Timestamp) -> None:
    build_offline_tables(world, payments[payments["tx_datetime"] < until])


def build_everything(world: Settings, payments: pd.DataFrame) -> None:
    build_offline_tables(world, payments)


def load_history(world: Settings, store: FeatureStore, payments: pd.DataFrame) -> None:
    """The offline tables of the history alone, loaded online as the day starts."""
    build(world, payments, live_start())
    load_from_scratch(store, world, live_start().to_pydatetime())


def load_from_scratch(store: FeatureStore, world: Settings, end: datetime) -> None:
    """A full load, as on a fresh store: from the first row of every table."""
    materialize_views(store, world, end=end, start=datetime(2000, 1, 1))


def live_events(payments: pd.DataFrame, customers: list[int] | None = None) -> list[ScoringEvent]:
    live = payments[payments["tx_datetime"] >= live_start()].sort_values("tx_datetime", kind="stable")
    if customers is not None:
        live = live[live["customer_id"].isin(customers)]
    return [
        ScoringEvent(
            transaction={
                "transaction_id": str(row.transaction_id),
                "tx_datetime": row.tx_datetime.isoformat(),
                "customer_id": int(row.customer_id),
                "terminal_id": int(row.terminal_id),
                "tx_amount": float(row.tx_amount),
                "device_id": row.device_id if isinstance(row.device_id, str) else None,
            },
            features={},
            risk_score=0.1,
            decision="approve",
            model_version="1",
            latency_ms=1.0,
            scored_at=row.tx_datetime.isoformat(),
        )
        for row in live.itertuples()
    ]


def fold(world: Settings, store: FeatureStore, client: redis.Redis, events: list[ScoringEvent], batch: int) -> None:
    """Publish the events and let one worker consume them all, `batch` at a time."""
    for event in events:
        publish_event(client, world, event)
    worker = Worker(world, store, client, WorkerConfig(consumer="truth", batch=batch))
    while worker.run(once=True):
        pass


def offline_states(world: Settings) -> dict[int, list[tuple]]:
    """Each customer's newest state row of the offline table, as a multiset of its payments."""
    table = ds.dataset(str(table_dir(world, feast_definitions.customer_state)), format="parquet").to_table()
    frame = table.to_pandas().sort_values("event_timestamp", kind="stable").groupby("customer_id").tail(1)
    return {int(row.customer_id): entries(row._asdict()) for row in frame.itertuples()}


def online_states(store: FeatureStore, customers: list[int]) -> dict[int, list[tuple]]:
    values = store.get_online_features(
        features=[f"customer_state:{column}" for column in CUSTOMER_STATE_COLUMNS],
        entity_rows=[{"customer_id": c} for c in customers],
    ).to_dict()
    return {c: entries({k: values[k][row] for k in CUSTOMER_STATE_COLUMNS}) for row, c in enumerate(customers)}


def entries(state: dict) -> list[tuple]:
    """A state's payments (second, amount, device hash), sorted: payments at one instant have no order."""
    lists = [[] if state.get(column) is None else list(state[column]) for column in CUSTOMER_STATE_COLUMNS]
    return sorted((int(t), float(a), int(h)) for t, a, h in zip(*lists, strict=True))


def customers_of(payments: pd.DataFrame) -> list[int]:
    return sorted(int(c) for c in payments["customer_id"].unique())


@pytest.fixture()
def empty_online_store(store: FeatureStore, world: Settings, client: redis.Redis) -> Iterator[None]:
    clear_online_store(store, world)
    client.delete(world.scoring_stream)
    yield
    client.delete(world.scoring_stream)


@pytest.mark.usefixtures("empty_online_store")
def test_a_state_pushed_onto_nothing_is_repaired_by_the_batch(world, store, payments, client) -> None:
    customers = customers_of(payments[payments["tx_datetime"] >= live_start()])
    fold(world, store, client, live_events(payments), batch=7)
    build_everything(world, payments)
    truth = offline_states(world)
    pushed = online_states(store, customers)
    # Folded onto no state: the live day alone, without the customers' history.
    assert [c for c in customers if pushed[c] != truth[c]] == [c for c in customers if len(truth[c]) > len(pushed[c])]
    assert any(pushed[c] != truth[c] for c in customers)
    load_from_scratch(store, world, end_of_world())
    assert online_states(store, list(truth)) == truth


@pytest.mark.usefixtures("empty_online_store")
def test_pushes_after_the_batch_equal_the_offline_state(world, store, payments, client) -> None:
    load_history(world, store, payments)
    fold(world, store, client, live_events(payments), batch=3)
    build_everything(world, payments)
    truth = offline_states(world)
    assert online_states(store, list(truth)) == truth


@pytest.mark.usefixtures("empty_online_store")
def test_the_batch_after_the_pushes_keeps_them_and_loads_who_did_not_pay(world, store, payments, client) -> None:
    load_history(world, store, payments)
    fold(world, store, client, live_events(payments), batch=5)
    build_everything(world, payments)
    materialize_views(store, world, end=end_of_world(), start=live_start().to_pydatetime())
    truth = offline_states(world)
    assert online_states(store, list(truth)) == truth


@pytest.mark.usefixtures("empty_online_store")
def test_two_payments_at_one_instant_both_count_even_in_separate_batches(world, store, payments, client) -> None:
    load_history(world, store, payments)
    twins = int(payments.loc[payments["transaction_id"] == str(TWIN_ID), "customer_id"].iloc[0])
    events = live_events(payments, [twins])
    assert events[0].transaction["tx_datetime"] == events[1].transaction["tx_datetime"]
    fold(world, store, client, events, batch=1)
    build_everything(world, payments)
    assert online_states(store, [twins])[twins] == offline_states(world)[twins]


@pytest.mark.usefixtures("empty_online_store")
def test_a_replayed_or_late_payment_never_shortens_a_state(world, store, payments, client) -> None:
    build_everything(world, payments)
    load_from_scratch(store, world, end_of_world())
    truth = offline_states(world)
    events = live_events(payments)
    fold(world, store, client, events + events[: len(events) // 2], batch=4)  # every one already in the batch's rows
    assert online_states(store, list(truth)) == truth


@pytest.mark.usefixtures("empty_online_store")
def test_a_wiped_store_refilled_while_payments_flow_ends_equal_to_the_offline_one(
    world, store, payments, client
) -> None:
    build_everything(world, payments)
    truth = offline_states(world)
    events = live_events(payments)
    loader = threading.Thread(target=load_from_scratch, args=(feature_store(world), world, end_of_world()))
    loader.start()
    fold(world, store, client, events, batch=2)
    loader.join()
    assert online_states(store, list(truth)) == truth
