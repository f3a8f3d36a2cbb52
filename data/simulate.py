"""Synthetic card transactions: the Fraud Detection Handbook simulator, vectorised.

Re-implements the transaction data simulator of Le Borgne et al., *Reproducible Machine
Learning for Credit Card Fraud Detection - Practical Handbook*, chapter 3.2, with numpy
arrays instead of per-transaction Python loops, and extends it with

* device metadata: every customer owns one to three devices and uses them for its
  transactions, and
* a fourth fraud scenario, account takeover: a night-time burst of new transactions
  from a device the customer has never used.

All randomness comes from ``numpy.random.default_rng(config.seed)``, split into one
independent child stream per stage. The same config therefore gives the same frame,
the profile helpers below reproduce exactly the tables the simulator used, and
switching devices off leaves every other column unchanged.
"""

from __future__ import annotations

import datetime
import math
import numbers
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
import pandas as pd

__all__ = [
    "SimulationConfig",
    "TRANSACTION_COLUMNS",
    "DEVICE_COLUMNS",
    "simulate_transactions",
    "generate_customer_profiles",
    "generate_terminal_profiles",
    "generate_device_profiles",
    "draw_compromised_terminals",
    "draw_compromised_customers",
]

SECONDS_PER_DAY = 86_400
GRID_SIZE = 100.0

# Handbook fraud rules; the per-day rates are the book's at its own size and are
# scaled linearly with the number of terminals / customers.
FRAUD_AMOUNT_THRESHOLD = 220.0
BOOK_N_CUSTOMERS = 5_000
BOOK_N_TERMINALS = 10_000
COMPROMISED_TERMINALS_PER_DAY = 2.0
TERMINAL_COMPROMISE_DAYS = 28
COMPROMISED_CUSTOMERS_PER_DAY = 3.0
CUSTOMER_COMPROMISE_DAYS = 14
CUSTOMER_COMPROMISE_AMOUNT_FACTOR = 5.0
TAKEOVERS_PER_DAY = 0.5

# Account-takeover burst shape (scenario 4).
TAKEOVER_MIN_TX, TAKEOVER_MAX_TX = 3, 8
TAKEOVER_LATEST_START_SECONDS = 5 * 3_600
TAKEOVER_BURST_SECONDS = 3_600
TAKEOVER_AMOUNT_FACTOR = (1.5, 3.0)

# Devices: codes index DEVICE_TYPES; each type has its own OS mix.
DEVICE_TYPES = ("mobile", "desktop", "tablet")
DEVICE_TYPE_PROBABILITIES = (0.55, 0.30, 0.15)
DEVICE_OS_BY_TYPE: dict[str, tuple[tuple[str, ...], tuple[float, ...]]] = {
    "mobile": (("ios", "android"), (0.45, 0.55)),
    "desktop": (("windows", "macos", "linux"), (0.70, 0.22, 0.08)),
    "tablet": (("ios", "android"), (0.60, 0.40)),
}
MAX_DEVICES_PER_CUSTOMER = 3
FIRST_DEVICE_SHARE = 0.7
TAKEOVER_DEVICE_TYPE_PROBABILITIES = (0.6, 0.4)  # mobile, desktop

DEVICE_COLUMNS = ("device_id", "device_type", "device_os")
TRANSACTION_COLUMNS = (
    "transaction_id",
    "tx_datetime",
    "customer_id",
    "terminal_id",
    "tx_amount",
    *DEVICE_COLUMNS,
    "is_fraud",
    "fraud_scenario",
)

# Caps the customer x terminal distance block at a few tens of MB at any size.
_DISTANCE_BLOCK_CELLS = 2_000_000


@dataclass(frozen=True)
class SimulationConfig:
    """Size, period and seed of one simulated data set.

    ``start_date`` None means "today (UTC) minus ``n_days``", so the data ends yesterday.
    """

    n_customers: int = 1000
    n_terminals: int = 2000
    n_days: int = 61
    start_date: datetime.date | None = None
    seed: int = 0
    radius: float = 5.0
    with_devices: bool = True

    def __post_init__(self) -> None:
        for name in ("n_customers", "n_terminals", "n_days"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value <= 0:
                raise ValueError(f"{name} must be a positive integer, got {value!r}; pass 1 or more.")
        if isinstance(self.seed, bool) or not isinstance(self.seed, numbers.Integral) or self.seed < 0:
            raise ValueError(f"seed must be a non-negative integer, got {self.seed!r}; pass 0 or more.")
        if isinstance(self.radius, bool) or not isinstance(self.radius, numbers.Real):
            raise ValueError(f"radius must be a number, got {self.radius!r}; pass a positive distance.")
        if not math.isfinite(self.radius) or self.radius <= 0:
            raise ValueError(f"radius must be a positive finite distance, got {self.radius!r}; pass e.g. 5.0.")
        if self.start_date is not None and (
            isinstance(self.start_date, datetime.datetime) or not isinstance(self.start_date, datetime.date)
        ):
            raise ValueError(
                f"start_date must be a datetime.date or None, got {self.start_date!r}; "
                "pass a plain date such as datetime.date(2018, 4, 1)."
            )
        if not isinstance(self.with_devices, bool):
            raise ValueError(f"with_devices must be True or False, got {self.with_devices!r}.")

    @classmethod
    def handbook(cls) -> "SimulationConfig":
        """The book's setup: 5,000 customers, 10,000 terminals, 183 days from 2018-04-01, seed 0."""
        return cls(
            n_customers=BOOK_N_CUSTOMERS,
            n_terminals=BOOK_N_TERMINALS,
            n_days=183,
            start_date=datetime.date(2018, 4, 1),
            seed=0,
        )

    def resolved_start_date(self) -> datetime.date:
        """First simulated day: ``start_date``, or today (UTC) minus ``n_days`` when it is None."""
        if self.start_date is not None:
            return self.start_date
        today = datetime.datetime.now(datetime.UTC).date()
        return today - datetime.timedelta(days=self.n_days)


class _Streams(NamedTuple):
    """One independent generator per stage, so a stage's draws never shift another's."""

    customers: np.random.Generator
    terminals: np.random.Generator
    transactions: np.random.Generator
    devices: np.random.Generator
    compromised_terminals: np.random.Generator
    compromised_customers: np.random.Generator
    customer_fraud: np.random.Generator
    takeovers: np.random.Generator


def _streams(seed: int) -> _Streams:
    return _Streams(*np.random.default_rng(seed).spawn(len(_Streams._fields)))


# --------------------------------------------------------------------------- profiles


def generate_customer_profiles(config: SimulationConfig) -> pd.DataFrame:
    """Customer table the simulator uses for ``config`` (book rules).

    Columns: customer_id, x, y (uniform on the 100x100 grid), mean_amount ~ U(5, 100),
    std_amount = mean_amount / 2, mean_nb_tx_per_day ~ U(0, 4).
    """
    rng = _streams(config.seed).customers
    n = config.n_customers
    xy = rng.uniform(0.0, GRID_SIZE, size=(n, 2))
    mean_amount = rng.uniform(5.0, 100.0, size=n)
    mean_nb_tx_per_day = rng.uniform(0.0, 4.0, size=n)
    return pd.DataFrame(
        {
            "customer_id": np.arange(n, dtype=np.int64),
            "x": xy[:, 0],
            "y": xy[:, 1],
            "mean_amount": mean_amount,
            "std_amount": mean_amount / 2.0,
            "mean_nb_tx_per_day": mean_nb_tx_per_day,
        }
    )


def generate_terminal_profiles(config: SimulationConfig) -> pd.DataFrame:
    """Terminal table the simulator uses for ``config``: terminal_id, x, y uniform on the grid."""
    rng = _streams(config.seed).terminals
    xy = rng.uniform(0.0, GRID_SIZE, size=(config.n_terminals, 2))
    return pd.DataFrame(
        {"terminal_id": np.arange(config.n_terminals, dtype=np.int64), "x": xy[:, 0], "y": xy[:, 1]}
    )


def generate_device_profiles(config: SimulationConfig) -> pd.DataFrame:
    """Devices each customer owns for ``config``: one to three per customer.

    Columns: device_id ("dev-<customer>-<k>"), customer_id, device_index (k, 0 = the
    customer's main device), device_type, device_os (consistent with the type).
    """
    rng = _streams(config.seed).devices
    n_owned = rng.integers(1, MAX_DEVICES_PER_CUSTOMER + 1, size=config.n_customers)
    owner = np.repeat(np.arange(config.n_customers, dtype=np.int64), n_owned)
    # Position of each device within its owner's block: 0, 1, ... per customer.
    starts = np.repeat(np.cumsum(n_owned) - n_owned, n_owned)
    index = np.arange(owner.size, dtype=np.int64) - starts
    type_codes = rng.choice(len(DEVICE_TYPES), size=owner.size, p=DEVICE_TYPE_PROBABILITIES)
    os_names = _draw_device_os(type_codes, rng.random(owner.size))
    return pd.DataFrame(
        {
            "device_id": _device_ids(owner, index),
            "customer_id": owner,
            "device_index": index,
            "device_type": np.asarray(DEVICE_TYPES, dtype=object)[type_codes],
            "device_os": os_names,
        }
    )


def _device_ids(customer_ids: np.ndarray, indices: np.ndarray) -> np.ndarray:
    ids = "dev-" + pd.Series(customer_ids).astype(str) + "-" + pd.Series(indices).astype(str)
    return ids.to_numpy(dtype=object)


def _draw_device_os(type_codes: np.ndarray, uniforms: np.ndarray) -> np.ndarray:
    """Map each device's type code and a U(0, 1) draw to an OS name of that type's mix."""
    os_names = np.empty(type_codes.size, dtype=object)
    for code, device_type in enumerate(DEVICE_TYPES):
        names, probabilities = DEVICE_OS_BY_TYPE[device_type]
        mask = type_codes == code
        # Clip guards the float edge where the cumulative sum ends just below 1.
        picks = np.searchsorted(np.cumsum(probabilities), uniforms[mask], side="right")
        os_names[mask] = np.asarray(names, dtype=object)[np.minimum(picks, len(names) - 1)]
    return os_names


def _terminals_within_radius(
    customers: pd.DataFrame, terminals: pd.DataFrame, radius: float
) -> tuple[np.ndarray, np.ndarray]:
    """Terminals each customer can use, in CSR form: (offsets, terminal ids).

    Customer c uses ``ids[offsets[c]:offsets[c + 1]]``; like the book, a terminal is in
    range when its Euclidean distance is strictly below ``radius``.
    """
    customer_xy = customers[["x", "y"]].to_numpy()
    terminal_x = terminals["x"].to_numpy()
    terminal_y = terminals["y"].to_numpy()
    block = max(1, _DISTANCE_BLOCK_CELLS // max(1, terminal_x.size))
    counts: list[np.ndarray] = []
    ids: list[np.ndarray] = []
    for start in range(0, customer_xy.shape[0], block):
        chunk = customer_xy[start : start + block]
        dx = chunk[:, 0, None] - terminal_x[None, :]
        dy = chunk[:, 1, None] - terminal_y[None, :]
        within = np.sqrt(dx * dx + dy * dy) < radius
        counts.append(within.sum(axis=1))
        ids.append(np.nonzero(within)[1])  # row-major, so grouped by customer
    offsets = np.concatenate([[0], np.cumsum(np.concatenate(counts))]).astype(np.int64)
    return offsets, np.concatenate(ids).astype(np.int64)


# --------------------------------------------------------------------------- fraud schedules


def _poisson_daily_draws(rng: np.random.Generator, population: int, rate: float, n_days: int) -> pd.DataFrame:
    """Per day, a Poisson(rate) number of distinct ids drawn from range(population)."""
    counts = np.minimum(rng.poisson(rate, size=n_days), population)
    days: list[np.ndarray] = []
    ids: list[np.ndarray] = []
    for day, count in enumerate(counts):
        if count:
            ids.append(rng.choice(population, size=count, replace=False))
            days.append(np.full(count, day, dtype=np.int64))
    if not ids:
        return pd.DataFrame({"id": np.empty(0, np.int64), "day": np.empty(0, np.int64)})
    return pd.DataFrame({"id": np.concatenate(ids).astype(np.int64), "day": np.concatenate(days)})


def draw_compromised_terminals(config: SimulationConfig) -> pd.DataFrame:
    """Scenario-2 schedule for ``config``: one row (terminal_id, day) per compromise.

    Every transaction on ``terminal_id`` with day in [day, day + 28) becomes fraud. The
    book compromises 2 terminals a day out of 10,000; the expected count is scaled by
    n_terminals / 10,000 and drawn from a Poisson.
    """
    rate = COMPROMISED_TERMINALS_PER_DAY * config.n_terminals / BOOK_N_TERMINALS
    draws = _poisson_daily_draws(_streams(config.seed).compromised_terminals, config.n_terminals, rate, config.n_days)
    return draws.rename(columns={"id": "terminal_id"})


def draw_compromised_customers(config: SimulationConfig) -> pd.DataFrame:
    """Scenario-3 schedule for ``config``: one row (customer_id, day) per compromise.

    Over [day, day + 14) a random third of the day's compromised customers' transactions
    get their amount multiplied by 5 and become fraud. The book compromises 3 customers a
    day out of 5,000; the expected count is scaled by n_customers / 5,000 (Poisson).
    """
    rate = COMPROMISED_CUSTOMERS_PER_DAY * config.n_customers / BOOK_N_CUSTOMERS
    draws = _poisson_daily_draws(_streams(config.seed).compromised_customers, config.n_customers, rate, config.n_days)
    return draws.rename(columns={"id": "customer_id"})


# --------------------------------------------------------------------------- transactions


class _Transactions(NamedTuple):
    """Column arrays of generated transactions, before sorting."""

    customer_id: np.ndarray
    terminal_id: np.ndarray
    day: np.ndarray
    seconds: np.ndarray  # seconds since midnight of `day`
    amount: np.ndarray
    device_id: np.ndarray | None
    device_type: np.ndarray | None
    device_os: np.ndarray | None


def _generate_base_transactions(
    customers: pd.DataFrame,
    offsets: np.ndarray,
    terminal_ids: np.ndarray,
    n_days: int,
    rng: np.random.Generator,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Book chapter 3.2 transactions, ordered by (customer, day).

    Returns customer_id, terminal_id, day, seconds-of-day and amount arrays.
    """
    n_customers = len(customers)
    n_available = np.diff(offsets)
    mean_amount = customers["mean_amount"].to_numpy()
    std_amount = customers["std_amount"].to_numpy()
    rate = customers["mean_nb_tx_per_day"].to_numpy()

    nb_tx = rng.poisson(rate[:, None], size=(n_customers, n_days))
    nb_tx[n_available == 0] = 0  # no terminal in range: the customer cannot pay anywhere
    cell = np.repeat(np.arange(n_customers * n_days, dtype=np.int64), nb_tx.ravel())
    customer, day = np.divmod(cell, n_days)

    seconds = np.floor(rng.normal(SECONDS_PER_DAY / 2, 20_000, size=cell.size)).astype(np.int64)
    amount = rng.normal(mean_amount[customer], std_amount[customer])
    negative = amount < 0
    amount[negative] = rng.uniform(0.0, 2.0 * mean_amount[customer[negative]])
    amount = np.round(amount, 2)
    terminal = terminal_ids[offsets[customer] + rng.integers(0, np.maximum(n_available[customer], 1))]

    keep = (seconds >= 0) & (seconds < SECONDS_PER_DAY)  # the book drops out-of-day times
    return customer[keep], terminal[keep], day[keep], seconds[keep], amount[keep]


def _assign_owned_devices(
    customer: np.ndarray, devices: pd.DataFrame, n_customers: int, rng: np.random.Generator
) -> np.ndarray:
    """Row of ``devices`` used by each transaction: the main device with probability 0.7."""
    n_owned = np.bincount(devices["customer_id"].to_numpy(), minlength=n_customers)
    first_row = np.cumsum(n_owned) - n_owned
    owned = n_owned[customer]
    use_main = (rng.random(customer.size) < FIRST_DEVICE_SHARE) | (owned == 1)
    other = 1 + rng.integers(0, np.maximum(owned - 1, 1))
    return first_row[customer] + np.where(use_main, 0, other)


def _apply_terminal_compromises(
    terminal: np.ndarray, day: np.ndarray, schedule: pd.DataFrame, n_terminals: int, n_days: int
) -> np.ndarray:
    """Mask of transactions on a terminal inside one of its compromise windows."""
    # Difference array over (terminal, day): +1 where a window opens, -1 where it closes.
    delta = np.zeros((n_terminals, n_days + 1), dtype=np.int32)
    opens = schedule["day"].to_numpy()
    closes = np.minimum(opens + TERMINAL_COMPROMISE_DAYS, n_days)
    terminals = schedule["terminal_id"].to_numpy()
    np.add.at(delta, (terminals, opens), 1)
    np.add.at(delta, (terminals, closes), -1)
    compromised = np.cumsum(delta, axis=1)[:, :n_days] > 0
    return compromised[terminal, day]


def _apply_customer_compromises(
    customer: np.ndarray,
    day: np.ndarray,
    schedule: pd.DataFrame,
    n_days: int,
    rng: np.random.Generator,
) -> np.ndarray:
    """Times each transaction is picked by scenario 3 (book: a third of each day's pool).

    ``customer``/``day`` must be sorted by (customer, day), so a customer's window is a
    contiguous slice found by binary search.
    """
    key = customer * n_days + day
    hits = np.zeros(customer.size, dtype=np.int64)
    for _, events in schedule.groupby("day", sort=True):
        opens = events["customer_id"].to_numpy() * n_days + events["day"].to_numpy()
        closes = events["customer_id"].to_numpy() * n_days + np.minimum(
            events["day"].to_numpy() + CUSTOMER_COMPROMISE_DAYS, n_days
        )
        lows = np.searchsorted(key, opens, side="left")
        highs = np.searchsorted(key, closes, side="left")
        pool = np.concatenate([np.arange(lo, hi) for lo, hi in zip(lows, highs)])
        picked = rng.choice(pool, size=pool.size // 3, replace=False)
        hits[picked] += 1
    return hits


def _generate_takeovers(
    customers: pd.DataFrame,
    offsets: np.ndarray,
    terminal_ids: np.ndarray,
    devices: pd.DataFrame | None,
    n_days: int,
    rng: np.random.Generator,
) -> _Transactions:
    """Scenario 4: night-time bursts of new transactions from a brand-new device.

    Every draw is made whether or not devices are simulated, so turning devices off
    changes nothing else.
    """
    n_customers = len(customers)
    n_available = np.diff(offsets)
    rate = TAKEOVERS_PER_DAY * n_customers / BOOK_N_CUSTOMERS
    # Only customers with a terminal in range can be made to pay somewhere.
    reachable = np.flatnonzero(n_available > 0)
    schedule = _poisson_daily_draws(rng, reachable.size, rate, n_days) if reachable.size else None
    if schedule is None or schedule.empty:
        victim = np.empty(0, np.int64)
        event_day = np.empty(0, np.int64)
    else:
        victim = reachable[schedule["id"].to_numpy()]
        event_day = schedule["day"].to_numpy()

    n_events = victim.size
    burst_size = rng.integers(TAKEOVER_MIN_TX, TAKEOVER_MAX_TX + 1, size=n_events)
    burst_start = rng.uniform(0.0, TAKEOVER_LATEST_START_SECONDS, size=n_events)
    type_codes = rng.choice(2, size=n_events, p=TAKEOVER_DEVICE_TYPE_PROBABILITIES)  # mobile/desktop
    os_uniforms = rng.random(n_events)

    event = np.repeat(np.arange(n_events), burst_size)
    customer = victim[event]
    seconds = np.floor(burst_start[event] + rng.uniform(0.0, TAKEOVER_BURST_SECONDS, size=event.size))
    factor = rng.uniform(*TAKEOVER_AMOUNT_FACTOR, size=event.size)
    amount = np.round(customers["mean_amount"].to_numpy()[customer] * factor, 2)
    terminal = terminal_ids[offsets[customer] + rng.integers(0, np.maximum(n_available[customer], 1))]

    device_id = device_type = device_os = None
    if devices is not None:
        # The new device takes the customer's next free index, so its id is unique and
        # looks like any other device id (no label leak in the string).
        n_owned = np.bincount(devices["customer_id"].to_numpy(), minlength=n_customers)
        previous_takeovers = pd.Series(victim).groupby(victim).cumcount().to_numpy()
        event_device = _device_ids(victim, n_owned[victim] + previous_takeovers)
        device_id = event_device[event]
        device_type = np.asarray(DEVICE_TYPES, dtype=object)[type_codes][event]
        device_os = _draw_device_os(type_codes, os_uniforms)[event]

    return _Transactions(
        customer_id=customer.astype(np.int64),
        terminal_id=terminal.astype(np.int64),
        day=event_day[event].astype(np.int64),
        seconds=seconds.astype(np.int64),
        amount=amount,
        device_id=device_id,
        device_type=device_type,
        device_os=device_os,
    )


def simulate_transactions(config: SimulationConfig) -> pd.DataFrame:
    """Simulate card transactions with fraud labels for ``config``.

    Follows the Fraud Detection Handbook simulator (chapter 3.2) and its three fraud
    scenarios (1: amount > 220; 2: compromised terminals for 28 days; 3: compromised
    customers for 14 days, a third of their transactions x5), then adds scenario 4,
    account takeover. Later scenarios overwrite the scenario of earlier ones.

    Returns one row per transaction sorted by time, with columns ``TRANSACTION_COLUMNS``
    (without ``DEVICE_COLUMNS`` when ``config.with_devices`` is False).
    """
    streams = _streams(config.seed)
    customers = generate_customer_profiles(config)
    terminals = generate_terminal_profiles(config)
    offsets, terminal_ids = _terminals_within_radius(customers, terminals, config.radius)

    customer, terminal, day, seconds, amount = _generate_base_transactions(
        customers, offsets, terminal_ids, config.n_days, streams.transactions
    )

    scenario = np.zeros(customer.size, dtype=np.int64)
    scenario[amount > FRAUD_AMOUNT_THRESHOLD] = 1
    terminal_fraud = _apply_terminal_compromises(
        terminal, day, draw_compromised_terminals(config), config.n_terminals, config.n_days
    )
    scenario[terminal_fraud] = 2
    hits = _apply_customer_compromises(
        customer, day, draw_compromised_customers(config), config.n_days, streams.customer_fraud
    )
    # Repeated picks compound, as in the book where each pick multiplies the current amount.
    amount = np.round(amount * CUSTOMER_COMPROMISE_AMOUNT_FACTOR**hits, 2)
    scenario[hits > 0] = 3

    devices = generate_device_profiles(config) if config.with_devices else None
    base_devices: tuple[np.ndarray | None, ...] = (None, None, None)
    if devices is not None:
        rows = _assign_owned_devices(customer, devices, config.n_customers, streams.devices)
        base_devices = tuple(devices[column].to_numpy(dtype=object)[rows] for column in DEVICE_COLUMNS)

    takeovers = _generate_takeovers(customers, offsets, terminal_ids, devices, config.n_days, streams.takeovers)

    customer = np.concatenate([customer, takeovers.customer_id])
    terminal = np.concatenate([terminal, takeovers.terminal_id])
    elapsed = np.concatenate([day * SECONDS_PER_DAY + seconds, takeovers.day * SECONDS_PER_DAY + takeovers.seconds])
    amount = np.concatenate([amount, takeovers.amount])
    scenario = np.concatenate([scenario, np.full(takeovers.customer_id.size, 4, dtype=np.int64)])
    order = np.argsort(elapsed, kind="stable")

    start = np.datetime64(config.resolved_start_date(), "ns")
    timestamps = pd.DatetimeIndex(start + elapsed[order].astype("timedelta64[s]")).tz_localize("UTC")
    columns: dict[str, object] = {
        "transaction_id": np.arange(order.size, dtype=np.int64),
        "tx_datetime": timestamps,
        "customer_id": customer[order].astype(np.int64),
        "terminal_id": terminal[order].astype(np.int64),
        "tx_amount": amount[order].astype(np.float64),
    }
    if devices is not None:
        takeover_devices = (takeovers.device_id, takeovers.device_type, takeovers.device_os)
        for name, base, extra in zip(DEVICE_COLUMNS, base_devices, takeover_devices):
            columns[name] = np.concatenate([base, extra])[order]
    columns["is_fraud"] = (scenario[order] > 0).astype(np.int64)
    columns["fraud_scenario"] = scenario[order]
    return pd.DataFrame(columns)
