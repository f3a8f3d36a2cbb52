"""The feature pipeline: raw store -> offline feature tables (parquet with event timestamps).

Each table's columns are those of its feature view in `definitions.py` (entity key, event
timestamp, then the view's fields), and its file name is the one the view's source names:
the definitions say what a table holds, this module only fills it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from pathlib import Path

import pandas as pd
import pyarrow as pa
from feast import FeatureView, FileSource
from feast.type_map import feast_value_type_to_pa

from contracts.files import write_parquet_atomically
from contracts.settings import Settings
from feature_repo import definitions
from feature_repo.transforms import customer_state_batches, device_profile_table, terminal_state_batches

log = logging.getLogger(__name__)

EVENT_TIMESTAMP = pa.timestamp("us", tz="UTC")  # Feast's DuckDB store joins at microsecond precision
STORED_VIEWS: tuple[FeatureView, ...] = (
    definitions.customer_state,
    definitions.terminal_labels,
    definitions.device_profile,
)
ENTITIES = {entity.name: entity for entity in (definitions.customer, definitions.terminal, definitions.device)}


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


def table_path(settings: Settings, view: FeatureView) -> Path:
    """Where a view's offline table lives under this deployment's data dir (its source's file name)."""
    if not isinstance(view.batch_source, FileSource):
        raise TypeError(f"feature view {view.name} has no file source; the pipeline writes parquet files")
    return settings.offline_dir / Path(view.batch_source.path).name


def build_offline_tables(settings: Settings, transactions: pd.DataFrame) -> dict[str, Path]:
    """Compute every offline feature table from raw transactions and write each atomically."""
    batches: dict[str, Callable[[pa.Schema], Iterable[pa.RecordBatch]]] = {
        "customer_state": lambda schema: customer_state_batches(transactions),
        "terminal_labels": lambda schema: terminal_state_batches(transactions, settings.label_delay_days),
        "device_profile": lambda schema: pa.Table.from_pandas(
            device_profile_table(transactions), schema=schema, preserve_index=False
        ).to_batches(),
    }
    paths = {}
    for view in STORED_VIEWS:
        schema = table_schema(view)
        # Batches keep memory bounded at the Handbook's size; columns in the view's order.
        ordered = (batch.select(schema.names) for batch in batches[view.name](schema))
        paths[view.name] = write_parquet_atomically(table_path(settings, view), ordered, schema)
        log.info("wrote %s", paths[view.name])
    return paths
