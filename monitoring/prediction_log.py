"""The prediction log: one parquet row per scored payment, for monitoring (drift) to read.

Layout: FRAUD_DATA_DIR/predictions/date=YYYY-MM-DD/part-<first stream id>-<digest>.parquet,
partitioned by the payment's UTC date. A row holds the payment, its answer (risk score,
decision, model version, latency, when it was scored), the id of its scoring event on
the stream, and one float column per feature the model was given (NaN when missing).

Files are written whole or not at all (temp file, fsync, os.replace), and a file's name
is a function of the stream ids of the rows it holds: writing the same rows again
replaces the file with the same content instead of adding a second copy. The worker
(serving/worker.py) builds on both to log every event exactly once.
"""

from __future__ import annotations

import hashlib
import os
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from data.settings import Settings
from serving.events import ScoringEvent

LOG_DIRNAME = "predictions"
PARTITION_PREFIX = "date="
TEMP_PREFIX = ".tmp-"  # a leading dot: readers (ours, pyarrow datasets) never pick a temp file up
STALE_TEMP_SECONDS = 3600.0

_UTC_US = pa.timestamp("us", tz="UTC")
BASE_SCHEMA = pa.schema([
    ("transaction_id", pa.string()),
    ("tx_datetime", _UTC_US),
    ("customer_id", pa.int64()),
    ("terminal_id", pa.int64()),
    ("tx_amount", pa.float64()),
    ("device_id", pa.string()),
    ("risk_score", pa.float64()),
    ("decision", pa.string()),
    ("model_version", pa.string()),
    ("latency_ms", pa.float64()),
    ("scored_at", _UTC_US),
    ("stream_id", pa.string()),
])
BASE_COLUMNS: tuple[str, ...] = tuple(BASE_SCHEMA.names)


@dataclass(frozen=True)
class LogFile:
    """One file of the log before it is written: where it goes and the rows it holds."""

    day: date  # the payments' UTC date: the partition
    relative_path: str  # "date=YYYY-MM-DD/part-....parquet", relative to the log root
    table: pa.Table

    @property
    def transaction_ids(self) -> list[str]:
        return self.table.column("transaction_id").to_pylist()


def log_dir(settings: Settings) -> Path:
    """Root folder of the prediction log."""
    return settings.data_dir / LOG_DIRNAME


def payment_day(event: ScoringEvent) -> date:
    """The UTC date of the payment: the partition its row goes to."""
    return _utc(event.transaction["tx_datetime"]).date()


def feature_column(name: str) -> str:
    """Column of a feature; a feature named like a base column gets a prefix rather than clobber it."""
    return f"feature_{name}" if name in BASE_COLUMNS else name


def prediction_table(entries: Sequence[tuple[str, ScoringEvent]]) -> pa.Table:
    """Log rows of (stream id, event) pairs, in the given order, with the log's column types."""
    features: dict[str, None] = {}  # an ordered set: the service's order, then any newcomer
    for _, event in entries:
        features.update(dict.fromkeys(event.features))
    tx = [event.transaction for _, event in entries]
    base = {
        "transaction_id": [str(t["transaction_id"]) for t in tx],
        "tx_datetime": [_utc(t["tx_datetime"]) for t in tx],
        "customer_id": [int(t["customer_id"]) for t in tx],
        "terminal_id": [int(t["terminal_id"]) for t in tx],
        "tx_amount": [float(t["tx_amount"]) for t in tx],
        "device_id": [t.get("device_id") for t in tx],
        "risk_score": [float(event.risk_score) for _, event in entries],
        "decision": [event.decision for _, event in entries],
        "model_version": [str(event.model_version) for _, event in entries],
        "latency_ms": [float(event.latency_ms) for _, event in entries],
        "scored_at": [_utc(event.scored_at) for _, event in entries],
        "stream_id": [stream_id for stream_id, _ in entries],
    }
    arrays = [pa.array(base[field.name], type=field.type) for field in BASE_SCHEMA]
    fields = list(BASE_SCHEMA)
    for name in features:
        values = np.array([_as_float(event.features.get(name)) for _, event in entries], dtype=np.float64)
        arrays.append(pa.array(values, type=pa.float64()))  # NaN stays NaN (not null) from numpy
        fields.append(pa.field(feature_column(name), pa.float64()))
    return pa.Table.from_arrays(arrays, schema=pa.schema(fields))


def plan_batch(table: pa.Table) -> list[LogFile]:
    """Split rows into one file per payment date, each named after the stream ids it holds."""
    days = _row_days(table)
    files = []
    for day in sorted(set(days)):
        rows = table.filter(pa.array([d == day for d in days]))
        relative = f"{PARTITION_PREFIX}{day.isoformat()}/{file_name(rows.column('stream_id').to_pylist())}"
        files.append(LogFile(day=day, relative_path=relative, table=rows))
    return files


def _row_days(table: pa.Table) -> list[date]:
    return [stamp.date() for stamp in table.column("tx_datetime").to_pylist()]


def file_name(stream_ids: Sequence[str]) -> str:
    """A name that only these stream ids, in this order, give (the first id keeps `ls` readable)."""
    digest = hashlib.sha256("\n".join(stream_ids).encode()).hexdigest()[:20]
    return f"part-{stream_ids[0]}-{digest}.parquet"


def write_batch(root: Path, files: Sequence[LogFile]) -> list[Path]:
    """Write planned files under the log root, each atomically and durably; returns their paths."""
    return [_write_atomically(log_file.table, root / log_file.relative_path) for log_file in files]


def _write_atomically(table: pa.Table, path: Path) -> Path:
    created = not path.parent.exists()
    path.parent.mkdir(parents=True, exist_ok=True)
    temp = path.parent / f"{TEMP_PREFIX}{uuid.uuid4().hex}-{path.name}"
    try:
        with open(temp, "wb") as sink:
            pq.write_table(table, sink)
            sink.flush()
            os.fsync(sink.fileno())
        os.replace(temp, path)
    finally:
        temp.unlink(missing_ok=True)  # only left when writing failed: a replaced temp is gone
    # The rename, and a new partition's own entry, must survive a power cut before the
    # caller acknowledges the events it holds.
    _fsync_dir(path.parent)
    if created:
        _fsync_dir(path.parent.parent)
    return path


def _fsync_dir(path: Path) -> None:
    descriptor = os.open(path, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def remove_stale_temp_files(root: Path, older_than_s: float = STALE_TEMP_SECONDS) -> int:
    """Delete temp files a killed writer left behind; young ones may belong to a live writer."""
    cutoff = time.time() - older_than_s
    removed = 0
    for temp in root.glob(f"{PARTITION_PREFIX}*/{TEMP_PREFIX}*"):
        try:
            if temp.stat().st_mtime < cutoff:
                temp.unlink()
                removed += 1
        except FileNotFoundError:  # another worker cleaned it up first
            continue
    return removed


# --- Reading -------------------------------------------------------------------------

def read_prediction_log(settings: Settings, start: date | datetime | str | None = None,
                        end: date | datetime | str | None = None,
                        columns: Sequence[str] | None = None) -> pd.DataFrame:
    """Logged predictions of payments dated start..end (UTC dates, both included; None: open).

    Sorted by payment time. Feature columns a file lacks (another model's inputs) are NaN.
    `columns`: read only these (the base columns among them keep their types; the
    payment time and stream id are always read, for the order). Nothing logged gives an
    empty frame with the base columns and their types.
    """
    files = [path for partition in _partitions(log_dir(settings), _as_day(start), _as_day(end))
             for path in sorted(partition.glob("part-*.parquet"))]
    if not files:
        return empty_prediction_log()
    wanted = None if columns is None else list(dict.fromkeys(["tx_datetime", "stream_id", *columns]))
    # Files are small and many (one per worker batch): read them on threads, which
    # pyarrow runs without the GIL.
    with ThreadPoolExecutor(max_workers=os.cpu_count() or 2) as pool:
        tables = list(pool.map(lambda path: _read_file(path, wanted), files))
    frame = pa.concat_tables(tables, promote_options="default").to_pandas()
    features = [c for c in frame.columns if c not in BASE_COLUMNS]
    frame[features] = frame[features].astype(np.float64)  # a column absent from a file arrives as null
    return frame.sort_values(["tx_datetime", "stream_id"], kind="stable").reset_index(drop=True)


def _read_file(path: Path, columns: list[str] | None) -> pa.Table:
    # ParquetFile reads exactly the file: no partition column inferred from "date=..." folders.
    parquet = pq.ParquetFile(path)
    if columns is None:
        return parquet.read()
    return parquet.read(columns=[c for c in columns if c in parquet.schema_arrow.names])


def empty_prediction_log() -> pd.DataFrame:
    """The log's base columns with their types, and no row."""
    return BASE_SCHEMA.empty_table().to_pandas()


def _partitions(root: Path, start: date | None, end: date | None) -> Iterator[Path]:
    if not root.is_dir():
        return
    for partition in sorted(root.glob(f"{PARTITION_PREFIX}*")):
        try:
            day = date.fromisoformat(partition.name[len(PARTITION_PREFIX):])
        except ValueError:  # not one of ours
            continue
        if (start is None or day >= start) and (end is None or day <= end):
            yield partition


def _as_day(value: date | datetime | str | None) -> date | None:
    if value is None:
        return None
    if isinstance(value, date) and not isinstance(value, datetime):
        return value
    return _utc(value).date()  # a time (or a time string) counts on its UTC date


def _utc(value: object) -> datetime:
    """A UTC timestamp at microsecond precision (the log's resolution); a naive one is read as UTC."""
    stamp = pd.Timestamp(value)
    stamp = stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")
    return stamp.floor("us").to_pydatetime()


def _as_float(value: float | None) -> float:
    return float("nan") if value is None else float(value)
