"""The raw transaction contract check: what a transactions file must look like to be ingested.

The columns are declared once, in contracts/transactions.py (`Transaction`, `Labels`); this
module reads a frame by those declarations. A file either meets every rule or is
rejected whole with a report naming each broken rule, the column and the number of
offending rows. Rules by the kind of a column:

- every column: the names are exact; required columns must be present; values must be
  of the column's kind; columns not declared nullable need a value in every row;
- id: integers or non-empty strings, unique (compared as text);
- timestamp: ISO 8601 or datetime values, naive meaning UTC;
- amount: numbers, finite and >= 0;
- integer: whole numbers that fit in int64; label: 0 or 1.

Every check is vectorised so a file of a few million rows is checked in seconds.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from pandas.api import types as ptypes

from contracts.transactions import ColumnKind, ContractColumn, Transaction, column_of_kind, raw_columns

REQUIRED_COLUMNS: tuple[str, ...] = tuple(c.name for c in raw_columns() if c.required)
OPTIONAL_COLUMNS: tuple[str, ...] = tuple(c.name for c in raw_columns() if not c.required)
CONTRACT_COLUMNS: tuple[str, ...] = REQUIRED_COLUMNS + OPTIONAL_COLUMNS

ID_COLUMN = column_of_kind("id")
TIME_COLUMN = column_of_kind("timestamp")
AMOUNT_COLUMN = column_of_kind("amount")
LABEL_COLUMN = column_of_kind("label")
INTEGER_COLUMNS: tuple[str, ...] = tuple(c.name for c in raw_columns() if c.kind in ("integer", "label"))
STRING_COLUMNS: tuple[str, ...] = tuple(c.name for c in raw_columns() if c.kind == "text")

PARQUET_SUFFIXES = (".parquet", ".pq")
CSV_SUFFIXES = (".csv",)

_INT64_LIMIT = 2.0**63  # floats at or beyond this magnitude do not fit in int64
_EXAMPLES = 3  # offending values quoted in a message
# A time followed by "Z" or a +hh[:mm] offset; a bare date such as 2024-03-03 must not match.
_OFFSET_PATTERN = r"\d:\d{2}(?::\d{2}(?:[.,]\d+)?)?\s*(?:[Zz]|[+-]\d{2}(?::?\d{2})?)$"


@dataclass(frozen=True)
class Violation:
    """One broken contract rule: which rule, on which column, in how many rows."""

    rule: str
    column: str
    rows: int  # offending rows; 0 for column-level rules
    message: str


class ContractError(ValueError):
    """A frame or file breaks the contract; `.violations` lists every broken rule."""

    def __init__(self, violations: list[Violation], source: str | None = None) -> None:
        self.violations = list(violations)
        self.source = source
        super().__init__(self._report())

    def _report(self) -> str:
        what = f"transactions from {self.source}" if self.source else "transactions"
        lines = [f"{what} rejected whole: {_count(len(self.violations), 'contract violation')}"]
        for v in self.violations:
            where = _count(v.rows, "row") if v.rows else "whole column"
            lines.append(f"  - {v.rule} [{v.column}] ({where}): {v.message}")
        return "\n".join(lines)

    def __str__(self) -> str:
        return self._report()


class InputFileError(ValueError):
    """A transactions file cannot be read at all (missing, wrong extension, corrupt)."""


@dataclass(frozen=True)
class _Parsed:
    """A column read as its contract type: values plus which rows were null or unreadable."""

    values: pd.Series  # contract-typed where `bad` and `null` are False; undefined elsewhere
    null: np.ndarray  # bool mask: no value at all
    bad: np.ndarray  # bool mask: a value that is not of the contract type


# --------------------------------------------------------------------------- reading


def read_transactions_file(path: Path) -> pd.DataFrame:
    """Read a .parquet/.pq or .csv transactions file into a frame, without validating it.

    Raises InputFileError when the file is missing, has an unsupported extension or is unreadable.
    """
    path = Path(path)
    if not path.exists():
        raise InputFileError(f"no file at {path}; check the path and try again")
    if not path.is_file():
        raise InputFileError(f"{path} is not a file; pass the path of a .parquet or .csv file")
    suffix = path.suffix.lower()
    if suffix in PARQUET_SUFFIXES:
        return _read_parquet(path)
    if suffix in CSV_SUFFIXES:
        return _read_csv(path)
    raise InputFileError(
        f"{path} has unsupported extension {suffix or '(none)'!r}; "
        f"save it as {' or '.join(PARQUET_SUFFIXES + CSV_SUFFIXES)}"
    )


def _read_parquet(path: Path) -> pd.DataFrame:
    try:
        table = pq.read_table(path)
    except (pa.ArrowException, OSError) as err:
        raise InputFileError(f"{path} is not a readable parquet file ({err}); re-export it as parquet") from err
    # Pandas metadata could restore an arbitrary index; the contract only knows columns.
    return table.replace_schema_metadata(None).to_pandas()


def _read_csv(path: Path) -> pd.DataFrame:
    # String columns are read as text so ids like "007" keep their leading zeros; numbers
    # and timestamps are left to the contract check, which reports values that do not parse.
    text_columns = {column: "string" for column in (ID_COLUMN, *STRING_COLUMNS)}
    try:
        frame = pd.read_csv(path, dtype=text_columns)
    except pd.errors.EmptyDataError as err:
        raise InputFileError(f"{path} is empty; a CSV needs a header row with the contract columns") from err
    except (pd.errors.ParserError, UnicodeDecodeError, OSError) as err:
        raise InputFileError(f"{path} is not a readable UTF-8 CSV file ({err}); fix the file and retry") from err
    for column in text_columns:
        if column in frame.columns:
            frame[column] = frame[column].astype(object).where(frame[column].notna(), None)
    return frame


# --------------------------------------------------------------------------- parsing


def _null_mask(series: pd.Series) -> np.ndarray:
    return series.isna().to_numpy(dtype=bool)


def _float_values(series: pd.Series) -> np.ndarray:
    """Numeric series as a float64 array with NaN for nulls (works for nullable dtypes too)."""
    return series.to_numpy(dtype="float64", na_value=np.nan)


def _is_bool(series: pd.Series) -> bool:
    return ptypes.is_bool_dtype(series.dtype)


def _whole_number_mask(values: np.ndarray) -> np.ndarray:
    """True where a float is finite, whole and fits in int64."""
    with np.errstate(invalid="ignore"):
        return np.isfinite(values) & (np.floor(values) == values) & (np.abs(values) < _INT64_LIMIT)


def _parse_integer(series: pd.Series) -> _Parsed:
    """Read an int64 column; floats must be whole, text must spell a whole number."""
    null = _null_mask(series)
    dtype = series.dtype
    if ptypes.is_integer_dtype(dtype) and not _is_bool(series):
        bad = np.zeros(len(series), dtype=bool)
        if ptypes.is_unsigned_integer_dtype(dtype):
            bad = ~null & (_float_values(series) >= _INT64_LIMIT)
        return _Parsed(series, null, bad)
    if ptypes.is_float_dtype(dtype):
        values = _float_values(series)
        return _Parsed(pd.Series(values, index=series.index), null, ~null & ~_whole_number_mask(values))
    if ptypes.is_object_dtype(dtype) or ptypes.is_string_dtype(dtype):
        numbers = pd.to_numeric(series, errors="coerce")
        values = _float_values(numbers)
        # Whole-number check in float is exact enough to spot 3.5; keep exact ints when available.
        keep = numbers if ptypes.is_integer_dtype(numbers.dtype) else pd.Series(values, index=series.index)
        return _Parsed(keep, null, ~null & ~_whole_number_mask(values))
    return _Parsed(series, null, ~null)  # booleans, datetimes, ...: not integers


def _parse_amount(series: pd.Series) -> _Parsed:
    """Read a float64 column; integers are fine, text must spell a number."""
    null = _null_mask(series)
    dtype = series.dtype
    if ptypes.is_numeric_dtype(dtype) and not _is_bool(series):
        return _Parsed(pd.Series(_float_values(series), index=series.index), null, np.zeros(len(series), bool))
    if ptypes.is_object_dtype(dtype) or ptypes.is_string_dtype(dtype):
        values = _float_values(pd.to_numeric(series, errors="coerce"))
        return _Parsed(pd.Series(values, index=series.index), null, ~null & np.isnan(values))
    return _Parsed(series, null, ~null)


def _parse_timestamp(series: pd.Series) -> _Parsed:
    """Read a UTC timestamp column; naive values are UTC, aware values are converted to UTC."""
    null = _null_mask(series)
    dtype = series.dtype
    if isinstance(dtype, pd.DatetimeTZDtype) or ptypes.is_datetime64_dtype(dtype):
        naive = series.dt.tz_convert("UTC").dt.tz_localize(None) if isinstance(dtype, pd.DatetimeTZDtype) else series
        # Non-nanosecond parquet timestamps can lie outside what datetime64[ns] can hold.
        out_of_range = ~null & ((naive < pd.Timestamp.min) | (naive > pd.Timestamp.max)).to_numpy(dtype=bool)
        utc = naive.where(~out_of_range).dt.tz_localize("UTC").dt.as_unit("ns")
        return _Parsed(utc, null, out_of_range)
    if ptypes.is_object_dtype(dtype) or ptypes.is_string_dtype(dtype):
        parsed = _parse_iso_text(series)
        return _Parsed(parsed, null, ~null & parsed.isna().to_numpy(dtype=bool))
    # Numbers would silently become epoch offsets; the contract asks for real timestamps.
    return _Parsed(series, null, ~null)


def _has_offset(series: pd.Series) -> np.ndarray:
    """True where a value carries its own UTC offset ("...Z", "...+01:00" or an aware datetime)."""
    if pd.api.types.infer_dtype(series, skipna=True) in ("string", "empty"):
        text = pa.array(series.astype(object), from_pandas=True, type=pa.string())
        matches = pc.fill_null(pc.match_substring_regex(text, _OFFSET_PATTERN), False)
        return matches.to_numpy(zero_copy_only=False).astype(bool)
    offset = re.compile(_OFFSET_PATTERN)
    return _element_is(
        series,
        lambda v: bool(offset.search(v)) if isinstance(v, str) else getattr(v, "tzinfo", None) is not None,
    )


def _parse_iso_text(series: pd.Series) -> pd.Series:
    """Parse ISO 8601 text to UTC; NaT where a value does not parse.

    pandas 2.3 gives a naive string that follows an offset string that string's offset
    ("...T10:30+01:00", "...T12:00" -> 12:00 is read as +01:00), so naive and offset values
    are parsed separately whenever a column mixes them.
    """
    aware = _has_offset(series)
    if aware.all() or not aware.any():
        return pd.to_datetime(series, utc=True, format="ISO8601", errors="coerce")
    utc = np.empty(len(series), dtype="datetime64[ns]")
    for part in (aware, ~aware):
        parsed = pd.to_datetime(series[part], utc=True, format="ISO8601", errors="coerce")
        utc[part] = parsed.dt.tz_localize(None).to_numpy(dtype="datetime64[ns]")
    return pd.Series(utc, index=series.index).dt.tz_localize("UTC")


def _element_is(series: pd.Series, accept: Callable[[object], bool]) -> np.ndarray:
    """Per-element type test; only used for object columns holding mixed Python types."""
    return np.fromiter((accept(v) for v in series), dtype=bool, count=len(series))


def _is_id_value(value: object) -> bool:
    return isinstance(value, (str, int, np.integer)) and not isinstance(value, (bool, np.bool_))


def _parse_transaction_id(series: pd.Series) -> _Parsed:
    """Read transaction ids as keys that compare like their string form.

    Integer columns stay integers here (cheap to de-duplicate); `normalize` turns them into text.
    An empty string counts as a missing id.
    """
    null = _null_mask(series)
    dtype = series.dtype
    if ptypes.is_integer_dtype(dtype) and not _is_bool(series):
        return _Parsed(series, null, np.zeros(len(series), bool))
    if ptypes.is_float_dtype(dtype):
        values = _float_values(series)
        whole = _whole_number_mask(values)
        keys = pd.Series(np.where(whole, values, 0).astype("int64"), index=series.index)
        return _Parsed(keys, null, ~null & ~whole)
    if ptypes.is_object_dtype(dtype) or ptypes.is_string_dtype(dtype):
        kind = pd.api.types.infer_dtype(series, skipna=True)
        if kind in ("string", "empty"):
            bad = np.zeros(len(series), bool)
        else:
            bad = ~null & ~_element_is(series, _is_id_value)
        keys = series.astype(object).where(null | bad, series.astype(str))
        blank = ~null & ~bad & (keys == "").to_numpy(dtype=bool)
        return _Parsed(keys, null | blank, bad)
    return _Parsed(series, null, ~null)


def _parse_string(series: pd.Series) -> _Parsed:
    """Read an optional text column; nulls are fine, every other value must be a string."""
    null = _null_mask(series)
    if null.all():
        return _Parsed(series.astype(object), null, np.zeros(len(series), bool))
    dtype = series.dtype
    if ptypes.is_string_dtype(dtype) and not ptypes.is_object_dtype(dtype):
        return _Parsed(series, null, np.zeros(len(series), bool))
    if ptypes.is_object_dtype(dtype):
        if pd.api.types.infer_dtype(series, skipna=True) == "string":
            return _Parsed(series, null, np.zeros(len(series), bool))
        return _Parsed(series, null, ~null & ~_element_is(series, lambda v: isinstance(v, str)))
    return _Parsed(series, null, ~null)


_PARSERS: dict[ColumnKind, Callable[[pd.Series], _Parsed]] = {
    "id": _parse_transaction_id,
    "timestamp": _parse_timestamp,
    "amount": _parse_amount,
    "integer": _parse_integer,
    "label": _parse_integer,
    "text": _parse_string,
}

_TYPE_NAMES: dict[ColumnKind, str] = {
    "id": "integers or strings",
    "timestamp": "ISO 8601 timestamps between 1677 and 2262 (naive means UTC)",
    "amount": "numbers",
    "integer": "whole numbers (int64)",
    "label": "whole numbers (int64)",
    "text": "strings",
}


# --------------------------------------------------------------------------- checking


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}{'' if n == 1 else 's'}"


def _examples(series: pd.Series, mask: np.ndarray) -> str:
    values = series[mask].head(_EXAMPLES).tolist()
    return ", ".join(repr(v) for v in values)


def _column_violations(frame: pd.DataFrame, columns: tuple[ContractColumn, ...]) -> list[Violation]:
    """Column-level rules: duplicated, unknown and missing column names."""
    violations: list[Violation] = []
    names = [str(name) for name in frame.columns]
    for name in dict.fromkeys(n for n in names if names.count(n) > 1):
        violations.append(
            Violation("duplicate_column", name, 0, f"column {name!r} appears {names.count(name)} times; keep only one")
        )
    known = [column.name for column in columns]
    for name in dict.fromkeys(n for n in names if n not in known):
        close = difflib.get_close_matches(name, known, n=1)
        hint = f"rename it to {close[0]!r}" if close else "drop it"
        violations.append(
            Violation(
                "unknown_column", name, 0, f"column {name!r} is not in the data contract; {hint} (names are exact)"
            )
        )
    for name in (column.name for column in columns if column.required):
        if name not in names:
            violations.append(
                Violation("missing_column", name, 0, f"required column {name!r} is missing; add it to the file")
            )
    return violations


def _value_violations(column: ContractColumn, series: pd.Series, parsed: _Parsed) -> list[Violation]:
    """Row-level rules for one contract column, each counted in rows."""
    name = column.name
    violations: list[Violation] = []
    bad_rows = int(parsed.bad.sum())
    if bad_rows:
        violations.append(
            Violation(
                "type",
                name,
                bad_rows,
                f"{name!r} holds {_count(bad_rows, 'value')} that cannot be read as {_TYPE_NAMES[column.kind]} "
                f"(e.g. {_examples(series, parsed.bad)}); fix or remove those rows",
            )
        )
    null_rows = int(parsed.null.sum())
    if null_rows and not column.nullable:
        violations.append(
            Violation(
                "not_null", name, null_rows, f"found {_count(null_rows, 'row')} with no {name}; every row needs a value"
            )
        )
    valid = ~parsed.bad & ~parsed.null
    if column.kind == "id":
        violations += _unique_violations(name, parsed.values, valid)
    elif column.kind == "amount":
        violations += _amount_violations(name, _float_values(parsed.values), valid)
    elif column.kind == "label":
        labels = _float_values(parsed.values)
        outside = int((valid & ~np.isin(labels, (0, 1))).sum())
        if outside:
            violations.append(
                Violation(
                    "binary_label",
                    name,
                    outside,
                    f"found {_count(outside, 'row')} with {name} outside {{0, 1}}; use 1 for fraud, 0 for genuine",
                )
            )
    return violations


def _unique_violations(name: str, keys: pd.Series, valid: np.ndarray) -> list[Violation]:
    present = keys[valid]
    repeated = present.duplicated(keep=False)
    rows = int(repeated.sum())
    if not rows:
        return []
    ids = present[repeated].drop_duplicates()
    return [
        Violation(
            "unique",
            name,
            rows,
            f"found {_count(rows, 'row')} sharing a {name} with another row ({_count(len(ids), 'id')}, "
            f"e.g. {', '.join(repr(v) for v in ids.head(_EXAMPLES).tolist())}); each payment needs its own id",
        )
    ]


def _amount_violations(name: str, amounts: np.ndarray, valid: np.ndarray) -> list[Violation]:
    violations: list[Violation] = []
    infinite = valid & np.isinf(amounts)
    if rows := int(infinite.sum()):
        violations.append(
            Violation(
                "finite", name, rows, f"found {_count(rows, 'row')} with an infinite {name}; amounts must be finite"
            )
        )
    with np.errstate(invalid="ignore"):
        negative = valid & ~infinite & (amounts < 0)
    if rows := int(negative.sum()):
        violations.append(
            Violation(
                "non_negative", name, rows, f"found {_count(rows, 'row')} with a negative {name}; amounts must be >= 0"
            )
        )
    return violations


def _column(frame: pd.DataFrame, position: int) -> pd.Series:
    series = frame.iloc[:, position]
    # Dictionary-encoded parquet columns arrive as categoricals; the contract is about their values.
    if isinstance(series.dtype, pd.CategoricalDtype):
        has_nulls = bool(series.isna().any())
        series = series.astype(object) if has_nulls else series.astype(series.cat.categories.dtype)
    return series


def check_contract(frame: pd.DataFrame, payment: type[Transaction] = Transaction) -> list[Violation]:
    """Check every contract rule and return all violations found (empty list means the frame is clean).

    `payment`: the payment declaration to check against (contracts/transactions.py).
    """
    columns = raw_columns(payment)
    violations = _column_violations(frame, columns)
    names = [str(name) for name in frame.columns]
    for column in columns:
        # A duplicated name is already reported; which copy is meant is ambiguous, so skip its values.
        if names.count(column.name) != 1:
            continue
        series = _column(frame, names.index(column.name))
        violations += _value_violations(column, series, _PARSERS[column.kind](series))
    return violations


# --------------------------------------------------------------------------- normalising


def _canonical(column: ContractColumn, parsed: _Parsed) -> pd.Series:
    values = parsed.values
    if column.kind == "id":
        return values.astype(str).astype(object)
    if column.kind == "timestamp":
        return values
    if column.kind == "amount":
        return values.astype("float64")
    if column.kind in ("integer", "label"):
        return values.astype("int64")
    return values.astype(object).where(~parsed.null, None)  # text columns keep nulls as None


def normalize(frame: pd.DataFrame, payment: type[Transaction] = Transaction) -> pd.DataFrame:
    """Return the frame with canonical dtypes and columns in contract order.

    Expects a frame that passed `check_contract` (use `validate` otherwise). Ids become
    text, timestamps datetime64[ns, UTC], integers and labels int64, amounts float64,
    text columns text with nulls as None. Absent optional columns stay absent.
    """
    names = [str(name) for name in frame.columns]
    out: dict[str, pd.Series] = {}
    for column in raw_columns(payment):
        if column.name in names:
            series = _column(frame, names.index(column.name))
            out[column.name] = _canonical(column, _PARSERS[column.kind](series)).reset_index(drop=True)
    return pd.DataFrame(out)


def validate(frame: pd.DataFrame, payment: type[Transaction] = Transaction) -> pd.DataFrame:
    """Check the frame against the contract; raise ContractError listing every violation, else normalise it."""
    violations = check_contract(frame, payment)
    if violations:
        raise ContractError(violations)
    return normalize(frame, payment)
