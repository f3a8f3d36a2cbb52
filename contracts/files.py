"""Writing files whole or not at all: the one atomic, durable parquet writer of the platform.

Raw store parts, offline feature tables and prediction-log files are all written here:
a hidden temp file in the target folder, fsync, `os.replace` onto the final name, then
fsync of the folder (and of its parent when the folder is new), so a reader never sees a
half-written file and a file a caller was told about survives a power cut.
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Iterable
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

TEMP_PREFIX = ".tmp-"  # hidden, and outside every part-*.parquet pattern: readers never pick one up
STALE_TEMP_SECONDS = 3600.0


def write_parquet_atomically(
    path: Path, data: pa.Table | Iterable[pa.RecordBatch], schema: pa.Schema | None = None
) -> Path:
    """Write a table, or record batches of `schema` (memory stays bounded), as the parquet file `path`."""
    created = not path.parent.exists()
    path.parent.mkdir(parents=True, exist_ok=True)
    temp = path.parent / f"{TEMP_PREFIX}{uuid.uuid4().hex}-{path.name}"
    try:
        with open(temp, "wb") as sink:
            if isinstance(data, pa.Table):
                pq.write_table(data, sink)
            else:
                if schema is None:
                    raise ValueError("writing record batches needs their schema")
                with pq.ParquetWriter(sink, schema) as writer:
                    for batch in data:
                        writer.write_batch(batch)
            sink.flush()
            os.fsync(sink.fileno())
        os.replace(temp, path)
    finally:
        temp.unlink(missing_ok=True)  # only left when writing failed: a replaced temp is gone
    fsync_directory(path.parent)
    if created:
        fsync_directory(path.parent.parent)
    return path


def fsync_directory(directory: Path) -> None:
    """Persist a folder's entries (a rename, a new file); a no-op where folders cannot be opened."""
    if os.name != "posix":
        return
    descriptor = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def remove_stale_temp_files(root: Path, older_than_s: float = STALE_TEMP_SECONDS) -> int:
    """Delete temp files a killed writer left anywhere under `root`; young ones may belong to a live writer."""
    cutoff = time.time() - older_than_s
    removed = 0
    for temp in root.glob(f"**/{TEMP_PREFIX}*"):
        try:
            if temp.stat().st_mtime < cutoff:
                temp.unlink()
                removed += 1
        except FileNotFoundError:  # another writer cleaned it up first
            continue
    return removed
