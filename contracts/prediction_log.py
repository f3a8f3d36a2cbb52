"""The prediction log's format: one parquet row per scored payment, written by `fraud worker`,
read by monitoring.

Layout: FRAUD_DATA_DIR/predictions/date=YYYY-MM-DD/part-<first stream id>-<digest>.parquet,
partitioned by the payment's UTC date. A row holds the payment (the contract's payment
columns, contracts/transactions.py), its answer (risk score, decision, model version,
latency, when it was scored), the id of its scoring event on the stream, the trace id of
the scoring request (null without tracing or a caller's `traceparent`), the challenger's
version and score when a shadow rollout sampled the payment (null otherwise), and one float
column per feature the model was given (NaN when missing).

A file's name is a function of the stream ids of the rows it holds, so writing the same
rows again replaces the file with the same content instead of adding a second copy; the
worker (serving/worker.py) builds on that, and on files appearing whole
(contracts/files.py), to log every event exactly once.
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from contracts.events import ScoringEvent
from contracts.settings import Settings
from contracts.tables import arrow_schema, utc_timestamp
from contracts.transactions import ContractColumn, Transaction, column_of_kind, contract_columns

LOG_DIRNAME = "predictions"
PARTITION_PREFIX = "date="
PART_GLOB = "part-*.parquet"

_UTC_US = pa.timestamp("us", tz="UTC")  # the log's time resolution
ANSWER_SCHEMA = pa.schema(
    [
        ("risk_score", pa.float64()),
        ("decision", pa.string()),
        ("model_version", pa.string()),
        ("latency_ms", pa.float64()),
        ("scored_at", _UTC_US),
        ("stream_id", pa.string()),
        ("trace_id", pa.string()),  # the scoring request's trace; null without one (and in older files)
        # Shadow rollout: the challenger version that also scored the payment, and its score
        # (the worker's, on the logged features); null when not sampled (and in older files).
        ("shadow_version", pa.string()),
        ("shadow_score", pa.float64()),
    ]
)


@functools.cache
def base_schema(model: type[Transaction] = Transaction) -> pa.Schema:
    """The columns every log file has: the payment's, then the answer's."""
    return pa.schema([*arrow_schema(contract_columns(model), time_unit="us"), *ANSWER_SCHEMA])


BASE_SCHEMA = base_schema()
BASE_COLUMNS: tuple[str, ...] = tuple(BASE_SCHEMA.names)
TIME_COLUMN = column_of_kind("timestamp", contract_columns(Transaction))


@dataclass(frozen=True)
class LogFile:
    """One file of the log before it is written: where it goes and the rows it holds."""

    day: date  # the payments' UTC date: the partition
    relative_path: str  # "date=YYYY-MM-DD/part-....parquet", relative to the log root
    table: pa.Table

    @property
    def transaction_ids(self) -> list[str]:
        return [str(value) for value in self.table.column("transaction_id").to_pylist()]


def log_dir(settings: Settings) -> Path:
    """Root folder of the prediction log."""
    return settings.data_dir / LOG_DIRNAME


def payment_day(event: ScoringEvent) -> date:
    """The UTC date of the payment: the partition its row goes to."""
    return utc_timestamp(event.transaction[TIME_COLUMN]).date()


def feature_column(name: str) -> str:
    """Column of a feature; a feature named like a base column gets a prefix rather than clobber it."""
    return f"feature_{name}" if name in BASE_COLUMNS else name


def prediction_table(
    entries: Sequence[tuple[str, ScoringEvent]], shadow_scores: Sequence[float | None] | None = None
) -> pa.Table:
    """Log rows of (stream id, event) pairs, in the given order, with the log's column types.

    `shadow_scores`: per entry, the challenger's score of a payment in the shadow sample
    (None: not sampled, or not scored); absent, every shadow score is null."""
    features: dict[str, None] = {}  # an ordered set: the service's order, then any newcomer
    for _, event in entries:
        features.update(dict.fromkeys(event.features))
    events = [event for _, event in entries]
    columns: dict[str, list[Any]] = {
        column.name: [_payment_value(column, event.transaction.get(column.name)) for event in events]
        for column in contract_columns(Transaction)
    }
    columns.update(
        {
            "risk_score": [float(event.risk_score) for event in events],
            "decision": [event.decision for event in events],
            "model_version": [str(event.model_version) for event in events],
            "latency_ms": [float(event.latency_ms) for event in events],
            "scored_at": [_utc_us(event.scored_at) for event in events],
            "stream_id": [stream_id for stream_id, _ in entries],
            "trace_id": [event.trace_id for event in events],
            "shadow_version": [event.shadow_version for event in events],
            "shadow_score": list(shadow_scores) if shadow_scores is not None else [None] * len(events),
        }
    )
    arrays = [pa.array(columns[field.name], type=field.type) for field in BASE_SCHEMA]
    fields = list(BASE_SCHEMA)
    for name in features:
        values = np.array([_as_float(event.features.get(name)) for event in events], dtype=np.float64)
        arrays.append(pa.array(values, type=pa.float64()))  # NaN stays NaN (not null) from numpy
        fields.append(pa.field(feature_column(name), pa.float64()))
    return pa.Table.from_arrays(arrays, schema=pa.schema(fields))


def plan_batch(table: pa.Table) -> list[LogFile]:
    """Split rows into one file per payment date, each named after the stream ids it holds."""
    days = [stamp.date() for stamp in table.column(TIME_COLUMN).to_pylist()]
    files = []
    for day in sorted(set(days)):
        rows = table.filter(pa.array([d == day for d in days]))
        relative = f"{PARTITION_PREFIX}{day.isoformat()}/{file_name(rows.column('stream_id').to_pylist())}"
        files.append(LogFile(day=day, relative_path=relative, table=rows))
    return files


def file_name(stream_ids: Sequence[str]) -> str:
    """A name that only these stream ids, in this order, give (the first id keeps `ls` readable)."""
    digest = hashlib.sha256("\n".join(stream_ids).encode()).hexdigest()[:20]
    return f"part-{stream_ids[0]}-{digest}.parquet"


def partitions(root: Path, start: date | None, end: date | None) -> Iterator[Path]:
    """The log's date partitions from `start` to `end` (both included; None: open)."""
    if not root.is_dir():
        return
    for partition in sorted(root.glob(f"{PARTITION_PREFIX}*")):
        try:
            day = date.fromisoformat(partition.name[len(PARTITION_PREFIX) :])
        except ValueError:  # not one of ours
            continue
        if (start is None or day >= start) and (end is None or day <= end):
            yield partition


def _payment_value(column: ContractColumn, value: object) -> object:
    if value is None:
        return None
    if column.kind == "timestamp":
        return _utc_us(value)
    if column.kind == "id":
        return str(value)
    if column.kind in ("integer", "label"):
        return int(value)  # type: ignore[call-overload]
    if column.kind == "amount":
        return float(value)  # type: ignore[arg-type]
    return value


def _utc_us(value: object) -> datetime:
    """A UTC datetime at the log's resolution (microseconds)."""
    return utc_timestamp(value).floor("us").to_pydatetime()


def _as_float(value: float | None) -> float:
    return float("nan") if value is None else float(value)
