"""Every feature transform of the platform, in one module.

The offline tables (written by `pipeline.py`, read by Feast for training and
materialisation) and the request-time features (run by Feast's on-demand view, for
training and serving alike) are computed here and nowhere else.

Batch features are daily snapshots: the row stamped at midnight starting day D holds
what was known at that moment, i.e. transactions of days strictly before D, and
labels of transactions at least `label_delay_days` before D. A transaction at time t
on day D is joined (point in time) to the snapshot of D, so it never sees itself,
anything later, or a label younger than the delay.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

WINDOWS_DAYS: tuple[int, ...] = (1, 7, 30)
DAY = pd.Timedelta(days=1)
MISSING_DEVICE = ""  # join key used when a transaction carries no device id


@dataclass(frozen=True)
class DayGrid:
    """The days a table spans: day 0 is the first transaction's UTC day."""

    day0: pd.Timestamp
    n_days: int

    @classmethod
    def of(cls, tx_datetime: pd.Series) -> "DayGrid":
        day0 = tx_datetime.min().floor("D")
        last = tx_datetime.max().floor("D")
        return cls(day0=day0, n_days=int((last - day0) / DAY) + 1)

    def day_index(self, tx_datetime: pd.Series) -> np.ndarray:
        return ((tx_datetime - self.day0) // DAY).to_numpy(dtype=np.int64)

    def snapshot_times(self, snapshot_days: np.ndarray) -> pd.DatetimeIndex:
        return pd.DatetimeIndex(self.day0 + pd.to_timedelta(snapshot_days, unit="D"))


def _prefix_sums(codes: np.ndarray, days: np.ndarray, weights: np.ndarray | None,
                 n_entities: int, n_days: int) -> np.ndarray:
    """P[e, k] = sum of `weights` of entity e over days < k (shape n_entities x n_days + 1)."""
    flat = np.bincount(codes * n_days + days, weights=weights, minlength=n_entities * n_days)
    per_day = flat.reshape(n_entities, n_days)
    prefix = np.zeros((n_entities, n_days + 1), dtype=np.float64)
    np.cumsum(per_day, axis=1, out=prefix[:, 1:])
    return prefix


def _window_total(prefix: np.ndarray, end_day: np.ndarray, window: int) -> np.ndarray:
    """Totals over days [end_day - window, end_day) for every entity and snapshot day."""
    hi = np.clip(end_day, 0, prefix.shape[1] - 1)
    lo = np.clip(end_day - window, 0, prefix.shape[1] - 1)
    return prefix[:, hi] - prefix[:, lo]


def customer_spending_table(transactions: pd.DataFrame) -> pd.DataFrame:
    """Daily customer snapshots: number of transactions and average amount over 1/7/30 days.

    One row per customer and day D (the day after the first transaction through the
    day after the last), covering transactions of days [D - w, D).
    """
    grid = DayGrid.of(transactions["tx_datetime"])
    codes, customers = pd.factorize(transactions["customer_id"], sort=True)
    days = grid.day_index(transactions["tx_datetime"])
    n = len(customers)
    counts = _prefix_sums(codes, days, None, n, grid.n_days)
    amounts = _prefix_sums(codes, days, transactions["tx_amount"].to_numpy(), n, grid.n_days)
    snapshot_days = np.arange(1, grid.n_days + 1)
    table = _entity_day_frame("customer_id", np.asarray(customers), grid, snapshot_days)
    for w in WINDOWS_DAYS:
        nb = _window_total(counts, snapshot_days, w)
        total = _window_total(amounts, snapshot_days, w)
        avg = np.divide(total, nb, out=np.zeros_like(total), where=nb > 0)
        table[f"customer_id_nb_tx_{w}day_window"] = nb.ravel().astype(np.int64)
        table[f"customer_id_avg_amount_{w}day_window"] = np.round(avg.ravel(), 6)
    return table


def terminal_risk_table(transactions: pd.DataFrame, label_delay_days: int) -> pd.DataFrame:
    """Daily terminal snapshots: transactions and fraud share over 1/7/30 days, behind the label delay.

    The snapshot of day D covers days [D - delay - w, D - delay): only labels at least
    `label_delay_days` old are known then. Risk is 0 when the window has no transaction,
    and missing when the data carries no labels at all.
    """
    grid = DayGrid.of(transactions["tx_datetime"])
    codes, terminals = pd.factorize(transactions["terminal_id"], sort=True)
    days = grid.day_index(transactions["tx_datetime"])
    n = len(terminals)
    counts = _prefix_sums(codes, days, None, n, grid.n_days)
    labelled = "is_fraud" in transactions.columns
    frauds = (_prefix_sums(codes, days, transactions["is_fraud"].to_numpy(np.float64), n, grid.n_days)
              if labelled else None)
    snapshot_days = np.arange(1, grid.n_days + 1)
    known_until = snapshot_days - label_delay_days
    table = _entity_day_frame("terminal_id", np.asarray(terminals), grid, snapshot_days)
    for w in WINDOWS_DAYS:
        nb = _window_total(counts, known_until, w)
        table[f"terminal_id_nb_tx_{w}day_window"] = nb.ravel().astype(np.int64)
        if frauds is None:
            table[f"terminal_id_risk_{w}day_window"] = np.nan
            continue
        nb_fraud = _window_total(frauds, known_until, w)
        risk = np.divide(nb_fraud, nb, out=np.zeros_like(nb_fraud), where=nb > 0)
        table[f"terminal_id_risk_{w}day_window"] = np.round(risk.ravel(), 6)
    return table


def device_profile_table(transactions: pd.DataFrame) -> pd.DataFrame:
    """Daily device snapshots: distinct customers seen on the device, and its age in days.

    A device gets rows from the day after it was first seen. Data without device
    columns gives an empty table, so device features come out missing downstream.
    """
    columns = ["device_id", "event_timestamp", "device_nb_customers", "device_age_days"]
    if "device_id" not in transactions.columns:
        return _empty_device_table(columns)
    seen = transactions.loc[transactions["device_id"].notna(), ["device_id", "customer_id", "tx_datetime"]]
    seen = seen[seen["device_id"] != MISSING_DEVICE]
    if seen.empty:
        return _empty_device_table(columns)
    grid = DayGrid.of(transactions["tx_datetime"])
    seen = seen.assign(day=grid.day_index(seen["tx_datetime"]))
    pairs = seen.groupby(["device_id", "customer_id"], sort=True)["day"].min().reset_index()
    codes, devices = pd.factorize(pairs["device_id"], sort=True)
    first_day = pairs.groupby(codes)["day"].min().to_numpy()
    new_customers = _prefix_sums(codes, pairs["day"].to_numpy(), None, len(devices), grid.n_days)
    # Rows from the day after first sight through the day after the last transaction.
    lengths = grid.n_days - first_day
    device_code = np.repeat(np.arange(len(devices)), lengths)
    offsets = np.arange(lengths.sum()) - np.repeat(np.cumsum(lengths) - lengths, lengths)
    snapshot_day = first_day[device_code] + 1 + offsets
    return pd.DataFrame({
        "device_id": np.asarray(devices, dtype=object)[device_code],
        "event_timestamp": grid.snapshot_times(snapshot_day),
        "device_nb_customers": new_customers[device_code, snapshot_day].astype(np.int64),
        "device_age_days": (snapshot_day - first_day[device_code]).astype(np.int64),
    })


def _empty_device_table(columns: list[str]) -> pd.DataFrame:
    return pd.DataFrame({
        "device_id": pd.Series(dtype=object),
        "event_timestamp": pd.Series(dtype="datetime64[ns, UTC]"),
        "device_nb_customers": pd.Series(dtype=np.int64),
        "device_age_days": pd.Series(dtype=np.int64),
    })[columns]


def _entity_day_frame(key: str, entities: np.ndarray, grid: DayGrid,
                      snapshot_days: np.ndarray) -> pd.DataFrame:
    """Entity x snapshot-day frame in entity-major order (matches `.ravel()` of the matrices)."""
    return pd.DataFrame({
        key: np.repeat(entities, len(snapshot_days)).astype(np.int64),
        "event_timestamp": grid.snapshot_times(np.tile(snapshot_days, len(entities))),
    })


# Request-time features -------------------------------------------------------------

def request_time_features(inputs: pd.DataFrame) -> pd.DataFrame:
    """Features of the transaction itself, computed at request time (Feast on-demand view).

    `inputs` holds the request fields (`tx_amount`, `tx_epoch_seconds`) and the
    customer's 30-day average amount from the batch snapshot.
    """
    when = pd.to_datetime(inputs["tx_epoch_seconds"].astype(np.int64), unit="s", utc=True)
    amount = inputs["tx_amount"].astype(np.float64)
    avg = pd.to_numeric(inputs["customer_id_avg_amount_30day_window"], errors="coerce").astype(np.float64)
    ratio = np.where(avg > 0, amount / avg.where(avg > 0, 1.0), np.nan)
    return pd.DataFrame({
        "amount": amount.to_numpy(),
        "tx_hour": when.dt.hour.astype(np.int64).to_numpy(),
        "tx_during_weekend": (when.dt.weekday >= 5).astype(np.int64).to_numpy(),
        "tx_during_night": (when.dt.hour <= 6).astype(np.int64).to_numpy(),
        "amount_over_customer_avg_30day": np.round(ratio, 6),
    }, index=inputs.index)


def entity_frame(transactions: pd.DataFrame) -> pd.DataFrame:
    """Entity rows for `get_historical_features`: join keys, request fields and the event time.

    The online path builds the same row with `entity_row`; both produce the values the
    on-demand view reads, so training and serving see identical inputs.
    """
    device = (transactions["device_id"].fillna(MISSING_DEVICE).astype(str)
              if "device_id" in transactions.columns else MISSING_DEVICE)
    return pd.DataFrame({
        "transaction_id": transactions["transaction_id"].to_numpy(),
        # Feast's DuckDB store joins at microsecond precision; finer stamps fail its cast.
        "event_timestamp": pd.to_datetime(transactions["tx_datetime"], utc=True).dt.floor("us"),
        "customer_id": transactions["customer_id"].astype(np.int64).to_numpy(),
        "terminal_id": transactions["terminal_id"].astype(np.int64).to_numpy(),
        "device_id": device,
        "tx_amount": transactions["tx_amount"].astype(np.float64).to_numpy(),
        "tx_epoch_seconds": _epoch_seconds(transactions["tx_datetime"]),
    })


def entity_row(customer_id: int, terminal_id: int, device_id: str | None,
               tx_datetime: pd.Timestamp, tx_amount: float) -> dict[str, object]:
    """One online entity row, the single-transaction twin of `entity_frame`."""
    return {
        "customer_id": int(customer_id),
        "terminal_id": int(terminal_id),
        "device_id": device_id or MISSING_DEVICE,
        "tx_amount": float(tx_amount),
        "tx_epoch_seconds": int(_epoch_seconds(pd.Series([tx_datetime]))[0]),
    }


def _epoch_seconds(when: pd.Series) -> np.ndarray:
    stamps = pd.to_datetime(when, utc=True)
    return (stamps.astype("datetime64[ns, UTC]").astype(np.int64) // 1_000_000_000).to_numpy()
