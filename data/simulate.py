"""Synthetic card transactions: the Fraud Detection Handbook simulator, draw for draw.

Reproduces the transaction data simulator of Le Borgne et al., *Reproducible Machine
Learning for Credit Card Fraud Detection - Practical Handbook*, chapter 3.2: with
``SimulationConfig.handbook(extensions=False)`` the output is the book's own data set,
the same 1,754,155 transactions (ids, timestamps, customers, terminals, amounts) and the
same 14,681 frauds (973 / 9,077 / 4,631 labelled scenario 1 / 2 / 3). It extends the
book with

* device metadata: every customer owns one to three devices and uses them for its
  transactions (``with_devices``), and
* a fourth fraud scenario, account takeover: a night-time burst of new transactions
  from a device the customer has never used (``takeovers``).

Book draws. The book seeds numpy's legacy global generator and Python's ``random``
with small integers: customer table 0, terminal table 1, customer ``c``'s transactions
``c`` (both generators), day ``d``'s compromised terminals and customers ``d``
(``Series.sample(random_state=d)``) and day ``d``'s scenario-3 pick ``d``
(``random.seed(d)``). This module uses the same seeds, on private generator instances
(the global ones are left alone), and replays the book's calls in the book's order. The
per-customer loop replays ``np.random.poisson`` / ``normal`` / ``uniform`` on a block of
the customer's MT19937 doubles with numpy's own legacy formulas (multiplication method
for Poisson, polar Box-Muller with the cached second normal), which is exact and several
times faster than one numpy call per draw.

Other seeds. Every book seed ``k`` becomes ``(k + seed * 1_000_003) % 2**32`` (see
``_book_seed``), so seed 0 is the book exactly and any other seed shifts every stream at
once: the same seed gives the same data, different seeds different data.

Other sizes. The book compromises 2 terminals (of 10,000) and 3 customers (of 5,000)
a day. Other sizes compromise ``round(2 * n_terminals / 10,000)`` terminals and
``round(3 * n_customers / 5,000)`` customers a day, rounding halves up, at least 1 and
at most the population; the book's size keeps exactly 2 and 3.

Extensions. Devices and takeovers draw from their own ``numpy.random.Generator``
streams spawned from ``seed``; they never touch the book's generators, so switching
them on or off leaves the book's rows unchanged. Takeover rows are extra rows: with
takeovers on, transaction ids are renumbered in time order over book and takeover rows
together (a takeover row sorts after book rows of the same second).
"""

from __future__ import annotations

import datetime
import math
import numbers
import random
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
import pandas as pd

__all__ = [
    "DEVICE_COLUMNS",
    "TRANSACTION_COLUMNS",
    "SimulationConfig",
    "draw_compromised_customers",
    "draw_compromised_terminals",
    "generate_customer_profiles",
    "generate_device_profiles",
    "generate_terminal_profiles",
    "simulate_transactions",
]

SECONDS_PER_DAY = 86_400
GRID_SIZE = 100.0

# Book transaction times: int(Normal(noon, 20,000 s)), kept when strictly inside the day.
TX_TIME_MEAN_SECONDS = SECONDS_PER_DAY / 2
TX_TIME_STD_SECONDS = 20_000.0

# Handbook fraud rules; the per-day counts are the book's at its own size and are
# scaled with the number of terminals / customers (see _compromised_per_day).
FRAUD_AMOUNT_THRESHOLD = 220.0
BOOK_N_CUSTOMERS = 5_000
BOOK_N_TERMINALS = 10_000
COMPROMISED_TERMINALS_PER_DAY = 2
TERMINAL_COMPROMISE_DAYS = 28
COMPROMISED_CUSTOMERS_PER_DAY = 3
CUSTOMER_COMPROMISE_DAYS = 14
CUSTOMER_COMPROMISE_AMOUNT_FACTOR = 5.0
TAKEOVERS_PER_DAY = 0.5

# Seed derivation: book seed k -> (k + seed * _SEED_STRIDE) % _SEED_MODULUS.
_SEED_STRIDE = 1_000_003
_SEED_MODULUS = 2**32  # numpy's legacy seeding takes 32-bit seeds

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
    """Size, period, seed and extensions of one simulated data set.

    ``start_date`` None means "today (UTC) minus ``n_days``", so the data ends yesterday;
    it only shifts the timestamps, never a draw. ``with_devices`` adds the device columns,
    ``takeovers`` adds scenario 4; neither changes the book's rows. The book's own data
    set is ``SimulationConfig.handbook(extensions=False)``.
    """

    n_customers: int = 1000
    n_terminals: int = 2000
    n_days: int = 61
    start_date: datetime.date | None = None
    seed: int = 0
    radius: float = 5.0
    with_devices: bool = True
    takeovers: bool = True

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
        for name in ("with_devices", "takeovers"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"{name} must be True or False, got {getattr(self, name)!r}.")

    @classmethod
    def handbook(cls, *, extensions: bool = True) -> SimulationConfig:
        """The book's setup: 5,000 customers, 10,000 terminals, 183 days from 2018-04-01, seed 0.

        With ``extensions=False`` (no devices, no takeovers) the simulation is the book's
        data set itself, transaction for transaction.
        """
        return cls(
            n_customers=BOOK_N_CUSTOMERS,
            n_terminals=BOOK_N_TERMINALS,
            n_days=183,
            start_date=datetime.date(2018, 4, 1),
            seed=0,
            with_devices=extensions,
            takeovers=extensions,
        )

    def resolved_start_date(self) -> datetime.date:
        """First simulated day: ``start_date``, or today (UTC) minus ``n_days`` when it is None."""
        if self.start_date is not None:
            return self.start_date
        today = datetime.datetime.now(datetime.UTC).date()
        return today - datetime.timedelta(days=self.n_days)


def _book_seed(book_seed: int, seed: int) -> int:
    """The seed used where the book seeds with ``book_seed``: itself for seed 0, shifted otherwise."""
    return (book_seed + seed * _SEED_STRIDE) % _SEED_MODULUS


class _ExtensionStreams(NamedTuple):
    """Generators of the extensions, independent of the book's generators and of each other."""

    devices: np.random.Generator
    takeovers: np.random.Generator


def _extension_streams(seed: int) -> _ExtensionStreams:
    return _ExtensionStreams(*np.random.default_rng(seed).spawn(len(_ExtensionStreams._fields)))


# --------------------------------------------------------------------------- profiles


def generate_customer_profiles(config: SimulationConfig) -> pd.DataFrame:
    """Customer table the simulator uses for ``config`` (the book's table for seed 0).

    Columns: customer_id, x, y (uniform on the 100x100 grid), mean_amount ~ U(5, 100),
    std_amount = mean_amount / 2, mean_nb_tx_per_day ~ U(0, 4). Drawn like the book: one
    legacy generator seeded 0, per customer x, y, mean_amount, mean_nb_tx_per_day.
    """
    n = config.n_customers
    # uniform(low, high) is low + (high - low) * U on the next double, so one block of
    # doubles in the book's order gives the very same values as the book's scalar calls.
    u = np.random.RandomState(_book_seed(0, config.seed)).random_sample((n, 4))
    mean_amount = 5.0 + (100.0 - 5.0) * u[:, 2]
    return pd.DataFrame(
        {
            "customer_id": np.arange(n, dtype=np.int64),
            "x": 0.0 + GRID_SIZE * u[:, 0],
            "y": 0.0 + GRID_SIZE * u[:, 1],
            "mean_amount": mean_amount,
            "std_amount": mean_amount / 2,
            "mean_nb_tx_per_day": 0.0 + 4.0 * u[:, 3],
        }
    )


def generate_terminal_profiles(config: SimulationConfig) -> pd.DataFrame:
    """Terminal table the simulator uses for ``config``: terminal_id, x, y uniform on the grid (book seed 1)."""
    u = np.random.RandomState(_book_seed(1, config.seed)).random_sample((config.n_terminals, 2))
    return pd.DataFrame(
        {
            "terminal_id": np.arange(config.n_terminals, dtype=np.int64),
            "x": 0.0 + GRID_SIZE * u[:, 0],
            "y": 0.0 + GRID_SIZE * u[:, 1],
        }
    )


def generate_device_profiles(config: SimulationConfig) -> pd.DataFrame:
    """Devices each customer owns for ``config``: one to three per customer.

    Columns: device_id ("dev-<customer>-<k>"), customer_id, device_index (k, 0 = the
    customer's main device), device_type, device_os (consistent with the type).
    """
    rng = _extension_streams(config.seed).devices
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

    Customer c uses ``ids[offsets[c]:offsets[c + 1]]``, in increasing id order; like the
    book, a terminal is in range when sqrt(dx^2 + dy^2) is strictly below ``radius``.
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


def _compromised_per_day(book_count: int, population: int, book_population: int) -> int:
    """The book's daily count scaled to ``population``: rounded half up, at least 1, at most all."""
    scaled = (2 * book_count * population + book_population) // (2 * book_population)
    return min(max(1, scaled), population)


def _daily_sample(population: int, count: int, book_seed: int, seed: int) -> np.ndarray:
    """The book's ``ids.sample(n=count, random_state=day)`` over ids 0..population-1."""
    ids = pd.Series(np.arange(population, dtype=np.int64))
    return ids.sample(n=count, random_state=_book_seed(book_seed, seed)).to_numpy()


def _schedule(population: int, count: int, n_schedule_days: int, seed: int, column: str) -> pd.DataFrame:
    days = np.arange(n_schedule_days, dtype=np.int64)
    picks = [_daily_sample(population, count, day, seed) for day in range(n_schedule_days)]
    return pd.DataFrame(
        {
            column: np.concatenate(picks) if picks else np.empty(0, np.int64),
            "day": np.repeat(days, count),
        }
    )


def draw_compromised_terminals(config: SimulationConfig) -> pd.DataFrame:
    """Scenario-2 schedule for ``config``: one row (terminal_id, day) per compromise.

    Every transaction on ``terminal_id`` with day in [day, day + 28) becomes fraud. Like
    the book, every day but the last compromises a fixed number of terminals (2 of the
    book's 10,000; scaled with n_terminals otherwise), drawn with ``Series.sample`` seeded
    with the day. (The book stops at its last day *with a transaction*; that is the last
    simulated day unless the population is tiny.)
    """
    count = _compromised_per_day(COMPROMISED_TERMINALS_PER_DAY, config.n_terminals, BOOK_N_TERMINALS)
    return _schedule(config.n_terminals, count, config.n_days - 1, config.seed, "terminal_id")


def draw_compromised_customers(config: SimulationConfig) -> pd.DataFrame:
    """Scenario-3 schedule for ``config``: one row (customer_id, day) per compromise.

    Over [day, day + 14) a random third (rounded down) of the day's compromised customers'
    transactions get their amount multiplied by 5 and become fraud. Every day but the last
    compromises 3 customers of the book's 5,000 (scaled with n_customers otherwise).
    """
    count = _compromised_per_day(COMPROMISED_CUSTOMERS_PER_DAY, config.n_customers, BOOK_N_CUSTOMERS)
    return _schedule(config.n_customers, count, config.n_days - 1, config.seed, "customer_id")


# --------------------------------------------------------------------------- transactions


class _Transactions(NamedTuple):
    """Column arrays of generated takeover transactions, before sorting."""

    customer_id: np.ndarray
    terminal_id: np.ndarray
    day: np.ndarray
    seconds: np.ndarray  # seconds since midnight of `day`
    amount: np.ndarray
    device_id: np.ndarray | None
    device_type: np.ndarray | None
    device_os: np.ndarray | None


def _customer_draws(
    u: list[float],
    terminals: list[int],
    chooser: random.Random,
    rate: float,
    mean_amount: float,
    std_amount: float,
    n_days: int,
    out_elapsed: list[int],
    out_terminal: list[int],
    out_amount: list[float],
) -> None:
    """One customer's book transactions, appended to the ``out_`` lists.

    Replays the book's per-customer loop on ``u``, the doubles the customer's legacy
    generator yields, with numpy's legacy formulas: ``poisson(lam < 10)`` multiplies
    doubles until the product falls to exp(-lam) or below; ``normal(loc, scale)`` is
    ``loc + scale * g`` with g from the polar method, which makes two normals per accepted
    pair and hands out the cached second one on the next call; ``uniform(low, high)`` is
    ``low + (high - low) * U``. Raises IndexError when ``u`` runs out (the caller retries
    with more doubles). Amounts are appended unrounded.
    """
    pos = 0
    has_gauss = False
    cached = 0.0
    exp_neg_rate = math.exp(-rate)
    sqrt, log = math.sqrt, math.log

    def standard_normal() -> float:
        """numpy's legacy polar method: two normals per accepted pair, the second cached."""
        nonlocal pos, has_gauss, cached
        if has_gauss:
            has_gauss = False
            return cached
        while True:
            x1 = 2.0 * u[pos] - 1.0
            x2 = 2.0 * u[pos + 1] - 1.0
            pos += 2
            r2 = x1 * x1 + x2 * x2
            if r2 < 1.0 and r2 != 0.0:
                break
        f = sqrt(-2.0 * log(r2) / r2)
        cached = f * x1
        has_gauss = True
        return f * x2

    choice = chooser.choice
    reachable = len(terminals) > 0
    twice_mean = mean_amount * 2
    for day in range(n_days):
        # np.random.poisson(rate): legacy random_poisson, multiplication method (rate < 4 here).
        nb_tx = 0
        if rate != 0.0:
            product = 1.0
            while True:
                product *= u[pos]
                pos += 1
                if product > exp_neg_rate:
                    nb_tx += 1
                else:
                    break
        day_seconds = day * SECONDS_PER_DAY
        for _ in range(nb_tx):
            # int(np.random.normal(86400 / 2, 20000))
            time_tx = int(TX_TIME_MEAN_SECONDS + TX_TIME_STD_SECONDS * standard_normal())
            if 0 < time_tx < SECONDS_PER_DAY:
                # np.random.normal(mean_amount, std_amount)
                amount = mean_amount + std_amount * standard_normal()
                if amount < 0:
                    # np.random.uniform(0, mean_amount * 2)
                    amount = 0.0 + (twice_mean - 0.0) * u[pos]
                    pos += 1
                if reachable:
                    out_elapsed.append(time_tx + day_seconds)
                    out_terminal.append(choice(terminals))
                    out_amount.append(amount)


def _initial_doubles(rate: float, n_days: int) -> int:
    """Doubles to draw up front for one customer; a shortfall retries with twice as many.

    Per day the Poisson takes rate + 1 doubles and each transaction about 2.6 (two polar
    normals at ~1.27 doubles each), so this covers all but unusually busy customers.
    """
    return int(n_days * (1.0 + 3.0 * rate) * 1.25) + 64


def _generate_base_transactions(
    customers: pd.DataFrame,
    offsets: np.ndarray,
    terminal_ids: np.ndarray,
    n_days: int,
    seed: int,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The book's transactions in its generation order (customer by customer, day by day).

    Returns customer_id, terminal_id, elapsed seconds since the start and the amount
    rounded to cents (``np.round(amount, 2)``, as the book).
    """
    rates = customers["mean_nb_tx_per_day"].tolist()
    means = customers["mean_amount"].tolist()
    stds = customers["std_amount"].tolist()
    if max(rates, default=0.0) >= 10:  # profiles draw rates below 4; the replay assumes < 10
        raise RuntimeError("the Poisson replay needs mean_nb_tx_per_day below 10 (numpy switches method at 10)")
    offset_list = offsets.tolist()
    elapsed: list[int] = []
    terminal: list[int] = []
    amount: list[float] = []
    counts = np.zeros(len(rates), dtype=np.int64)
    for customer_id, (rate, mean_amount, std_amount) in enumerate(zip(rates, means, stds)):
        customer_seed = _book_seed(customer_id, seed)
        terminals = terminal_ids[offset_list[customer_id] : offset_list[customer_id + 1]].tolist()
        n_doubles = _initial_doubles(rate, n_days)
        before = len(elapsed)
        while True:
            doubles = np.random.RandomState(customer_seed).random_sample(n_doubles).tolist()
            try:
                _customer_draws(
                    doubles,
                    terminals,
                    random.Random(customer_seed),
                    rate,
                    mean_amount,
                    std_amount,
                    n_days,
                    elapsed,
                    terminal,
                    amount,
                )
                break
            except IndexError:
                del elapsed[before:], terminal[before:], amount[before:]
                n_doubles *= 2
        counts[customer_id] = len(elapsed) - before
    customer = np.repeat(np.arange(len(rates), dtype=np.int64), counts)
    return (
        customer,
        np.asarray(terminal, dtype=np.int64),
        np.asarray(elapsed, dtype=np.int64),
        np.round(np.asarray(amount, dtype=np.float64), 2),
    )


def _book_time_order(elapsed: np.ndarray) -> np.ndarray:
    """Permutation the book's ``sort_values('TX_DATETIME')`` applies (ties included).

    pandas' default sort is numpy's quicksort (introsort, not stable) on the datetime64
    values. numpy sorts datetime64 with that classic introsort on every CPU, whereas int64
    argsort may dispatch to SIMD sorts that order ties differently, so the argsort runs on
    a datetime64 view to give the book's ids.
    """
    return np.argsort(elapsed.view("datetime64[s]"), kind="quicksort")


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


def _add_book_frauds(
    customer: np.ndarray,
    terminal: np.ndarray,
    day: np.ndarray,
    amount: np.ndarray,
    config: SimulationConfig,
) -> np.ndarray:
    """The book's ``add_frauds`` on time-sorted rows (row position = transaction id).

    Returns the scenario per row and multiplies scenario-3 amounts by 5 in place (a
    transaction picked on several days is multiplied each time, as in the book). Scenario
    labels overwrite in order 1, 2, 3.
    """
    scenario = np.zeros(customer.size, dtype=np.int64)
    scenario[amount > FRAUD_AMOUNT_THRESHOLD] = 1
    if customer.size == 0:
        return scenario
    n_days = config.n_days
    day_starts = np.searchsorted(day, np.arange(n_days + 1))  # day is sorted: windows are slices
    last_day = int(day[-1])  # the book loops over range(TX_TIME_DAYS.max())

    n_compromised = _compromised_per_day(COMPROMISED_TERMINALS_PER_DAY, config.n_terminals, BOOK_N_TERMINALS)
    for d in range(last_day):
        compromised = _daily_sample(config.n_terminals, n_compromised, d, config.seed)
        lo, hi = day_starts[d], day_starts[min(d + TERMINAL_COMPROMISE_DAYS, n_days)]
        window = scenario[lo:hi]
        window[np.isin(terminal[lo:hi], compromised)] = 2

    n_compromised = _compromised_per_day(COMPROMISED_CUSTOMERS_PER_DAY, config.n_customers, BOOK_N_CUSTOMERS)
    for d in range(last_day):
        compromised = _daily_sample(config.n_customers, n_compromised, d, config.seed)
        lo, hi = day_starts[d], day_starts[min(d + CUSTOMER_COMPROMISE_DAYS, n_days)]
        pool = (lo + np.flatnonzero(np.isin(customer[lo:hi], compromised))).tolist()
        picked = random.Random(_book_seed(d, config.seed)).sample(pool, k=len(pool) // 3)
        amount[picked] = amount[picked] * CUSTOMER_COMPROMISE_AMOUNT_FACTOR
        scenario[picked] = 3
    return scenario


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
    victim = np.empty(0, np.int64)
    event_day = np.empty(0, np.int64)
    if reachable.size:
        counts = np.minimum(rng.poisson(rate, size=n_days), reachable.size)
        picks = [rng.choice(reachable.size, size=count, replace=False) for count in counts]
        victim = reachable[np.concatenate(picks).astype(np.int64)]
        event_day = np.repeat(np.arange(n_days, dtype=np.int64), counts)

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

    The Fraud Detection Handbook simulator (chapter 3.2) draw for draw, with its three
    fraud scenarios (1: amount > 220; 2: compromised terminals for 28 days; 3: compromised
    customers for 14 days, a third of their transactions x5; later scenarios overwrite
    the label of earlier ones), then, when ``config.takeovers``, scenario 4, account
    takeover, as extra rows.

    Returns one row per transaction sorted by time, with columns ``TRANSACTION_COLUMNS``
    (without ``DEVICE_COLUMNS`` when ``config.with_devices`` is False). Without takeovers
    the rows, ids and labels are the book's for seed 0.
    """
    streams = _extension_streams(config.seed)
    customers = generate_customer_profiles(config)
    terminals = generate_terminal_profiles(config)
    offsets, terminal_ids = _terminals_within_radius(customers, terminals, config.radius)

    customer, terminal, elapsed, amount = _generate_base_transactions(
        customers, offsets, terminal_ids, config.n_days, config.seed
    )
    book_order = _book_time_order(elapsed)
    customer, terminal, elapsed, amount = (a[book_order] for a in (customer, terminal, elapsed, amount))
    scenario = _add_book_frauds(customer, terminal, elapsed // SECONDS_PER_DAY, amount, config)

    devices = generate_device_profiles(config) if config.with_devices else None
    device_columns: list[np.ndarray] = []
    if devices is not None:
        rows = _assign_owned_devices(customer, devices, config.n_customers, streams.devices)
        device_columns = [devices[column].to_numpy(dtype=object)[rows] for column in DEVICE_COLUMNS]

    if config.takeovers:
        extra = _generate_takeovers(customers, offsets, terminal_ids, devices, config.n_days, streams.takeovers)
        customer = np.concatenate([customer, extra.customer_id])
        terminal = np.concatenate([terminal, extra.terminal_id])
        elapsed = np.concatenate([elapsed, extra.day * SECONDS_PER_DAY + extra.seconds])
        amount = np.concatenate([amount, extra.amount])
        scenario = np.concatenate([scenario, np.full(extra.customer_id.size, 4, dtype=np.int64)])
        if devices is not None:
            extra_devices = (extra.device_id, extra.device_type, extra.device_os)
            device_columns = [np.concatenate([base, add]) for base, add in zip(device_columns, extra_devices)]
        # Stable: book rows keep the book's order, a takeover row follows book rows of its second.
        order = np.argsort(elapsed, kind="stable")
        customer, terminal, elapsed, amount, scenario = (
            a[order] for a in (customer, terminal, elapsed, amount, scenario)
        )
        device_columns = [column[order] for column in device_columns]

    start = np.datetime64(config.resolved_start_date(), "ns")
    timestamps = pd.DatetimeIndex(start + elapsed.astype("timedelta64[s]")).tz_localize("UTC")
    columns: dict[str, object] = {
        "transaction_id": np.arange(customer.size, dtype=np.int64),
        "tx_datetime": timestamps,
        "customer_id": customer.astype(np.int64),
        "terminal_id": terminal.astype(np.int64),
        "tx_amount": amount.astype(np.float64),
    }
    for name, values in zip(DEVICE_COLUMNS, device_columns):
        columns[name] = values
    columns["is_fraud"] = (scenario > 0).astype(np.int64)
    columns["fraud_scenario"] = scenario
    return pd.DataFrame(columns)
