"""Reading the prediction log (its format: contracts/prediction_log.py; `fraud worker` writes it)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import date, datetime
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from contracts.prediction_log import BASE_COLUMNS, BASE_SCHEMA, PART_GLOB, TIME_COLUMN, log_dir, partitions
from contracts.settings import Settings
from contracts.tables import utc_timestamp


def read_prediction_log(
    settings: Settings,
    start: date | datetime | str | None = None,
    end: date | datetime | str | None = None,
    columns: Sequence[str] | None = None,
) -> pd.DataFrame:
    """Logged predictions of payments dated start..end (UTC dates, both included; None: open).

    Sorted by payment time. Feature columns a file lacks (another model's inputs) are NaN.
    `columns`: read only these (the base columns among them keep their types; the
    payment time and stream id are always read, for the order). Nothing logged gives an
    empty frame with the base columns and their types.
    """
    files = [
        path
        for partition in partitions(log_dir(settings), _as_day(start), _as_day(end))
        for path in sorted(partition.glob(PART_GLOB))
    ]
    if not files:
        return empty_prediction_log()
    wanted = None if columns is None else list(dict.fromkeys([TIME_COLUMN, "stream_id", *columns]))
    # Files are small and many (one per worker batch): read them on threads, which
    # pyarrow runs without the GIL.
    with ThreadPoolExecutor(max_workers=os.cpu_count() or 2) as pool:
        tables = list(pool.map(lambda path: _read_file(path, wanted), files))
    frame = pa.concat_tables(tables, promote_options="default").to_pandas()
    features = [c for c in frame.columns if c not in BASE_COLUMNS]
    frame[features] = frame[features].astype(np.float64)  # a column absent from a file arrives as null
    return frame.sort_values([TIME_COLUMN, "stream_id"], kind="stable").reset_index(drop=True)


def _read_file(path: Path, columns: list[str] | None) -> pa.Table:
    # ParquetFile reads exactly the file: no partition column inferred from "date=..." folders.
    parquet = pq.ParquetFile(path)
    if columns is None:
        return parquet.read()
    return parquet.read(columns=[c for c in columns if c in parquet.schema_arrow.names])


def empty_prediction_log() -> pd.DataFrame:
    """The log's base columns with their types, and no row."""
    return BASE_SCHEMA.empty_table().to_pandas()


def _as_day(value: date | datetime | str | None) -> date | None:
    if value is None:
        return None
    if isinstance(value, date) and not isinstance(value, datetime):
        return value
    return utc_timestamp(value).date()  # a time (or a time string) counts on its UTC date
