"""The transaction columns as tables and files hold them: Arrow types, UTC timestamps of any
form, and scoring requests built from table rows. Derived from contracts/transactions.py."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
import pyarrow as pa

from contracts.transactions import ColumnKind, ContractColumn, Transaction, contract_columns

# How each kind of column is stored (raw store parts; the prediction log keeps microseconds).
ARROW_TYPES: dict[ColumnKind, pa.DataType] = {
    "id": pa.string(),  # integer ids are kept as their text: one key type whatever the file had
    "timestamp": pa.timestamp("ns", tz="UTC"),
    "integer": pa.int64(),
    "amount": pa.float64(),
    "text": pa.string(),
    "label": pa.int64(),
}


def arrow_schema(columns: Sequence[ContractColumn], time_unit: str = "ns") -> pa.Schema:
    """Columns as stored: the raw store keeps nanoseconds, the prediction log microseconds."""
    return pa.schema(
        [
            pa.field(c.name, pa.timestamp(time_unit, tz="UTC") if c.kind == "timestamp" else ARROW_TYPES[c.kind])
            for c in columns
        ]
    )


def utc_timestamp(value: object) -> pd.Timestamp:
    """A timestamp (datetime, text or number of pandas) in UTC; a naive one is read as UTC."""
    stamp = pd.Timestamp(value)
    return stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")


def request_body(row: Mapping[str, object], model: type[Transaction] = Transaction) -> dict[str, object]:
    """The scoring request (JSON) for one raw-contract row: its payment columns that hold a value."""
    body: dict[str, object] = {}
    for column in contract_columns(model):
        value = row.get(column.name)
        if value is None or value is pd.NaT or (isinstance(value, float) and math.isnan(value)):
            continue
        if column.kind == "timestamp":
            body[column.name] = utc_timestamp(value).isoformat()
        else:
            body[column.name] = value.item() if isinstance(value, np.generic) else value  # JSON needs Python scalars
    return body
