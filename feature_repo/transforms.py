"""Every feature transform of the platform, in one module.

Training and serving both read features through Feast; what Feast stores and what
its on-demand views compute is defined here and nowhere else.

Stored state (offline tables, and the online store):
- customer state: after each payment of a customer, its payments of the last 30 days
  (times, amounts, device hashes), stamped 1 microsecond after the payment, so the
  payment itself never sees the row it wrote, and the next payment does.
- terminal labels: after each labelled payment on a terminal, the terminal's labelled
  payments of the 30 + delay days up to it, each as the moment its label became known (payment
  time + label delay) with the label, stamped when the newest of them became known, so
  no label younger than the delay is ever visible. The delay is applied here, once, when
  the state is built: what reads the state needs no setting to use it.
- device profile: daily snapshot of customers seen on a device and its age.

Request-time features (Feast on-demand views) turn that state plus the payment being
scored into the Handbook's windows: for windows of 1, 7 and 30 days, the customer's
payments in (t - w, t] with the current one included, and the terminal's payments in
(t - delay - w, t - delay] with their fraud share, that is those whose label became
known in (t - w, t].
"""

from __future__ import annotations

import itertools
import zlib
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

WINDOWS_DAYS: tuple[int, ...] = (1, 7, 30)
STATE_DAYS = max(WINDOWS_DAYS)
DAY_S = 86_400
STATE_STAMP_OFFSET = pd.Timedelta(microseconds=1)
MISSING_DEVICE = ""  # join key used when a payment carries no device id
NO_DEVICE_HASH = 0

CUSTOMER_STATE_COLUMNS = ("recent_tx_epoch_seconds", "recent_tx_amounts", "recent_tx_device_hashes")


def device_hash(device_id: str | None) -> int:
    """A stable 32-bit hash of a device id (0 for none); state keeps hashes, not strings."""
    if not device_id:
        return NO_DEVICE_HASH
    return zlib.crc32(device_id.encode("utf-8")) or 1


def epoch_seconds(when: pd.Series) -> np.ndarray:
    """UTC timestamps as integer seconds (the resolution every window works at)."""
    stamps = pd.to_datetime(when, utc=True)
    return (stamps.astype("datetime64[ns, UTC]").astype(np.int64) // 1_000_000_000).to_numpy()


# --- Stored state: offline tables ----------------------------------------------------


@dataclass(frozen=True)
class _Trailing:
    """For each row of a key-then-time sorted frame, the rows of its trailing window."""

    order: np.ndarray  # positions that sort the input by (key, stamp)
    start: np.ndarray  # per sorted row: first sorted position inside (t - window, t]
    end: np.ndarray  # per sorted row: one past the last row of its key stamped alike

    @classmethod
    def of(cls, keys: np.ndarray, seconds: np.ndarray, stamps: np.ndarray, window_s: int) -> _Trailing:
        order = np.lexsort((stamps, keys))  # as state_row_order: stamps are payment times shifted alike
        k, s, t = keys[order], seconds[order], stamps[order]
        # One sortable number per row: key in the high bits, time in the low 34 bits.
        composite = (k.astype(np.int64) << 34) + (s - s.min())
        start = np.searchsorted(composite, composite - window_s, side="right")
        # Rows of one key with one stamp all hold every one of them: which of them a
        # point-in-time join or a materialisation picks must not matter.
        first_of_tie = np.r_[True, (k[1:] != k[:-1]) | (t[1:] != t[:-1])]
        tie_ends = np.r_[np.flatnonzero(first_of_tie)[1:], len(k)]
        return cls(order=order, start=start, end=tie_ends[np.cumsum(first_of_tie) - 1])

    def list_array(self, values: np.ndarray, pa_type: pa.DataType, rows: slice = slice(None)) -> pa.ListArray:
        """Per row, the values of its window (itself and its ties included), as an Arrow list column."""
        start, end = self.start[rows], self.end[rows]
        lengths = end - start
        offsets = np.zeros(len(lengths) + 1, dtype=np.int32)
        np.cumsum(lengths, out=offsets[1:])
        flat = np.repeat(start - offsets[:-1], lengths) + np.arange(offsets[-1])
        return pa.ListArray.from_arrays(pa.array(offsets), pa.array(values[self.order][flat], type=pa_type))


def microseconds(when: pd.Series) -> np.ndarray:
    """UTC timestamps as integer microseconds (the resolution state rows are stamped at)."""
    return pd.DatetimeIndex(pd.to_datetime(when, utc=True)).floor("us").as_unit("us").asi8


def state_row_order(transactions: pd.DataFrame, key: str) -> np.ndarray:
    """The order a state table's rows come in: by key, then payment time, ties in the frame's order.

    Each state's rows are stamped at their payment's time plus a constant (1 us, or the
    label delay), so ordering by stamp is ordering by payment time.
    """
    return np.lexsort((microseconds(transactions["tx_datetime"]), transactions[key].to_numpy(np.int64)))


def _batches(n: int, size: int) -> Iterator[slice]:
    for begin in range(0, n, size):
        yield slice(begin, min(begin + size, n))


def _state_batches(
    key: str,
    keys: np.ndarray,
    seconds: np.ndarray,
    stamps: pd.Series,
    lists: dict[str, tuple[np.ndarray, pa.DataType]],
    batch_rows: int,
    horizon_days: int = STATE_DAYS,
) -> Iterator[pa.RecordBatch]:
    """One row per payment: its key, its stamp, and per list column the values of the key's
    payments in the `horizon_days` days up to it (itself, and any stamped alike, included), as Arrow batches."""
    trailing = _Trailing.of(keys, seconds, microseconds(stamps), horizon_days * DAY_S)
    sorted_keys, sorted_stamps = keys[trailing.order], stamps.to_numpy()[trailing.order]
    for rows in _batches(len(keys), batch_rows):
        yield pa.RecordBatch.from_arrays(
            [
                pa.array(sorted_keys[rows]),
                pa.array(sorted_stamps[rows], type=pa.timestamp("us", tz="UTC")),
                *(trailing.list_array(values, pa_type, rows) for values, pa_type in lists.values()),
            ],
            names=[key, "event_timestamp", *lists],
        )


def customer_state_batches(transactions: pd.DataFrame, batch_rows: int = 250_000) -> Iterator[pa.RecordBatch]:
    """Customer state rows, one per payment, stamped 1 us after it (bounded memory at any size)."""
    seconds = epoch_seconds(transactions["tx_datetime"])
    stamps = pd.to_datetime(transactions["tx_datetime"], utc=True).dt.floor("us") + STATE_STAMP_OFFSET
    return _state_batches(
        "customer_id",
        transactions["customer_id"].to_numpy(np.int64),
        seconds,
        stamps,
        {
            "recent_tx_epoch_seconds": (seconds, pa.int64()),
            "recent_tx_amounts": (transactions["tx_amount"].to_numpy(np.float64), pa.float64()),
            "recent_tx_device_hashes": (device_hashes(transactions), pa.int64()),
        },
        batch_rows,
    )


def terminal_state_batches(
    transactions: pd.DataFrame, label_delay_days: int, batch_rows: int = 250_000
) -> Iterator[pa.RecordBatch]:
    """Terminal label rows, one per labelled payment, stamped when its label becomes known.

    A row holds the labelled payments of the 30 + delay days up to its own: enough for every
    window of any payment from then until its own label is known, so the newest row, even
    stamped a week ahead (`fraud features materialize` loads it), serves all of them, each
    label unmasked by the request-time features at the moment it becomes known.
    """
    if "is_fraud" not in transactions.columns:
        return iter(())
    labelled = transactions[transactions["is_fraud"].notna()]
    known = epoch_seconds(labelled["tx_datetime"]) + label_delay_days * DAY_S
    stamps = pd.to_datetime(labelled["tx_datetime"], utc=True).dt.floor("us") + pd.Timedelta(days=label_delay_days)
    return _state_batches(
        "terminal_id",
        labelled["terminal_id"].to_numpy(np.int64),
        known,
        stamps,
        {
            "label_known_epoch_seconds": (known, pa.int64()),
            "labelled_tx_frauds": (labelled["is_fraud"].to_numpy(np.int64), pa.int64()),
        },
        batch_rows,
        horizon_days=STATE_DAYS + label_delay_days,
    )


def device_hashes(transactions: pd.DataFrame) -> np.ndarray:
    if "device_id" not in transactions.columns:
        return np.zeros(len(transactions), dtype=np.int64)
    ids = transactions["device_id"]
    codes, uniques = pd.factorize(ids, use_na_sentinel=True)
    table = np.array([device_hash(u) for u in uniques] + [NO_DEVICE_HASH], dtype=np.int64)
    return table[codes]  # the sentinel -1 picks the trailing NO_DEVICE_HASH


def device_profile_table(transactions: pd.DataFrame) -> pd.DataFrame:
    """Daily device snapshots: distinct customers seen on the device, and its age in days.

    The row stamped at 00:00 of day D counts what was seen on days before D; a device
    gets rows from the day after it was first seen through the day after the last
    payment. Data without device columns gives an empty table.
    """
    empty = pd.DataFrame(
        {
            "device_id": pd.Series(dtype=object),
            "event_timestamp": pd.Series(dtype="datetime64[us, UTC]"),
            "device_nb_customers": pd.Series(dtype=np.int64),
            "device_age_days": pd.Series(dtype=np.int64),
        }
    )
    if "device_id" not in transactions.columns:
        return empty
    seen = transactions.loc[
        transactions["device_id"].notna() & (transactions["device_id"] != MISSING_DEVICE),
        ["device_id", "customer_id", "tx_datetime"],
    ]
    if seen.empty:
        return empty
    day0 = transactions["tx_datetime"].min().floor("D")
    n_days = int((transactions["tx_datetime"].max().floor("D") - day0) / pd.Timedelta(days=1)) + 1
    seen = seen.assign(day=((seen["tx_datetime"] - day0) // pd.Timedelta(days=1)).astype(np.int64))
    pairs = seen.groupby(["device_id", "customer_id"], sort=True)["day"].min().reset_index()
    codes, devices = pd.factorize(pairs["device_id"], sort=True)
    first_day = pairs.groupby(codes)["day"].min().to_numpy()
    per_day = np.bincount(codes * n_days + pairs["day"].to_numpy(), minlength=len(devices) * n_days)
    seen_before = np.zeros((len(devices), n_days + 1), dtype=np.int64)
    np.cumsum(per_day.reshape(len(devices), n_days), axis=1, out=seen_before[:, 1:])
    lengths = n_days - first_day
    device_code = np.repeat(np.arange(len(devices)), lengths)
    offsets = np.arange(lengths.sum()) - np.repeat(np.cumsum(lengths) - lengths, lengths)
    snapshot_day = first_day[device_code] + 1 + offsets
    return pd.DataFrame(
        {
            "device_id": np.asarray(devices, dtype=object)[device_code],
            "event_timestamp": pd.DatetimeIndex(day0 + pd.to_timedelta(snapshot_day, unit="D")).as_unit("us"),
            "device_nb_customers": seen_before[device_code, snapshot_day],
            "device_age_days": (snapshot_day - first_day[device_code]).astype(np.int64),
        }
    )


# --- Stored state: online updates ----------------------------------------------------


def next_customer_state(
    state: dict[str, list], tx_epoch_seconds: int, tx_amount: float, tx_device_hash: int
) -> dict[str, list]:
    """The customer state after one more payment: the online twin of `customer_state_batches`."""
    times = list(state.get("recent_tx_epoch_seconds") or [])
    amounts = list(state.get("recent_tx_amounts") or [])
    hashes = list(state.get("recent_tx_device_hashes") or [])
    keep = [i for i, t in enumerate(times) if t > tx_epoch_seconds - STATE_DAYS * DAY_S]
    return {
        "recent_tx_epoch_seconds": [int(times[i]) for i in keep] + [int(tx_epoch_seconds)],
        "recent_tx_amounts": [float(amounts[i]) for i in keep] + [float(tx_amount)],
        "recent_tx_device_hashes": [int(hashes[i]) for i in keep] + [int(tx_device_hash)],
    }


# --- Request-time features (on-demand views) -----------------------------------------


@dataclass(frozen=True)
class Ragged:
    """List-valued column flattened: values, and for each value the row it belongs to.

    Feast's on-demand views pass lists per row; the scorer's online reader decodes Redis
    values straight into this form, and a column already in it is used as is.
    """

    values: np.ndarray
    row: np.ndarray
    lengths: np.ndarray

    @classmethod
    def flat(cls, values: np.ndarray, lengths: np.ndarray) -> Ragged:
        """Rows of `lengths` values each, the rows' values one after the other."""
        return cls(values=values, row=np.repeat(np.arange(len(lengths)), lengths), lengths=lengths)

    @classmethod
    def of(cls, column: Sequence[object] | Ragged, dtype: type) -> Ragged:
        if isinstance(column, Ragged):
            return cls(values=column.values.astype(dtype, copy=False), row=column.row, lengths=column.lengths)
        lists: list[Any] = [v if v is not None and not _is_nan(v) else () for v in column]
        lengths = np.fromiter((len(v) for v in lists), dtype=np.int64, count=len(lists))
        # One pass over every element: far cheaper than an array per row for short lists.
        values: np.ndarray = np.fromiter(itertools.chain.from_iterable(lists), dtype=dtype, count=int(lengths.sum()))
        return cls.flat(values, lengths)

    def total(self, n: int, mask: np.ndarray, weights: np.ndarray | None = None) -> np.ndarray:
        w = mask.astype(np.float64) if weights is None else np.where(mask, weights, 0.0)
        return np.bincount(self.row, weights=w, minlength=n)

    def latest(self, mask: np.ndarray) -> np.ndarray:
        """Per row, the largest value where `mask` holds, or -1 (segment reduce: ufunc.at is slow)."""
        out = np.full(len(self.lengths), -1, dtype=np.int64)
        nonempty = self.lengths > 0
        if nonempty.any():
            starts = (np.cumsum(self.lengths) - self.lengths)[nonempty]
            out[nonempty] = np.maximum.reduceat(np.where(mask, self.values, -1), starts)
        return out


def _is_nan(value: object) -> bool:
    return isinstance(value, float) and np.isnan(value)


Columns = Mapping[str, Sequence[object] | Ragged]  # a DataFrame, or per column lists or Ragged (the scorer)


def customer_request_features(inputs: Columns) -> dict[str, np.ndarray]:
    """Customer windows and payment features, from the customer state and the request.

    Windows are (t - w, t] with the current payment included, as in the Handbook; the
    state holds the payments before it. A customer without state counts one payment.
    """
    t = np.asarray(inputs["tx_epoch_seconds"], dtype=np.int64)
    n = len(t)
    amount = np.asarray(inputs["tx_amount"], dtype=np.float64)
    times = Ragged.of(inputs["recent_tx_epoch_seconds"], np.int64)
    amounts = Ragged.of(inputs["recent_tx_amounts"], np.float64).values
    hashes = Ragged.of(inputs["recent_tx_device_hashes"], np.int64).values
    t_row = t[times.row]
    before = times.values < t_row  # state is strictly before the payment, by construction
    out: dict[str, np.ndarray] = {}
    for w in WINDOWS_DAYS:
        inside = before & (times.values > t_row - w * DAY_S)
        count = times.total(n, inside) + 1
        total = times.total(n, inside, amounts) + amount
        out[f"customer_id_nb_tx_{w}day_window"] = count.astype(np.int64)
        out[f"customer_id_avg_amount_{w}day_window"] = np.round(total / count, 6)
    in_30d = before & (times.values > t_row - STATE_DAYS * DAY_S)
    history = times.total(n, in_30d)
    avg_before = np.divide(times.total(n, in_30d, amounts), history, out=np.full(n, np.nan), where=history > 0)
    last = times.latest(before)
    hour = (t // 3600) % 24
    weekday = (t // DAY_S + 3) % 7  # 1970-01-01 was a Thursday; Monday is 0
    request_hash = np.asarray(inputs["device_hash"], dtype=np.int64)
    same_device = in_30d & (hashes == request_hash[times.row])
    out.update(
        {
            "amount": amount,
            "tx_during_weekend": (weekday >= 5).astype(np.int64),
            "tx_during_night": (hour <= 6).astype(np.int64),
            "amount_over_customer_avg_30day": np.round(amount / np.where(avg_before > 0, avg_before, np.nan), 6),
            "seconds_since_previous_tx": np.where(last >= 0, t - last, np.nan),
            "hour_gap_from_customer_usual": _hour_gap(hour, times, in_30d, n),
            "device_used_by_customer_30day": np.where(
                request_hash == NO_DEVICE_HASH, np.nan, (times.total(n, same_device) > 0).astype(np.float64)
            ),
        }
    )
    return out


def _hour_gap(hour: np.ndarray, times: Ragged, mask: np.ndarray, n: int) -> np.ndarray:
    """Circular distance in hours between the payment and the customer's mean payment hour."""
    angle = (times.values % DAY_S) / DAY_S * 2 * np.pi
    x, y = times.total(n, mask, np.cos(angle)), times.total(n, mask, np.sin(angle))
    usual = (np.arctan2(y, x) / (2 * np.pi) * 24) % 24
    gap = np.abs(hour + 0.5 - usual)
    gap = np.minimum(gap, 24 - gap)
    return np.round(np.where(times.total(n, mask) > 0, gap, np.nan), 6)


def terminal_request_features(inputs: Columns) -> dict[str, np.ndarray]:
    """Terminal windows behind the label delay: the payments whose label became known in (t - w, t]
    (paid in (t - delay - w, t - delay]), and their fraud share (0 when there were none)."""
    t = np.asarray(inputs["tx_epoch_seconds"], dtype=np.int64)
    n = len(t)
    known = Ragged.of(inputs["label_known_epoch_seconds"], np.int64)
    frauds = Ragged.of(inputs["labelled_tx_frauds"], np.int64).values.astype(np.float64)
    t_row = t[known.row]
    out: dict[str, np.ndarray] = {}
    for w in WINDOWS_DAYS:
        inside = (known.values <= t_row) & (known.values > t_row - w * DAY_S)
        count = known.total(n, inside)
        fraud = known.total(n, inside, frauds)
        out[f"terminal_id_nb_tx_{w}day_window"] = count.astype(np.int64)
        out[f"terminal_id_risk_{w}day_window"] = np.round(np.divide(fraud, count, out=np.zeros(n), where=count > 0), 6)
    return out


# --- Entity rows: what both paths send to Feast ---------------------------------------


def entity_frame(transactions: pd.DataFrame) -> pd.DataFrame:
    """Entity rows for `get_historical_features`: join keys, request fields, event time.

    `entity_row` builds the same row for one online request.
    """
    device = (
        transactions["device_id"].fillna(MISSING_DEVICE).astype(str)
        if "device_id" in transactions.columns
        else pd.Series(MISSING_DEVICE, index=transactions.index)
    )
    return pd.DataFrame(
        {
            "transaction_id": transactions["transaction_id"].to_numpy(),
            # Feast's DuckDB store joins at microsecond precision; finer stamps fail its cast.
            "event_timestamp": pd.to_datetime(transactions["tx_datetime"], utc=True).dt.floor("us").to_numpy(),
            "customer_id": transactions["customer_id"].to_numpy(np.int64),
            "terminal_id": transactions["terminal_id"].to_numpy(np.int64),
            "device_id": device.to_numpy(),
            "tx_amount": transactions["tx_amount"].to_numpy(np.float64),
            "tx_epoch_seconds": epoch_seconds(transactions["tx_datetime"]),
            "device_hash": device_hashes(transactions),
        }
    )


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)


def event_micros(tx_datetime: datetime) -> int:
    """A payment's time in microseconds since the epoch: the resolution of Feast's offline join
    (`entity_frame` floors to it), at which both paths compare state stamps with the TTL."""
    aware = tx_datetime if tx_datetime.tzinfo is not None else tx_datetime.replace(tzinfo=UTC)
    return (aware - _EPOCH) // _MICROSECOND


def entity_row(
    customer_id: int, terminal_id: int, device_id: str | None, tx_datetime: datetime, tx_amount: float
) -> dict[str, object]:
    """One online entity row, the single-payment twin of `entity_frame`."""
    return {
        "customer_id": int(customer_id),
        "terminal_id": int(terminal_id),
        "device_id": device_id or MISSING_DEVICE,
        "tx_amount": float(tx_amount),
        # A zone-aware datetime (every request's) gives its own seconds; pd.Timestamp costs ~10 us.
        "tx_epoch_seconds": int(
            tx_datetime.timestamp() if tx_datetime.tzinfo is not None else pd.Timestamp(tx_datetime).timestamp()
        ),
        "device_hash": device_hash(device_id),
    }
