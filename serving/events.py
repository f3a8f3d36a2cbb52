"""Scoring events: what was scored, with which features, by which model, on a Redis Stream."""

from __future__ import annotations

import logging
import math
import queue
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

import numpy as np
import orjson
import redis

from data.settings import Settings

if TYPE_CHECKING:
    from serving.schemas import ScoreResponse, Transaction

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ScoringEvent:
    """One scored payment, as logged for monitoring, skew checks and state updates."""

    transaction: dict[str, Any]
    features: dict[str, float | None]
    risk_score: float
    decision: str
    model_version: str
    latency_ms: float
    scored_at: str

    @classmethod
    def of(cls, transaction: Transaction, features: dict[str, float], response: ScoreResponse,
           latency_ms: float, scored_at: str) -> "ScoringEvent":
        payment = {"transaction_id": transaction.transaction_id, "tx_datetime": transaction.tx_datetime.isoformat(),
                   "customer_id": transaction.customer_id, "terminal_id": transaction.terminal_id,
                   "tx_amount": transaction.tx_amount, "device_id": transaction.device_id,
                   "device_type": transaction.device_type, "device_os": transaction.device_os}
        return cls(transaction=payment, features=clean_features(features),
                   risk_score=response.risk_score, decision=response.decision,
                   model_version=response.model_version, latency_ms=round(latency_ms, 3),
                   scored_at=scored_at)

    def to_fields(self) -> dict[str, bytes]:
        # orjson encodes the dataclass itself, ~15x faster than json (the publisher thread
        # shares the GIL with requests); NaN becomes null, as clean_features says.
        return {"event": orjson.dumps(self, default=str)}

    @classmethod
    def from_fields(cls, fields: dict[bytes | str, bytes | str]) -> "ScoringEvent":
        raw = fields.get(b"event", fields.get("event"))
        return cls(**orjson.loads(raw))


def clean_features(values: dict[str, float]) -> dict[str, float | None]:
    """NaN becomes None: JSON has no NaN, and missing is what it means."""
    return {name: None if math.isnan(value) else value for name, value in values.items()}


def publish(client: redis.Redis | redis.client.Pipeline, settings: Settings, event: ScoringEvent) -> str | None:
    """Append an event to the scoring stream (capped, approximately, at the configured length).

    On a pipeline the command is queued and None returned; on a client, the event's id.
    """
    event_id = client.xadd(settings.scoring_stream, event.to_fields(),
                           maxlen=settings.scoring_stream_maxlen, approximate=True)
    return event_id.decode() if isinstance(event_id, bytes) else event_id


def latest_events(client: redis.Redis, settings: Settings, count: int) -> list[ScoringEvent]:
    """The `count` most recent scoring events, oldest first."""
    entries = client.xrevrange(settings.scoring_stream, count=count)
    return [ScoringEvent.from_fields(fields) for _, fields in reversed(entries)]


class EventPublisher:
    """Publishes events from a background thread, in pipelined batches: requests never wait.

    A request hands its whole batch over in one piece and the thread builds the events.
    What waits is bounded (`capacity` events); when Redis cannot keep up (or is down)
    events are dropped and counted rather than slowing the request path.
    """

    def __init__(self, settings: Settings, capacity: int = 100_000, batch: int = 500) -> None:
        self.settings = settings
        self.capacity = capacity
        self.batch = batch
        self.dropped = 0
        self._waiting = 0  # events handed over and not yet taken by the thread
        self._lock = threading.Lock()
        self._queue: queue.SimpleQueue[_Scored] = queue.SimpleQueue()
        self._client = redis.Redis.from_url(settings.redis_url)
        self._thread = threading.Thread(target=self._run, name="event-publisher", daemon=True)
        self._thread.start()

    def submit(self, transactions: Sequence[Transaction], feature_names: Sequence[str], features: np.ndarray,
               responses: Sequence[ScoreResponse], latency_ms: float) -> None:
        """Hand scored payments over (features: one row per payment, one column per name)."""
        with self._lock:
            if self._waiting + len(transactions) > self.capacity:
                self.dropped += len(transactions)
                return
            self._waiting += len(transactions)
        self._queue.put(_Scored(transactions, feature_names, features, responses, latency_ms,
                                scored_at=datetime.now(timezone.utc).isoformat()))

    def _run(self) -> None:
        while True:
            taken = [self._queue.get()]
            while sum(len(scored.transactions) for scored in taken) < self.batch:
                try:
                    taken.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            events = [event for scored in taken for event in scored.events()]
            with self._lock:
                self._waiting -= len(events)
            try:
                with self._client.pipeline(transaction=False) as pipe:
                    for event in events:
                        publish(pipe, self.settings, event)
                    pipe.execute()
            except redis.RedisError as error:
                with self._lock:
                    self.dropped += len(events)
                log.error("dropped %d scoring events: %s", len(events), error)


@dataclass(frozen=True)
class _Scored:
    """One scoring call as handed to the publisher."""

    transactions: Sequence[Transaction]
    feature_names: Sequence[str]
    features: np.ndarray
    responses: Sequence[ScoreResponse]
    latency_ms: float
    scored_at: str

    def events(self) -> list[ScoringEvent]:
        return [ScoringEvent.of(tx, dict(zip(self.feature_names, row)), response, self.latency_ms, self.scored_at)
                for tx, row, response in zip(self.transactions, self.features.tolist(), self.responses)]
