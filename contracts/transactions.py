"""The raw transaction contract, declared once (DESIGN.md section 2).

`Transaction` is one card payment as a client sends it to the scorer; `Labels` are the
columns a raw file may add to it. Each field says, with its `Column`, how the contract
check reads it and whether it may hold nulls; its pydantic annotation says what the
scoring API accepts. Everything else is derived from these two classes, never written out
again: the contract check and normalisation (data/contract.py), the raw store's Arrow
schema and request bodies built from raw rows (contracts/tables.py), the payment inside
a scoring event (contracts/events.py) and the prediction log's payment columns
(contracts/prediction_log.py). Adding a field to `Transaction` adds a column to each.
Only pydantic here: the scorer's request model loads nothing more.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictInt, StrictStr, field_validator

INT64_MAX = 2**63 - 1  # ids are int64 in Feast's keys, the log and the events

ColumnKind = Literal["id", "timestamp", "integer", "amount", "text", "label"]


@dataclass(frozen=True)
class Column:
    """Field metadata: the contract type of a column, and whether it may hold nulls."""

    kind: ColumnKind
    nullable: bool = False


@dataclass(frozen=True)
class ContractColumn:
    """One column of the contract, as the checks and the stores use it."""

    name: str
    kind: ColumnKind
    required: bool  # must be present in every file (optional columns may be absent)
    nullable: bool  # may hold nulls where present


Identifier = Annotated[int, Field(strict=True, ge=0, le=INT64_MAX)]


class Transaction(BaseModel):
    """One card payment to score: the raw contract's columns without the label."""

    model_config = ConfigDict(extra="forbid")

    transaction_id: Annotated[
        Annotated[StrictInt, Field(ge=-INT64_MAX - 1, le=INT64_MAX)]
        | Annotated[StrictStr, Field(min_length=1, max_length=128)],
        Column("id"),
    ]
    tx_datetime: Annotated[
        datetime, Column("timestamp"), Field(description="ISO 8601; a time without zone is read as UTC")
    ]
    customer_id: Annotated[Identifier, Column("integer")]
    terminal_id: Annotated[Identifier, Column("integer")]
    tx_amount: Annotated[float, Field(strict=True, ge=0, allow_inf_nan=False), Column("amount")]
    device_id: Annotated[str | None, Field(max_length=128), Column("text", nullable=True)] = None
    device_type: Annotated[str | None, Field(max_length=64), Column("text", nullable=True)] = None
    device_os: Annotated[str | None, Field(max_length=64), Column("text", nullable=True)] = None

    @field_validator("tx_datetime")
    @classmethod
    def _as_utc(cls, value: datetime) -> datetime:
        return as_utc(value)


class Labels(BaseModel):
    """What a raw file may carry beside the payment, and a scoring request never does.

    Both columns are optional (unlabelled data has neither); where present, every row
    needs a value.
    """

    is_fraud: Annotated[int | None, Column("label")] = None  # 0 or 1
    fraud_scenario: Annotated[int | None, Column("integer")] = None  # simulator ground truth, never a feature


# The simulator's fraud scenarios (DESIGN.md section 4), by `fraud_scenario` value.
FRAUD_SCENARIOS: dict[int, str] = {
    0: "legitimate",
    1: "large amount",
    2: "compromised terminal",
    3: "compromised card",
    4: "account takeover",
}


def scenario_name(scenario_id: int) -> str:
    """The readable name of a fraud scenario id ("scenario N" when unknown)."""
    return FRAUD_SCENARIOS.get(scenario_id, f"scenario {scenario_id}")


@functools.cache
def contract_columns(model: type[BaseModel] = Transaction) -> tuple[ContractColumn, ...]:
    """The columns a model declares, in declaration order."""
    columns = []
    for name, field in model.model_fields.items():
        marks = [m for m in field.metadata if isinstance(m, Column)]
        if len(marks) != 1:
            raise TypeError(f"{model.__name__}.{name} needs exactly one Column(...) in its annotation")
        columns.append(
            ContractColumn(name=name, kind=marks[0].kind, required=field.is_required(), nullable=marks[0].nullable)
        )
    return tuple(columns)


def raw_columns(payment: type[Transaction] = Transaction) -> tuple[ContractColumn, ...]:
    """Every column of a raw transactions file: the payment's, then the labels."""
    return contract_columns(payment) + contract_columns(Labels)


def column_names(columns: Sequence[ContractColumn]) -> tuple[str, ...]:
    return tuple(column.name for column in columns)


def label_columns() -> tuple[str, ...]:
    """Columns a raw file may carry that a scoring request never does."""
    return column_names(contract_columns(Labels))


def column_of_kind(kind: ColumnKind, columns: Sequence[ContractColumn] | None = None) -> str:
    """The one column of a kind the contract has exactly one of (id, timestamp, amount, label)."""
    names = [column.name for column in (raw_columns() if columns is None else columns) if column.kind == kind]
    if len(names) != 1:
        raise TypeError(f"{len(names)} columns of kind {kind!r}; the contract needs exactly one")
    return names[0]


def as_utc(value: datetime) -> datetime:
    """A datetime in UTC; a naive one is read as UTC (the contract's rule)."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
