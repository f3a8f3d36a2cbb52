"""The offline tables: an incremental build adds exactly the rows a full build gives the new payments."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pandas as pd
import pyarrow.dataset as ds
import pytest

from contracts.settings import Settings
from data.raw_store import RawStore
from data.simulate import SimulationConfig, simulate_transactions
from feature_repo.pipeline import LateData, build_offline_tables, built_until, extend_offline_tables
from feature_repo.store import STORED_VIEWS, table_dir

KEYS = {"customer_state": "customer_id", "terminal_labels": "terminal_id", "device_profile": "device_id"}


def table(settings: Settings, view: str) -> pd.DataFrame:
    folder = table_dir(settings, next(v for v in STORED_VIEWS if v.name == view))
    frame = ds.dataset(str(folder), format="parquet").to_table().to_pandas()
    return frame.sort_values([KEYS[view], "event_timestamp"], kind="stable").reset_index(drop=True)


@pytest.fixture(scope="module")
def worlds(tmp_path_factory: pytest.TempPathFactory) -> tuple[Settings, Settings]:
    """The same 50 days built in full, and built from 47 days then extended day by day."""
    frame = simulate_transactions(
        SimulationConfig(n_customers=120, n_terminals=200, n_days=50, start_date=date(2024, 5, 1), seed=4)
    )
    full = Settings(data_dir=Path(tmp_path_factory.mktemp("full")))
    RawStore(full).ingest_frame(frame, source="all")
    build_offline_tables(full, RawStore(full).load())
    daily = Settings(data_dir=Path(tmp_path_factory.mktemp("daily")))
    day = (frame["tx_datetime"] - frame["tx_datetime"].min().floor("D")).dt.days
    RawStore(daily).ingest_frame(frame[day < 47], source="history")
    build_offline_tables(daily, RawStore(daily).load())
    for d in (47, 48, 49):
        RawStore(daily).ingest_frame(frame[day == d], source=f"day {d}")
        raw = RawStore(daily).load()
        new = raw["transaction_id"].isin(frame.loc[day == d, "transaction_id"].astype(str))
        extend_offline_tables(daily, raw, new)
    return full, daily


@pytest.mark.parametrize("view", list(KEYS))
def test_a_table_extended_day_by_day_equals_the_full_build(worlds: tuple[Settings, Settings], view: str) -> None:
    full, daily = worlds
    pd.testing.assert_frame_equal(table(daily, view), table(full, view))


def test_the_manifest_says_up_to_when_and_late_payments_need_a_full_build(worlds: tuple[Settings, Settings]) -> None:
    full, daily = worlds
    assert built_until(daily) == built_until(full) == RawStore(full).load()["tx_datetime"].max()
    raw = RawStore(daily).load()
    with pytest.raises(LateData, match="not newer"):
        extend_offline_tables(daily, raw, raw["tx_datetime"] == raw["tx_datetime"].min())


def test_sub_second_payments_extend_like_a_full_build(tmp_path: Path) -> None:
    # A day's file may start within the second the previous one ended in; and a frame in
    # order of seconds is not in the payments' order within a second (here the latest
    # first): the rows an extension keeps must be the new payments' rows all the same.
    seconds = [0.1, 0.5, 0.9, 86_400.2, 86_400.2, 86_400.7, 86_400.9, 172_800.1]
    frame = pd.DataFrame(
        {
            "transaction_id": [f"t{i}" for i in range(8)],
            "tx_datetime": pd.Timestamp("2024-05-01T10:00:00Z") + pd.to_timedelta(seconds, unit="s"),
            "customer_id": [1, 2, 1, 1, 2, 1, 2, 1],
            "terminal_id": [5, 5, 6, 5, 6, 6, 6, 5],
            "tx_amount": [10.0, 20.0, 30.0, 40.0, 50.0, 60.0, 70.0, 80.0],
            "is_fraud": [0, 1, 0, 0, 1, 0, 0, 0],
        }
    )
    full, daily = Settings(data_dir=tmp_path / "full"), Settings(data_dir=tmp_path / "daily")
    RawStore(full).ingest_frame(frame, source="all")
    build_offline_tables(full, RawStore(full).load())
    RawStore(daily).ingest_frame(frame.iloc[:5], source="first")
    build_offline_tables(daily, RawStore(daily).load())
    for name, rows in (("same second", slice(5, 7)), ("next day", slice(7, 8))):
        RawStore(daily).ingest_frame(frame.iloc[rows], source=name)
        raw = RawStore(daily).load()
        second, micros = raw["tx_datetime"].dt.floor("s"), raw["tx_datetime"].astype("int64")
        raw = raw.assign(s=second, m=-micros).sort_values(["s", "m"], kind="stable").drop(columns=["s", "m"])
        extend_offline_tables(daily, raw, raw["transaction_id"].isin(frame["transaction_id"].iloc[rows]))
    for view in ("customer_state", "terminal_labels"):
        pd.testing.assert_frame_equal(table(daily, view), table(full, view))
