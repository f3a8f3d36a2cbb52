"""The feature pipeline: raw store -> offline feature tables (parquet with event timestamps)."""

from __future__ import annotations

import logging
import os
import tempfile
from collections.abc import Callable, Iterable
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from data.settings import Settings
from feature_repo.transforms import (
    customer_state_batches,
    customer_state_schema,
    device_profile_schema,
    device_profile_table,
    terminal_state_batches,
    terminal_state_schema,
)

log = logging.getLogger(__name__)


def build_offline_tables(settings: Settings, transactions: pd.DataFrame) -> dict[str, Path]:
    """Compute every offline feature table from raw transactions and write each atomically."""
    settings.offline_dir.mkdir(parents=True, exist_ok=True)
    device = pa.Table.from_pandas(device_profile_table(transactions), schema=device_profile_schema(),
                                  preserve_index=False)
    writers: dict[str, tuple[pa.Schema, Callable[[], Iterable[pa.RecordBatch]]]] = {
        "customer_state": (customer_state_schema(), lambda: customer_state_batches(transactions)),
        "terminal_labels": (terminal_state_schema(),
                            lambda: terminal_state_batches(transactions, settings.label_delay_days)),
        "device_profile": (device.schema, lambda: device.to_batches()),
    }
    paths = {}
    for name, (schema, batches) in writers.items():
        paths[name] = _write_atomically(schema, batches(), settings.offline_dir / f"{name}.parquet")
        log.info("wrote %s", paths[name])
    return paths


def _write_atomically(schema: pa.Schema, batches: Iterable[pa.RecordBatch], path: Path) -> Path:
    # Batches keep memory bounded at the Handbook's size; the rename means readers
    # (Feast, a running materialisation) never see a half-written table.
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".parquet.tmp")
    os.close(fd)
    try:
        with pq.ParquetWriter(tmp, schema) as writer:
            for batch in batches:
                writer.write_batch(batch)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    return path
