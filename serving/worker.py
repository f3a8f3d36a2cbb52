"""`fraud worker`: consume scoring events, update customer states, write the prediction log.

The scorer answers, then publishes one ScoringEvent per payment on a Redis Stream
(Settings.scoring_stream). Workers read it through a consumer group (default
`fraud-workers`, one consumer name per process) and, per batch of up to N events:

1. customer states: read the batch's customers' current state from the online store
   in one call, apply `next_customer_state` for each event in stream order, and push
   the final state of each customer in one `push_customer_states` call, stamped at its
   last payment's time: 1 us before the offline table's row for that payment
   (STATE_STAMP_OFFSET), so that row, written by the daily batch, always wins over the
   push (Feast's Redis store keeps the newer of two writes): the batch is the truth and
   repairs a state a push built on an incomplete one (after the online store was
   wiped, say), whichever of the two came first;
2. prediction log: write the batch's rows (contracts/prediction_log.py), skipping
   transaction ids already logged; a payment a shadow rollout sampled (its event names a
   `shadow_version`) is scored here by that challenger, from the logged features, and its
   row holds the challenger's score beside the champion's (the request path never waits
   on it). Challenger boosters come from the registry, once per version;
3. XACK the batch.

Delivery is at-least-once (an event is acknowledged only after both effects are done)
and both effects are idempotent, which together make every event count exactly once.

Idempotent state. An event changes a customer's state only if it is not in it already:
its stamp is newer than the state's (the stored one, then the one of the last event
applied), or equal to it with no payment of the same second, amount and device in the
state (a second payment at the same instant; a replayed one is in the state). So the
result equals folding every payment once, in time order, and an event already folded into
the stored state is a no-op when replayed, however replayed events are grouped into
batches, even when one batch mixes them with new ones (pending events of several dead
consumers claimed together). Limits: a payment older than the customer's state (out of
order) does not enter it, nor does a second payment identical to the last one in instant,
amount and device; the daily batch's rows, which win over pushes, count both.
The read-fold-push runs under a Redis lock (CUSTOMER_STATE_LOCK) so that workers sharing
the group cannot overwrite each other's update of one customer, nor a batch's
(materialisation takes the same lock, feature_repo/store.py): a push is always folded
onto the state last written, never onto one a batch replaced meanwhile. Only that step
is serialised; logging stays parallel.

Idempotent log, by transaction id. Before writing, the worker records in Redis, per
payment date, transaction id -> the file that will hold its row (HSET, one pipeline,
before the file exists: an intent). An id counts as logged when it has such a record
AND that file exists; file names are a function of the stream ids they hold, and files
appear atomically (temp file, fsync, os.replace, fsync of the folder). Each crash point:

- before the intent is recorded: nothing of the batch is logged; the events are still
  pending and are processed again on restart.
- after the intent, before the file is renamed into place: the ids point at a file that
  does not exist, so they do not count as logged and are written again (possibly into a
  file of another name if the replay groups events differently). A temp file may remain;
  readers ignore it and a later start removes it once stale.
- after the rename, before XACK: ids point at an existing file, so a replay drops them,
  whatever batch they land in; an identical replay writes nothing new.
- after XACK: the events are never delivered to the group again.

The state step before all of these is safe at any point too: customers whose push
landed skip the replayed events (they are in the state), the others apply them.
Rewriting a file never loses rows: a name is only ever written with the same stream
ids, so with the same (immutable) events. Why the intent comes before the file rather
than a mark after it: a crash between the file and the mark, followed by a replay that
groups the events differently (another batch size, a claim), would write them again
under another name; with the intent recorded first, that case is the third one above.

Pending recovery. On start a worker first re-reads its own pending entries (XREADGROUP
from id 0) before asking for new ones (id >); with `--name` stable across restarts that
recovers its own crash. A restarted process with a new default name (hostname-pid)
cannot see the old name's entries, so every worker also takes over (XAUTOCLAIM) entries
another consumer left unacknowledged for `claim_idle` seconds. Two workers may then
process the same entries only if a live one holds a batch longer than `claim_idle`
(default 60 s against batches of well under a second); that window is the one case the
log's de-duplication does not cover.

Redis outages. A running worker that loses Redis waits and tries again, pausing longer each
time (up to OUTAGE_MAX_PAUSE_S), instead of exiting; the batch it was in stays pending and
is read again first when Redis answers. With `once` (tests, the demo) it raises instead.

Limits: the intent records expire DEDUP_TTL_S (7 days) after the last write of their day (memory),
so a replay older than that (for example a group reset by hand) logs again; the records
are as durable as Redis itself, which also holds the stream and its pending lists.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, cast

import numpy as np
import pandas as pd
import redis
import xgboost as xgb
from feast import FeatureStore

from contracts.events import ScoringEvent
from contracts.files import remove_stale_temp_files, write_parquet_atomically
from contracts.prediction_log import LogFile, log_dir, payment_day, plan_batch, prediction_table
from contracts.registry import REGISTRY_ERRORS, load_booster
from contracts.settings import Settings
from contracts.tables import utc_timestamp
from contracts.tracing import step
from feature_repo.store import CUSTOMER_STATE_LOCK, feature_store, online_stamps, push_customer_states
from feature_repo.transforms import CUSTOMER_STATE_COLUMNS, entity_row, next_customer_state

logger = logging.getLogger(__name__)

DEFAULT_GROUP = "fraud-workers"
DEFAULT_BATCH = 500
BLOCK_MS = 1000
DEFAULT_CLAIM_IDLE_S = 60.0
DEDUP_TTL_S = 7 * 86_400
CUSTOMER_STATE_VIEW = "customer_state"
# Far above a batch's state step (tens of ms); a holder killed mid-step delays others this long.
STATE_LOCK_TIMEOUT_S = 10.0
# A running worker waits for Redis to come back, pausing longer each time, rather than exit.
REDIS_OUTAGE: tuple[type[Exception], ...] = (redis.ConnectionError, redis.TimeoutError, redis.BusyLoadingError)
OUTAGE_FIRST_PAUSE_S = 0.5
OUTAGE_MAX_PAUSE_S = 30.0
NO_STAMP = pd.Timestamp.min.tz_localize("UTC")  # older than any state: a customer without one

RawEntry = tuple[str, dict]  # (stream id, fields) as the stream returns it
Entry = tuple[str, ScoringEvent]


def default_consumer_name() -> str:
    return f"{socket.gethostname()}-{os.getpid()}"


@dataclass(frozen=True)
class WorkerConfig:
    """How a worker reads the stream."""

    consumer: str = field(default_factory=default_consumer_name)
    group: str = DEFAULT_GROUP
    batch: int = DEFAULT_BATCH
    block_ms: int = BLOCK_MS
    claim_idle_s: float = DEFAULT_CLAIM_IDLE_S


@dataclass(frozen=True)
class BatchReport:
    """What one batch did; `source` says where its events came from (pending, claimed, new)."""

    source: str
    events: int
    logged: int
    already_logged: int
    customers_updated: int
    dead_lettered: int
    seconds: float

    def line(self) -> str:
        return (
            f"{self.source} batch: {self.events} events, {self.logged} logged, "
            f"{self.already_logged} already logged, {self.customers_updated} customer states pushed, "
            f"{self.dead_lettered} dead-lettered, {self.seconds * 1000:.0f} ms"
        )


@dataclass
class _CustomerState:
    stamp: pd.Timestamp
    lists: dict[str, list]
    changed: bool = False


class Worker:
    """One consumer of the scoring stream; `run` loops, `process` does one batch."""

    def __init__(
        self, settings: Settings, store: FeatureStore, client: redis.Redis, config: WorkerConfig | None = None
    ) -> None:
        self.settings = settings
        self.store = store
        self.client = client
        self.config = config or WorkerConfig()
        self.stream = settings.scoring_stream
        self.log_root = log_dir(settings)
        self._own_pending_done = False
        self._claim_cursor = "0-0"
        self._next_claim_at = 0.0
        self._challengers: dict[str, xgb.Booster] = {}  # shadow rollouts' boosters, by version

    # --- The loop ---------------------------------------------------------------

    def run(self, stop: threading.Event | None = None, once: bool = False) -> int:
        """Process batches until `stop` is set (the current batch is finished first), or, with
        `once`, until nothing is pending, claimable or new. Returns how many events it processed.
        Redis outages are waited out (see the module docstring)."""
        stop = stop or threading.Event()
        self.ensure_group()
        removed = remove_stale_temp_files(self.log_root)
        if removed:
            logger.warning("removed %d stale temp files under %s", removed, self.log_root)
        total, pause = 0, OUTAGE_FIRST_PAUSE_S
        while not stop.is_set():
            try:
                source, raw = self.next_batch(block=not once)
                if not raw:
                    if once:
                        break
                    continue
                report = self.process(raw, source)
            except REDIS_OUTAGE as error:
                if once:
                    raise
                # Nothing is lost: a batch cut short stays pending and is read again first.
                logger.warning("Redis unreachable (%s); trying again in %.1f s", error, pause)
                self._own_pending_done = False
                stop.wait(pause)
                pause = min(pause * 2, OUTAGE_MAX_PAUSE_S)
                continue
            pause = OUTAGE_FIRST_PAUSE_S
            logger.info(report.line())
            total += report.events
        return total

    def ensure_group(self) -> None:
        """Create the stream and the group if missing; a new group starts at the stream's beginning."""
        try:
            self.client.xgroup_create(self.stream, self.config.group, id="0", mkstream=True)
        except redis.ResponseError as error:
            if "BUSYGROUP" not in str(error):
                raise

    def next_batch(self, block: bool) -> tuple[str, list[RawEntry]]:
        """This consumer's own pending entries first, then entries others left idle, then new ones."""
        if not self._own_pending_done:
            raw = self._read("0", block_ms=None)
            if raw:
                return "pending", raw
            self._own_pending_done = True
        if time.monotonic() >= self._next_claim_at:
            raw = self._claim()
            if raw:
                return "claimed", raw
        return "new", self._read(">", block_ms=self.config.block_ms if block else None)

    def _read(self, from_id: str, block_ms: int | None) -> list[RawEntry]:
        reply = cast(
            list[Any],
            self.client.xreadgroup(
                self.config.group, self.config.consumer, {self.stream: from_id}, count=self.config.batch, block=block_ms
            ),
        )
        if not reply:
            return []
        return [(_text(entry_id), fields) for entry_id, fields in reply[0][1]]

    def _claim(self) -> list[RawEntry]:
        """Take over entries idle longer than claim_idle, scanning the pending list page by page
        until some are claimed or the pass is complete."""
        while True:
            cursor, claimed, *deleted = cast(
                list[Any],
                self.client.xautoclaim(
                    self.stream,
                    self.config.group,
                    self.config.consumer,
                    min_idle_time=int(self.config.claim_idle_s * 1000),
                    start_id=self._claim_cursor,
                    count=self.config.batch,
                ),
            )
            if deleted and deleted[0]:
                # Redis drops these from the pending list itself: trimmed before anyone processed them.
                logger.error(
                    "%d pending events were trimmed from %s before being processed", len(deleted[0]), self.stream
                )
            self._claim_cursor = _text(cursor)
            if self._claim_cursor == "0-0":  # a full pass done: look again after another idle period
                self._next_claim_at = time.monotonic() + max(self.config.claim_idle_s / 2, 1.0)
            if claimed or self._claim_cursor == "0-0":
                return [(_text(entry_id), fields) for entry_id, fields in claimed]

    # --- One batch ------------------------------------------------------------------

    def process(self, raw: Sequence[RawEntry], source: str = "new") -> BatchReport:
        """Update states, log, then acknowledge one batch (see the module docstring for why)."""
        started = time.perf_counter()
        with step(
            "worker.batch", {"fraud.source": source, "fraud.events": len(raw)}
        ):  # a no-op span when tracing is off
            entries, dead = self._decode(raw)
            with step("worker.customer_states"):
                updated = self.update_states(entries)
            with step("worker.prediction_log"):
                logged = self.log(entries)
            self.client.xack(self.stream, self.config.group, *[entry_id for entry_id, _ in raw])
        return BatchReport(
            source=source,
            events=len(raw),
            logged=logged,
            already_logged=len(entries) - logged,
            customers_updated=updated,
            dead_lettered=dead,
            seconds=time.perf_counter() - started,
        )

    def _decode(self, raw: Sequence[RawEntry]) -> tuple[list[Entry], int]:
        """Parse events; an unreadable one goes to the dead-letter stream rather than block the group."""
        entries, dead = [], 0
        for entry_id, fields in raw:
            if not fields:
                logger.error("event %s was trimmed from %s before being processed", entry_id, self.stream)
                continue
            try:
                event = ScoringEvent.from_fields(fields)
                _check(event)
            except (ValueError, TypeError, KeyError, AttributeError) as error:  # bad JSON, fields, values
                logger.error("unreadable event %s (%s): moved to %s", entry_id, error, self.dead_letter_stream)
                self.client.xadd(self.dead_letter_stream, {**fields, "stream_id": entry_id, "error": str(error)})
                dead += 1
                continue
            entries.append((entry_id, event))
        return entries, dead

    @property
    def dead_letter_stream(self) -> str:
        return f"{self.stream}:dead-letter"

    # --- Effect 1: customer states --------------------------------------------------

    def update_states(self, entries: Sequence[Entry]) -> int:
        """Fold the batch's payments into their customers' states; push the changed ones once."""
        payments = [_payment(event) for _, event in entries]
        if not payments:
            return 0
        # A read-modify-write: two workers folding payments of one customer at once would both
        # start from the same state, and the later push would drop the other's payments.
        with self.client.lock(CUSTOMER_STATE_LOCK, timeout=STATE_LOCK_TIMEOUT_S, sleep=0.005):
            states = read_customer_states(self.store, sorted({p.customer_id for p in payments}))
            for p in payments:  # stream order
                state = states[p.customer_id]
                if p.stamp < state.stamp or (p.stamp == state.stamp and _holds(state.lists, p)):
                    continue  # already in the state (a replay), or older than it
                state.lists = next_customer_state(state.lists, p.epoch_seconds, p.amount, p.device_hash)
                state.stamp, state.changed = p.stamp, True
            changed = [
                {"customer_id": customer, "event_timestamp": state.stamp, **state.lists}
                for customer, state in states.items()
                if state.changed
            ]
            if changed:
                push_customer_states(self.store, pd.DataFrame(changed))
        return len(changed)

    # --- Effect 2: the prediction log -------------------------------------------------

    def log(self, entries: Sequence[Entry]) -> int:
        """Write rows of the transaction ids not logged yet; returns how many it wrote."""
        fresh = self._not_yet_logged(entries)
        if not fresh:
            return 0
        files = plan_batch(prediction_table(fresh, self.shadow_scores([event for _, event in fresh])))
        self._record_intent(files)  # before the files exist: see the module docstring
        for log_file in files:
            write_parquet_atomically(self.log_root / log_file.relative_path, log_file.table)
        return len(fresh)

    def shadow_scores(self, events: Sequence[ScoringEvent]) -> list[float | None]:
        """Per event, its shadow challenger's score on the logged features (None: not sampled,
        or the challenger could not be loaded: the row is logged without it)."""
        scores: list[float | None] = [None] * len(events)
        by_version: dict[str, list[int]] = {}
        for i, event in enumerate(events):
            if event.shadow_version is not None:
                by_version.setdefault(event.shadow_version, []).append(i)
        for version, rows in by_version.items():
            booster = self._challenger(version)
            if booster is None:
                continue
            names = list(booster.feature_names or [])
            matrix = np.array(
                [[_as_float(events[i].features.get(name)) for name in names] for i in rows], dtype=np.float64
            )
            for i, score in zip(rows, booster.inplace_predict(matrix).tolist()):
                scores[i] = float(score)
        return scores

    def _challenger(self, version: str) -> xgb.Booster | None:
        """The booster of a shadowed version, loaded from the registry once."""
        if version not in self._challengers:
            try:
                booster = load_booster(self.settings, version)
            except REGISTRY_ERRORS as error:
                # Tried again with the next batch; these rows are logged without a shadow score.
                logger.error("could not load shadow challenger v%s, its scores are not logged: %s", version, error)
                return None
            if not booster.feature_names:  # the scorer refuses such a version too (serving/model.py)
                logger.error("shadow challenger v%s carries no feature names, its scores are not logged", version)
                return None
            booster.set_param({"nthread": 1})
            self._challengers[version] = booster
        return self._challengers[version]

    def _not_yet_logged(self, entries: Sequence[Entry]) -> list[Entry]:
        """Entries whose transaction id is neither earlier in the batch nor in an existing log file."""
        unique: dict[str, Entry] = {}
        for entry in entries:
            unique.setdefault(str(entry[1].transaction["transaction_id"]), entry)  # first one wins
        ids = list(unique)
        pipe = self.client.pipeline(transaction=False)
        for transaction_id in ids:
            pipe.hget(self._dedup_key(payment_day(unique[transaction_id][1]).isoformat()), transaction_id)
        recorded = pipe.execute()
        exists: dict[str, bool] = {}
        fresh = []
        for transaction_id, relative in zip(ids, recorded):
            if relative is not None:
                relative = _text(relative)
                if relative not in exists:
                    exists[relative] = (self.log_root / relative).is_file()
                if exists[relative]:
                    continue
            fresh.append(unique[transaction_id])
        return fresh

    def _record_intent(self, files: Iterable[LogFile]) -> None:
        pipe = self.client.pipeline(transaction=True)
        for log_file in files:
            key = self._dedup_key(log_file.day.isoformat())
            pipe.hset(key, mapping=dict.fromkeys(log_file.transaction_ids, log_file.relative_path))
            pipe.expire(key, DEDUP_TTL_S)
        pipe.execute()

    def _dedup_key(self, day: str) -> str:
        return f"{self.stream}:logged:{day}"


# --- Online state reads -----------------------------------------------------------------


@dataclass(frozen=True)
class _Payment:
    customer_id: int
    stamp: pd.Timestamp
    epoch_seconds: int
    amount: float
    device_hash: int


def _payment(event: ScoringEvent) -> _Payment:
    tx = event.transaction
    when = utc_timestamp(tx["tx_datetime"])
    # entity_row: the same conversions (epoch seconds, device hash) as the scorer's request.
    row = cast(
        dict[str, Any], entity_row(tx["customer_id"], tx["terminal_id"], tx.get("device_id"), when, tx["tx_amount"])
    )
    return _Payment(
        customer_id=int(row["customer_id"]),
        stamp=when.floor("us"),  # before the batch's row for the payment: see the module docstring
        epoch_seconds=int(row["tx_epoch_seconds"]),
        amount=float(row["tx_amount"]),
        device_hash=int(row["device_hash"]),
    )


def _holds(state: dict[str, list], p: _Payment) -> bool:
    """Whether the state holds a payment like `p` at its second (same amount, same device)."""
    entries = zip(
        state.get("recent_tx_epoch_seconds") or [],
        state.get("recent_tx_amounts") or [],
        state.get("recent_tx_device_hashes") or [],
    )
    return (p.epoch_seconds, p.amount, p.device_hash) in {(int(t), float(a), int(h)) for t, a, h in entries}


def _check(event: ScoringEvent) -> None:
    """Raise on an event the batch could not use, before it reaches (and would stop) a batch."""
    _payment(event)
    payment_day(event)
    pd.Timestamp(event.scored_at)
    if not str(event.transaction["transaction_id"]):
        raise ValueError("empty transaction_id")
    if event.trace_id is not None and not isinstance(event.trace_id, str):
        raise TypeError(f"trace_id is a {type(event.trace_id).__name__}, not a string")
    if event.shadow_version is not None and not isinstance(event.shadow_version, str):
        raise TypeError(f"shadow_version is a {type(event.shadow_version).__name__}, not a string")
    for value in (event.risk_score, event.latency_ms, *event.features.values()):
        if value is not None:
            float(value)


def read_customer_states(store: FeatureStore, customers: Sequence[int]) -> dict[int, _CustomerState]:
    """Each customer's online state and its stamp, in one online read (NO_STAMP when it has none)."""
    if not customers:
        return {}
    response = store.get_online_features(
        features=[f"{CUSTOMER_STATE_VIEW}:{column}" for column in CUSTOMER_STATE_COLUMNS],
        entity_rows=[{"customer_id": int(c)} for c in customers],
    )
    values = response.to_dict()
    stamps = online_stamps(response, CUSTOMER_STATE_COLUMNS[0])  # the replay check needs them to the microsecond
    states = {}
    for row, customer in enumerate(customers):
        states[int(customer)] = _CustomerState(
            stamp=pd.Timestamp(int(stamps[row]), unit="ns", tz="UTC") if stamps[row] else NO_STAMP,
            lists={column: values[column][row] for column in CUSTOMER_STATE_COLUMNS},
        )
    return states


# --- Opening -------------------------------------------------------------------------------


def open_worker(settings: Settings, config: WorkerConfig | None = None) -> Worker:
    """A worker on the configured Redis and feature store; raises redis.ConnectionError early."""
    client = redis.Redis.from_url(settings.redis_url, socket_connect_timeout=5)
    client.ping()  # fail before loading Feast when Redis is not there
    return Worker(settings, feature_store(settings), client, config)


def _as_float(value: float | None) -> float:
    return float("nan") if value is None else float(value)


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
