"""The one atomic parquet writer: whole files or none, and no temp file left behind."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from contracts.files import TEMP_PREFIX, remove_stale_temp_files, write_parquet_atomically

SCHEMA = pa.schema([("id", pa.int64()), ("name", pa.string())])


def batches(count: int, fail_after: int | None = None) -> Iterator[pa.RecordBatch]:
    for i in range(count):
        if fail_after is not None and i == fail_after:
            raise OSError("disk full")
        yield pa.RecordBatch.from_pydict({"id": [i], "name": [f"n{i}"]}, schema=SCHEMA)


def test_a_table_and_record_batches_are_written_whole(tmp_path: Path) -> None:
    table = pa.table({"id": [1, 2], "name": ["a", "b"]}, schema=SCHEMA)
    assert pq.read_table(write_parquet_atomically(tmp_path / "new" / "t.parquet", table)).equals(table)
    written = write_parquet_atomically(tmp_path / "b.parquet", batches(3), SCHEMA)
    assert pq.read_table(written)["id"].to_pylist() == [0, 1, 2]
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["b.parquet", "new", "t.parquet"]


def test_a_failed_write_keeps_the_previous_file_and_leaves_no_temp_file(tmp_path: Path) -> None:
    target = tmp_path / "table.parquet"
    write_parquet_atomically(target, batches(2), SCHEMA)
    before = target.read_bytes()
    with pytest.raises(OSError, match="disk full"):
        write_parquet_atomically(target, batches(5, fail_after=3), SCHEMA)
    assert target.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["table.parquet"]


def test_batches_need_their_schema(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="schema"):
        write_parquet_atomically(tmp_path / "x.parquet", batches(1))
    assert not list(tmp_path.iterdir())


def test_only_stale_temp_files_are_removed(tmp_path: Path) -> None:
    (tmp_path / "date=2024-01-01").mkdir()
    stale = tmp_path / "date=2024-01-01" / f"{TEMP_PREFIX}old.parquet"
    young = tmp_path / "date=2024-01-01" / f"{TEMP_PREFIX}young.parquet"
    kept = tmp_path / "date=2024-01-01" / "part-1.parquet"
    for path in (stale, young, kept):
        path.write_bytes(b"x")
    an_hour_ago = time.time() - 3700
    os.utime(stale, (an_hour_ago, an_hour_ago))
    assert remove_stale_temp_files(tmp_path, older_than_s=3600) == 1
    assert not stale.exists() and young.exists() and kept.exists()
