"""Materialisation loads what it says: the online store is checked after every load."""

from __future__ import annotations

from datetime import date, datetime
from pathlib import Path

import pandas as pd
import pytest

from contracts.settings import Settings
from data.raw_store import RawStore
from data.simulate import SimulationConfig, simulate_transactions
from feature_repo.pipeline import build_offline_tables
from feature_repo.store import apply_definitions, clear_online_store, feature_store, materialize_views

START = date(2023, 5, 1)  # older than every view's TTL, as Feast counts it from today


@pytest.fixture()
def world(tmp_path: Path, second_redis_url: str) -> Settings:
    settings = Settings(data_dir=tmp_path, redis_url=second_redis_url)
    frame = simulate_transactions(SimulationConfig(n_customers=30, n_terminals=60, n_days=15, start_date=START, seed=2))
    RawStore(settings).ingest_frame(frame, source="old")
    build_offline_tables(settings, RawStore(settings).load())
    apply_definitions(feature_store(settings), settings)
    yield settings
    clear_online_store(feature_store(settings), settings)


def end_of(world: Settings) -> datetime:
    return (RawStore(world).load()["tx_datetime"].max().floor("D") + pd.Timedelta(days=1)).to_pydatetime()


def test_a_first_load_of_old_data_fills_every_view(world: Settings) -> None:
    loaded = materialize_views(feature_store(world), world, end=end_of(world))
    assert {view.view: view.missing for view in loaded} == {
        "customer_state": 0,
        "terminal_labels": 0,
        "device_profile": 0,
    }
    assert all(view.entities > 0 for view in loaded)
    customers = RawStore(world).load()["customer_id"].nunique()
    assert next(v for v in loaded if v.view == "customer_state").entities == customers


def test_a_load_that_writes_nothing_is_reported_missing(world: Settings) -> None:
    # Feast's materialize_incremental starts a first load at now minus the TTL: on data older
    # than that it writes nothing and says nothing. The check after the load sees it.
    store = feature_store(world)
    store.materialize = lambda start_date, end_date, feature_views: store.materialize_incremental(  # type: ignore[method-assign]
        end_date=end_date, feature_views=feature_views
    )
    loaded = materialize_views(store, world, end=end_of(world))
    assert all(view.entities > 0 and view.online == 0 and view.missing == view.entities for view in loaded)
