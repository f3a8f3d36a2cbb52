"""The raw store: atomic, digest-named parquet parts of contract-checked transactions."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from contracts.settings import Settings
from data.contract import OPTIONAL_COLUMNS, REQUIRED_COLUMNS, ContractError, InputFileError
from data.raw_store import IngestResult, RawStore, RawStoreEmpty


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(data_dir=tmp_path)


@pytest.fixture
def store(settings: Settings) -> RawStore:
    return RawStore(settings)


@pytest.fixture
def labelled() -> pd.DataFrame:
    """Four labelled transactions with device columns, deliberately not in time order."""
    return pd.DataFrame(
        {
            "transaction_id": np.array([4, 2, 3, 1], dtype="int64"),
            "tx_datetime": pd.to_datetime(
                ["2024-05-02 10:00", "2024-05-01 09:00", "2024-05-01 09:00", "2024-05-03 00:00"]
            ),
            "customer_id": np.array([7, 8, 7, 9], dtype="int64"),
            "terminal_id": np.array([70, 80, 71, 90], dtype="int64"),
            "tx_amount": [10.0, 250.5, 0.99, 42.0],
            "device_id": ["d7", "d8", None, "d9"],
            "device_type": ["mobile", "desktop", None, "pos"],
            "device_os": ["android", "windows", None, None],
            "is_fraud": np.array([0, 1, 0, 1], dtype="int64"),
            "fraud_scenario": np.array([0, 3, 0, 1], dtype="int64"),
        }
    )


@pytest.fixture
def unlabelled() -> pd.DataFrame:
    """Two later transactions with only the required columns (string ids)."""
    return pd.DataFrame(
        {
            "transaction_id": ["t-100", "t-101"],
            "tx_datetime": ["2024-06-01T00:00:00Z", "2024-06-01T12:00:00+02:00"],
            "customer_id": [7, 10],
            "terminal_id": [70, 100],
            "tx_amount": [5.0, 6.5],
        }
    )


def _snapshot(directory: Path) -> dict[str, bytes] | None:
    """Every file under the directory with its bytes; None if the directory does not exist."""
    if not directory.exists():
        return None
    return {str(p.relative_to(directory)): p.read_bytes() for p in sorted(directory.rglob("*")) if p.is_file()}


# ----------------------------------------------------------------------------- ingest


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_ingest_file_accepts_csv_and_parquet(
    store: RawStore, labelled: pd.DataFrame, tmp_path: Path, suffix: str
) -> None:
    path = tmp_path / f"batch{suffix}"
    if suffix == ".csv":
        labelled.to_csv(path, index=False)
    else:
        labelled.to_parquet(path, index=False)
    result = store.ingest_file(path)
    assert result.rows == len(labelled)
    assert result.path.parent == store.directory and result.path.exists()
    assert store.transaction_ids() == {str(i) for i in labelled["transaction_id"]}


def test_ingest_result_reports_rows_frauds_and_time_span(store: RawStore, labelled: pd.DataFrame) -> None:
    result = store.ingest_frame(labelled, source="fixture")
    assert isinstance(result, IngestResult)
    assert result.rows == len(labelled)
    assert result.frauds == int(labelled["is_fraud"].sum())
    assert result.start == labelled["tx_datetime"].min().tz_localize("UTC")
    assert result.end == labelled["tx_datetime"].max().tz_localize("UTC")


def test_unlabelled_ingest_reports_no_fraud_count(store: RawStore, unlabelled: pd.DataFrame) -> None:
    assert store.ingest_frame(unlabelled, source="fixture").frauds is None


def test_part_is_named_by_content_digest_and_no_temp_file_remains(
    store: RawStore, labelled: pd.DataFrame, settings: Settings
) -> None:
    result = store.ingest_frame(labelled, source="fixture")
    assert result.path.name.startswith("part-") and result.path.suffix == ".parquet"
    assert [p.name for p in settings.raw_dir.iterdir()] == [result.path.name]

    # Same content in another data dir gives the same name; different content a different one.
    twin = RawStore(Settings(data_dir=settings.data_dir / "twin")).ingest_frame(labelled, source="elsewhere")
    other = RawStore(Settings(data_dir=settings.data_dir / "other")).ingest_frame(
        labelled.assign(tx_amount=labelled["tx_amount"] + 1), source="fixture"
    )
    assert twin.path.name == result.path.name
    assert other.path.name != result.path.name


def test_ingest_of_a_csv_with_a_typo_column_is_rejected(
    store: RawStore, labelled: pd.DataFrame, tmp_path: Path
) -> None:
    path = tmp_path / "typo.csv"
    labelled.rename(columns={"device_id": "devce_id"}).to_csv(path, index=False)
    with pytest.raises(ContractError) as caught:
        store.ingest_file(path)
    assert [(v.rule, v.column) for v in caught.value.violations] == [("unknown_column", "devce_id")]
    assert str(path) in str(caught.value)


def test_rejected_file_leaves_a_fresh_store_untouched(store: RawStore, labelled: pd.DataFrame, tmp_path: Path) -> None:
    path = tmp_path / "bad.parquet"
    labelled.assign(tx_amount=-labelled["tx_amount"]).to_parquet(path, index=False)
    with pytest.raises(ContractError):
        store.ingest_file(path)
    assert not store.directory.exists()  # not even an empty directory is created


def test_rejected_file_leaves_an_existing_store_exactly_as_it_was(
    store: RawStore, labelled: pd.DataFrame, unlabelled: pd.DataFrame, tmp_path: Path
) -> None:
    store.ingest_frame(labelled, source="first")
    before = _snapshot(store.directory)
    path = tmp_path / "bad.csv"
    unlabelled.assign(customer_id=["x", 10]).to_csv(path, index=False)
    with pytest.raises(ContractError) as caught:
        store.ingest_file(path)
    assert [(v.rule, v.column, v.rows) for v in caught.value.violations] == [("type", "customer_id", 1)]
    assert _snapshot(store.directory) == before


def test_unreadable_file_is_rejected_without_touching_the_store(store: RawStore, tmp_path: Path) -> None:
    path = tmp_path / "broken.parquet"
    path.write_bytes(b"PAR1 but not really")
    with pytest.raises(InputFileError):
        store.ingest_file(path)
    assert not store.directory.exists()


def test_ingesting_the_same_file_twice_is_rejected(store: RawStore, labelled: pd.DataFrame, tmp_path: Path) -> None:
    path = tmp_path / "batch.parquet"
    labelled.to_parquet(path, index=False)
    store.ingest_file(path)
    before = _snapshot(store.directory)
    with pytest.raises(ContractError) as caught:
        store.ingest_file(path)
    [violation] = caught.value.violations
    assert (violation.rule, violation.column, violation.rows) == ("unique_in_store", "transaction_id", len(labelled))
    assert _snapshot(store.directory) == before


def test_partial_overlap_with_the_store_counts_only_the_repeated_rows(
    store: RawStore, labelled: pd.DataFrame, unlabelled: pd.DataFrame
) -> None:
    store.ingest_frame(labelled, source="first")
    overlapping = pd.concat([unlabelled, labelled[list(REQUIRED_COLUMNS)].iloc[:2]], ignore_index=True)
    with pytest.raises(ContractError) as caught:
        store.ingest_frame(overlapping, source="second")
    assert [(v.rule, v.rows) for v in caught.value.violations] == [("unique_in_store", 2)]


def test_integer_ids_and_their_text_form_collide_in_the_store(store: RawStore, labelled: pd.DataFrame) -> None:
    store.ingest_frame(labelled, source="ints")
    as_text = labelled.assign(transaction_id=labelled["transaction_id"].astype(str))
    with pytest.raises(ContractError, match="unique_in_store"):
        store.ingest_frame(as_text, source="text")


def test_empty_frame_is_rejected(store: RawStore, labelled: pd.DataFrame) -> None:
    with pytest.raises(ContractError) as caught:
        store.ingest_frame(labelled.iloc[0:0], source="empty")
    assert [v.rule for v in caught.value.violations] == ["no_rows"]
    assert not store.directory.exists()


def test_failed_write_leaves_no_partial_or_temp_file(
    store: RawStore, labelled: pd.DataFrame, unlabelled: pd.DataFrame, monkeypatch: pytest.MonkeyPatch
) -> None:
    store.ingest_frame(labelled, source="first")
    before = _snapshot(store.directory)

    def crash_midway(table: object, where: object, **kwargs: object) -> None:
        os.write(where.fileno(), b"PAR1 half a file")  # type: ignore[attr-defined]
        raise OSError("disk full")

    monkeypatch.setattr(pq, "write_table", crash_midway)
    with pytest.raises(OSError, match="disk full"):
        store.ingest_frame(unlabelled, source="second")
    assert _snapshot(store.directory) == before


# ----------------------------------------------------------------------------- load


def test_load_on_an_empty_store_says_how_to_ingest(store: RawStore) -> None:
    with pytest.raises(RawStoreEmpty, match="fraud ingest PATH"):
        store.load()
    assert store.transaction_ids() == set()


def test_load_round_trips_values_and_dtypes(store: RawStore, labelled: pd.DataFrame) -> None:
    store.ingest_frame(labelled, source="fixture")
    loaded = store.load()

    expected = labelled.sort_values(["tx_datetime", "transaction_id"], ignore_index=True)
    assert list(loaded.columns) == [*REQUIRED_COLUMNS, *OPTIONAL_COLUMNS]
    assert loaded["transaction_id"].tolist() == expected["transaction_id"].astype(str).tolist()
    assert (loaded["tx_datetime"] == expected["tx_datetime"].dt.tz_localize("UTC")).all()
    for column in ("customer_id", "terminal_id", "tx_amount", "is_fraud", "fraud_scenario"):
        assert loaded[column].tolist() == expected[column].tolist(), column
    for column in ("device_id", "device_type", "device_os"):
        assert loaded[column].tolist() == expected[column].tolist(), column

    assert loaded["transaction_id"].dtype == object
    assert str(loaded["tx_datetime"].dtype) == "datetime64[ns, UTC]"
    for column in ("customer_id", "terminal_id", "is_fraud", "fraud_scenario"):
        assert loaded[column].dtype == np.dtype("int64"), column
    assert loaded["tx_amount"].dtype == np.dtype("float64")


def test_load_sorts_by_time_then_transaction_id_across_parts(
    store: RawStore, labelled: pd.DataFrame, unlabelled: pd.DataFrame
) -> None:
    store.ingest_frame(unlabelled, source="later")  # ingested first, but later in time
    store.ingest_frame(labelled, source="earlier")
    loaded = store.load()
    keys = list(zip(loaded["tx_datetime"], loaded["transaction_id"]))
    assert keys == sorted(keys)
    assert len(loaded) == len(labelled) + len(unlabelled)


def test_load_mixes_parts_with_and_without_device_and_label_columns(
    store: RawStore, labelled: pd.DataFrame, unlabelled: pd.DataFrame
) -> None:
    store.ingest_frame(labelled, source="with devices")
    store.ingest_frame(unlabelled, source="without devices")
    loaded = store.load()
    assert list(loaded.columns) == [*REQUIRED_COLUMNS, *OPTIONAL_COLUMNS]

    late = loaded[loaded["transaction_id"].isin(unlabelled["transaction_id"])]
    early = loaded[~loaded["transaction_id"].isin(unlabelled["transaction_id"])]
    assert len(late) == len(unlabelled)
    for column in ("device_id", "device_type", "device_os", "is_fraud", "fraud_scenario"):
        assert late[column].isna().all(), column
    assert early["is_fraud"].tolist() == labelled.sort_values(["tx_datetime", "transaction_id"])["is_fraud"].tolist()
    assert early["device_id"].notna().sum() == labelled["device_id"].notna().sum()
    # Labels stay integers; the rows from the unlabelled part are explicit missing values.
    assert str(loaded["is_fraud"].dtype) == "Int64"


def test_load_keeps_optional_columns_absent_from_every_part_absent(
    store: RawStore, labelled: pd.DataFrame, unlabelled: pd.DataFrame
) -> None:
    store.ingest_frame(labelled.drop(columns=["device_os", "fraud_scenario"]), source="a")
    store.ingest_frame(unlabelled, source="b")
    columns = set(store.load().columns)
    assert "device_os" not in columns and "fraud_scenario" not in columns
    assert {"device_id", "is_fraud"} <= columns


def test_load_ignores_files_that_are_not_parts(store: RawStore, labelled: pd.DataFrame) -> None:
    store.ingest_frame(labelled, source="fixture")
    (store.directory / ".tmp-leftover.parquet").write_bytes(b"crashed writer")
    assert len(store.load()) == len(labelled)


def test_transaction_ids_are_text_across_parts(
    store: RawStore, labelled: pd.DataFrame, unlabelled: pd.DataFrame
) -> None:
    store.ingest_frame(labelled, source="ints")
    store.ingest_frame(unlabelled, source="text")
    expected = {str(i) for i in labelled["transaction_id"]} | set(unlabelled["transaction_id"])
    assert store.transaction_ids() == expected
