"""Parity where state is stale, missing or on a boundary: a hand-built world scored over real
HTTP, whose served features equal get_historical_features for every feature (1e-6).

History: days 0-39 from T0. Live payments at day 40 10:00 (the daily batch ran last night)
and at day 43 10:00 (it stopped three days ago). No worker runs: every live payment sees the
history only, online as offline, so each case stands alone.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path

import httpx
import pandas as pd
import pytest
import redis

from contracts.events import ScoringEvent, latest_events
from contracts.settings import Settings
from contracts.tables import request_body
from feature_repo.pipeline import build_offline_tables
from feature_repo.store import apply_definitions, feature_store, materialize
from serving.app import create_app
from tests.support.servers import served
from training.dataset import build_training_set

T0 = pd.Timestamp("2024-05-06", tz="UTC")  # a Monday


def at(day: float, hour: float = 10) -> pd.Timestamp:
    return T0 + pd.Timedelta(days=day, hours=hour)


# customer, terminal, device, day, hour, amount, is_fraud
HISTORY = [
    # Customer 1 pays exactly 1, 7 and 30 days before its day-40 payment: each leaves a window.
    (1, 10, "dev-1", 10, 10, 30.0, 0),
    (1, 10, "dev-1", 20, 9, 45.0, 0),
    (1, 11, "dev-1", 33, 10, 12.5, 0),
    (1, 10, "dev-1", 39, 10, 80.0, 0),
    # Customer 2 paid once, exactly 30 days before day 40, 10:00: its state is at the TTL's edge.
    (2, 10, "dev-2", 10, 10, 20.0, 0),
    # Customer 3 has been idle for 31 days and more: its state is past the TTL.
    (3, 11, "dev-3", 8, 15, 55.0, 0),
    # Terminal 10's labels: known 7 days after each payment; one exactly 1 day before day 40 10:00.
    (5, 10, None, 25, 12, 300.0, 1),
    (5, 10, None, 32, 10, 250.0, 1),
    # Terminal 12's payments are all too recent for their labels to be known on day 40.
    (6, 12, "dev-6", 35, 11, 18.0, 1),
    (6, 12, "dev-6", 38, 16, 22.0, 0),
]
LIVE = [  # all at 10:00; labels are never sent with a payment
    (1, 10, "dev-1", 40, 10, 60.0, 0),  # window boundaries; fresh device profile
    (2, 11, "dev-2", 40, 10, 25.0, 0),  # customer state exactly at its TTL
    (3, 11, "dev-3", 40, 10, 70.0, 0),  # customer state past its TTL; terminal with no known label
    (4, 13, "dev-new", 40, 10, 15.0, 0),  # new customer, terminal and device
    (6, 12, "dev-6", 40, 10, 30.0, 0),  # terminal whose labels are all younger than the delay
    (1, 10, "dev-1", 43, 10, 65.0, 0),  # device profile past its TTL (the batch stopped)
    (5, 10, None, 43, 10, 40.0, 0),  # no device at all
]


def payments(rows: list[tuple], prefix: str) -> pd.DataFrame:
    """(customer, terminal, device, day, hour, amount, is_fraud) rows as a raw-contract frame."""
    columns = ["customer_id", "terminal_id", "device_id", "day", "hour", "tx_amount", "is_fraud"]
    frame = pd.DataFrame(rows, columns=columns)
    frame.insert(0, "transaction_id", [f"{prefix}{i}" for i in range(len(frame))])
    frame.insert(1, "tx_datetime", [at(day, hour) for day, hour in zip(frame.pop("day"), frame.pop("hour"))])
    return frame


@pytest.fixture(scope="module")
def edge_world(
    tmp_path_factory: pytest.TempPathFactory, settings: Settings, second_redis_url: str, trained_model
) -> Iterator[tuple[Settings, pd.DataFrame, list[ScoringEvent], object]]:
    world = Settings(
        **{
            **settings.model_dump(),
            "data_dir": Path(tmp_path_factory.mktemp("edges")),
            "redis_url": second_redis_url,
            "scoring_stream": "fraud:test-edges:events",
        }
    )
    history, live = payments(HISTORY, "h"), payments(LIVE, "live-")
    build_offline_tables(world, history)
    store = feature_store(world)
    apply_definitions(store, world)
    materialize(
        store,
        (T0 - pd.Timedelta(days=1)).to_pydatetime(),
        at(40, 0).to_pydatetime(),
        views=["customer_state", "device_profile"],
    )
    with served(create_app(world)) as base_url, httpx.Client(base_url=base_url, timeout=30) as http:
        for moment, scored_then in live.groupby("tx_datetime", sort=True):
            # The label feed: labels known by then reach the online store, and no later ones.
            since = (T0 - pd.Timedelta(days=1)).to_pydatetime()
            materialize(store, since, moment.to_pydatetime(), views=["terminal_labels"])
            for row in scored_then.to_dict("records"):
                answer = http.post("/score", json=request_body(row))
                assert answer.status_code == 200, answer.text
        client = redis.Redis.from_url(world.redis_url)
        events = latest_events(client, world, len(live))
        client.close()
    assert [str(e.transaction["transaction_id"]) for e in events] == live["transaction_id"].tolist()
    yield world, live, events, store


def served_features(events: list[ScoringEvent]) -> pd.DataFrame:
    return pd.DataFrame([e.features for e in events], index=[str(e.transaction["transaction_id"]) for e in events])


def test_every_served_feature_equals_the_offline_one_on_the_edge_cases(edge_world) -> None:
    world, live, events, store = edge_world
    offline = build_training_set(store, store.get_feature_service(world.feature_service), live)
    offline = offline.set_index("transaction_id")
    served = served_features(events)
    assert len(served.columns) == 21
    for transaction_id, row in served.iterrows():
        for name, value in row.items():
            truth = offline.loc[transaction_id, name]
            if value is None or math.isnan(value):
                assert truth is None or math.isnan(truth), f"{transaction_id} {name}: served missing, offline {truth}"
            else:
                assert math.isclose(value, float(truth), abs_tol=1e-6), f"{transaction_id} {name}: {value} vs {truth}"


def test_the_edge_cases_mean_what_the_feature_table_says(edge_world) -> None:
    _, _, events, _ = edge_world
    served = served_features(events)
    boundaries, at_ttl, idle, new, unknown_labels, stale_device, no_device = served.index
    # (t - w, t]: payments exactly 1, 7 and 30 days before are outside the 1-, 7- and 30-day windows.
    assert served.loc[
        boundaries, ["customer_id_nb_tx_1day_window", "customer_id_nb_tx_7day_window", "customer_id_nb_tx_30day_window"]
    ].tolist() == [1, 2, 4]
    assert served.loc[boundaries, "terminal_id_nb_tx_1day_window"] == 0  # its label is known exactly 1 day before
    assert served.loc[boundaries, "terminal_id_risk_7day_window"] == 1.0
    assert served.loc[boundaries, "device_nb_customers"] == 1
    assert served.loc[at_ttl, "seconds_since_previous_tx"] == 30 * 86_400  # state exactly at its TTL still counts
    assert math.isnan(served.loc[idle, "seconds_since_previous_tx"])  # older than its TTL: no history
    assert served.loc[idle, "customer_id_nb_tx_30day_window"] == 1
    assert served.loc[new, ["device_nb_customers", "device_age_days"]].isna().all()
    assert served.loc[new, "terminal_id_nb_tx_30day_window"] == 0
    assert served.loc[unknown_labels, "terminal_id_nb_tx_30day_window"] == 0
    assert served.loc[stale_device, ["device_nb_customers", "device_age_days"]].isna().all()
    assert math.isnan(served.loc[no_device, "device_used_by_customer_30day"])
