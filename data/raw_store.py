"""The raw store: validated transactions kept as immutable parquet parts under `Settings.raw_dir`.

Each ingested file becomes one part, `part-<sha256 prefix>.parquet`, named by a digest of its
normalised content. Parts appear whole (contracts/files.py), so readers never see a
half-written part and a rejected or failed ingest leaves the directory as it was. Only
`part-*.parquet` files are read back.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from contracts.files import write_parquet_atomically
from contracts.settings import Settings
from contracts.tables import arrow_schema
from contracts.transactions import raw_columns
from data.contract import (
    CONTRACT_COLUMNS,
    ID_COLUMN,
    INTEGER_COLUMNS,
    LABEL_COLUMN,
    TIME_COLUMN,
    ContractError,
    Violation,
    check_contract,
    normalize,
    read_transactions_file,
)

PART_PREFIX = "part-"
PART_SUFFIX = ".parquet"
_DIGEST_CHARS = 16
_SOURCE_KEY = b"fraud.source"  # provenance kept in each part's schema metadata

# Storage types, so every part has the same schema whatever pandas inferred.
_ARROW_TYPES: dict[str, pa.DataType] = {field.name: field.type for field in arrow_schema(raw_columns())}


class RawStoreEmpty(ValueError):
    """Raised by `RawStore.load` when nothing has been ingested yet."""


@dataclass(frozen=True)
class IngestResult:
    """What one ingest wrote: the part file, its row count, fraud count (None if unlabelled) and time span."""

    path: Path
    rows: int
    frauds: int | None
    start: pd.Timestamp
    end: pd.Timestamp


class RawStore:
    """Append-only store of contract-checked transactions, one parquet part per ingested file."""

    def __init__(self, settings: Settings) -> None:
        self.directory: Path = settings.raw_dir

    def parts(self) -> list[Path]:
        """Stored part files, in name order."""
        if not self.directory.is_dir():
            return []
        return sorted(self.directory.glob(f"{PART_PREFIX}*{PART_SUFFIX}"))

    def ingest_file(self, path: Path) -> IngestResult:
        """Read a .parquet/.csv file, validate it and store it as one new part.

        Raises InputFileError if the file cannot be read and ContractError if it breaks the
        contract or repeats transaction ids already stored; nothing is written in either case.
        """
        path = Path(path)
        return self.ingest_frame(read_transactions_file(path), source=str(path))

    def ingest_frame(self, frame: pd.DataFrame, source: str) -> IngestResult:
        """Validate a frame and store it as one new part; `source` names it in errors and metadata."""
        violations = check_contract(frame)
        if not violations and frame.empty:
            violations = [Violation("no_rows", ID_COLUMN, 0, "the file has no transactions; nothing to ingest")]
        if violations:
            raise ContractError(violations, source=source)
        clean = normalize(frame)
        already = int(clean[ID_COLUMN].isin(self._stored_ids()).sum())
        if already:
            raise ContractError(
                [
                    Violation(
                        "unique_in_store",
                        ID_COLUMN,
                        already,
                        f"found {already} row{'' if already == 1 else 's'} whose transaction_id is already "
                        "in the raw store; this file (or part of it) was ingested before, remove those rows",
                    )
                ],
                source=source,
            )
        part = self._write_part(clean, source)
        frauds = int(clean[LABEL_COLUMN].sum()) if LABEL_COLUMN in clean.columns else None
        return IngestResult(
            path=part,
            rows=len(clean),
            frauds=frauds,
            start=clean[TIME_COLUMN].min(),
            end=clean[TIME_COLUMN].max(),
        )

    def load(self) -> pd.DataFrame:
        """All stored transactions, sorted by tx_datetime then transaction_id, with normalised dtypes.

        Optional columns missing from some parts come out as nulls (integer columns then use
        pandas' nullable Int64); optional columns absent from every part stay absent.
        Raises RawStoreEmpty when nothing has been ingested.
        """
        parts = self.parts()
        if not parts:
            raise RawStoreEmpty(f"no transactions ingested yet (no parts in {self.directory}); run `fraud ingest PATH`")
        # promote_options="default" adds a column missing from a part as nulls.
        table = pa.concat_tables([_read_part(part) for part in parts], promote_options="default")
        table = table.select([column for column in CONTRACT_COLUMNS if column in table.column_names])
        # Arrow sorts several times faster than pandas on object string keys.
        table = table.sort_by([(TIME_COLUMN, "ascending"), (ID_COLUMN, "ascending")])
        frame = table.to_pandas(types_mapper={pa.int64(): pd.Int64Dtype()}.get)
        return _restore_dtypes(frame)

    def transaction_ids(self) -> set[str]:
        """Every transaction_id already stored, as text."""
        return set(self._stored_ids().tolist())

    def _stored_ids(self) -> pd.Series:
        ids = [pq.read_table(part, columns=[ID_COLUMN]).column(0).to_pandas() for part in self.parts()]
        if not ids:
            return pd.Series([], dtype=object)
        return pd.concat(ids, ignore_index=True)

    def _write_part(self, clean: pd.DataFrame, source: str) -> Path:
        schema = pa.schema([(column, _ARROW_TYPES[column]) for column in clean.columns])
        table = pa.Table.from_pandas(clean, schema=schema, preserve_index=False)
        table = table.replace_schema_metadata({_SOURCE_KEY: source.encode("utf-8")})
        final = self.directory / f"{PART_PREFIX}{_content_digest(clean)[:_DIGEST_CHARS]}{PART_SUFFIX}"
        return write_parquet_atomically(final, table)


def _read_part(part: Path) -> pa.Table:
    # Drop pandas/provenance metadata so parts with different columns concatenate cleanly.
    return pq.read_table(part).replace_schema_metadata(None)


def _restore_dtypes(frame: pd.DataFrame) -> pd.DataFrame:
    """Canonical dtypes after a concat: int64 where complete, nullable Int64 where some parts lacked the column.

    Arrow strings already arrive as object columns with None for nulls, as `normalize` produces.
    """
    for column in INTEGER_COLUMNS:
        if column in frame.columns and not frame[column].isna().any():
            frame[column] = frame[column].astype("int64")
    return frame


def _content_digest(clean: pd.DataFrame) -> str:
    """sha256 over column names and row hashes: same content, same name, independent of parquet encoder."""
    digest = hashlib.sha256("\x1f".join(clean.columns).encode("utf-8"))
    row_hashes = pd.util.hash_pandas_object(clean, index=False).to_numpy(dtype=np.uint64)
    digest.update(row_hashes.tobytes())
    return digest.hexdigest()
