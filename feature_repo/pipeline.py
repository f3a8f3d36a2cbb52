"""The feature pipeline: raw store -> offline feature tables (parquet with event timestamps).

Each stored view's table is a folder of parquet parts, `features/<view>/part-*.parquet`,
which Feast reads as one table (its source's path is that glob). Its columns are those of
the view in `definitions.py` (entity key, event timestamp, then the view's fields): the
definitions say what a table holds, this module only fills it.

- `build_offline_tables` computes every row from all raw transactions (one part per view,
  the earlier parts removed once it is written);
- `extend_offline_tables` adds one part per view for payments newer than the last build,
  computing only their rows (from the 30 + label-delay days before them) and the device
  snapshots of the new days: the daily job (`fraud features refresh`) does not recompute
  the history.

`features/manifest.json` says up to when the tables are built.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
from feast import FeatureView
from feast.type_map import feast_value_type_to_pa

from contracts.files import write_parquet_atomically
from contracts.settings import Settings
from contracts.tracing import step
from feature_repo.store import ENTITIES, STORED_VIEWS, table_dir
from feature_repo.transforms import (
    DAY_S,
    STATE_DAYS,
    customer_state_batches,
    device_profile_table,
    state_row_order,
    terminal_state_batches,
)

log = logging.getLogger(__name__)

EVENT_TIMESTAMP = pa.timestamp("us", tz="UTC")  # Feast's DuckDB store joins at microsecond precision
MANIFEST = "manifest.json"
PART_GLOB = "part-*.parquet"


class LateData(ValueError):
    """Payments older than the last build: only a full build places them."""


@dataclass(frozen=True)
class BuildResult:
    """What a build wrote: per view the part it added and its row count; up to when the tables go."""

    parts: dict[str, Path]
    rows: dict[str, int]
    built_until: pd.Timestamp
    incremental: bool


def table_schema(view: FeatureView) -> pa.Schema:
    """The offline table of a stored view: its entity's join key, the event timestamp, its fields."""
    entity = ENTITIES[view.entities[0]]
    return pa.schema(
        [
            (entity.join_key, feast_value_type_to_pa(entity.value_type)),
            ("event_timestamp", EVENT_TIMESTAMP),
            *((field.name, feast_value_type_to_pa(field.dtype.to_value_type())) for field in view.features),
        ]
    )


def built_until(settings: Settings) -> pd.Timestamp | None:
    """The newest payment the offline tables include; None before the first build."""
    path = settings.offline_dir / MANIFEST
    if not path.is_file():
        return None
    return pd.Timestamp(json.loads(path.read_text())["built_until"])


def build_offline_tables(settings: Settings, transactions: pd.DataFrame) -> BuildResult:
    """Compute every offline feature table from all raw transactions; earlier parts are removed."""
    with step("features.build", {"fraud.incremental": False, "fraud.transactions": len(transactions)}) as span:
        rows = _view_rows(transactions, settings.label_delay_days, keep=None, device_days_after=None)
        result = _write_parts(settings, rows, transactions["tx_datetime"].max(), incremental=False)
        for view in STORED_VIEWS:
            for part in table_dir(settings, view).glob(PART_GLOB):
                if part != result.parts[view.name]:
                    part.unlink()  # its rows are in the new part: the table never goes without them
        span.set_attributes(_row_attributes(result))
    return result


def extend_offline_tables(settings: Settings, transactions: pd.DataFrame, new: pd.Series) -> BuildResult:
    """Add the rows of the payments marked `new` (all newer than the last build) as one part per view.

    `transactions`: the raw store; only its last 30 + label-delay days before the new
    payments are used for their states. Raises LateData when a new payment is not newer
    than what the tables already include.
    """
    until = built_until(settings)
    if until is None:
        raise LateData("the offline tables were never built; run a full build first")
    first_new = transactions.loc[new.to_numpy(), "tx_datetime"].min()
    if first_new <= until:
        raise LateData(f"a new payment ({first_new}) is not newer than the tables ({until}); a full build places it")
    horizon = pd.Timedelta(seconds=(STATE_DAYS + settings.label_delay_days) * DAY_S)
    recent = (transactions["tx_datetime"] > first_new - horizon).to_numpy()
    window = transactions[recent].reset_index(drop=True)
    keep = new.to_numpy()[recent]
    devices = transactions[["tx_datetime", "customer_id", "device_id"]] if "device_id" in transactions else None
    with step("features.build", {"fraud.incremental": True, "fraud.transactions": int(keep.sum())}) as span:
        rows = _view_rows(window, settings.label_delay_days, keep=keep, device_days_after=until, devices=devices)
        result = _write_parts(settings, rows, transactions["tx_datetime"].max(), incremental=True)
        span.set_attributes(_row_attributes(result))
    return result


def _row_attributes(result: BuildResult) -> dict[str, int]:
    """A build's rows per view, as span attributes."""
    return {f"fraud.rows.{name}": rows for name, rows in result.rows.items()}


def _view_rows(
    transactions: pd.DataFrame,
    label_delay_days: int,
    keep: np.ndarray | None,
    device_days_after: pd.Timestamp | None,
    devices: pd.DataFrame | None = None,
) -> dict[str, Iterator[pa.RecordBatch]]:
    """Per stored view, its rows as record batches: for the payments `keep` marks (None: all),
    and device snapshots of the days after `device_days_after` (None: all)."""
    labelled = transactions["is_fraud"].notna().to_numpy() if "is_fraud" in transactions else None
    profile = device_profile_table(transactions if devices is None else devices)
    if device_days_after is not None:
        profile = profile[profile["event_timestamp"] > device_days_after.floor("D") + pd.Timedelta(days=1)]
    return {
        "customer_state": _kept(customer_state_batches(transactions), transactions, "customer_id", keep),
        "terminal_labels": _kept(
            terminal_state_batches(transactions, label_delay_days),
            transactions[labelled] if labelled is not None else transactions,
            "terminal_id",
            None if keep is None or labelled is None else keep[labelled],
        ),
        "device_profile": iter([pa.RecordBatch.from_pandas(profile, preserve_index=False)]),
    }


def _kept(
    batches: Iterable[pa.RecordBatch], rows: pd.DataFrame, key: str, keep: np.ndarray | None
) -> Iterator[pa.RecordBatch]:
    """The state batches' rows of the payments `keep` marks (in `state_row_order`)."""
    if keep is None:
        yield from batches
        return
    wanted = keep[state_row_order(rows, key)]
    at = 0
    for batch in batches:
        mask = wanted[at : at + batch.num_rows]
        at += batch.num_rows
        if mask.any():
            yield batch.filter(pa.array(mask))


def _write_parts(
    settings: Settings, rows: dict[str, Iterator[pa.RecordBatch]], until: pd.Timestamp, incremental: bool
) -> BuildResult:
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
    parts: dict[str, Path] = {}
    counts: dict[str, int] = {}
    for view in STORED_VIEWS:
        schema = table_schema(view)
        counted = _counting((batch.select(schema.names).cast(schema) for batch in rows[view.name]), counts, view.name)
        # Batches keep memory bounded at the Handbook's size; columns in the view's order.
        parts[view.name] = write_parquet_atomically(
            table_dir(settings, view) / f"part-{stamp}.parquet", counted, schema
        )
        log.info("wrote %d rows to %s", counts[view.name], parts[view.name])
    manifest = {"built_until": pd.Timestamp(until).isoformat(), "written_at": stamp, "incremental": incremental}
    (settings.offline_dir / MANIFEST).write_text(json.dumps(manifest, indent=2))
    return BuildResult(parts=parts, rows=counts, built_until=pd.Timestamp(until), incremental=incremental)


def _counting(batches: Iterable[pa.RecordBatch], counts: dict[str, int], name: str) -> Iterator[pa.RecordBatch]:
    counts[name] = 0
    for batch in batches:
        counts[name] += batch.num_rows
        yield batch
