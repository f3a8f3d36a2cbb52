"""The scorer's event publisher: scored payments become events on the scoring stream, off the request path."""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

import numpy as np
import redis

from contracts.events import ScoringEvent, publish_event
from contracts.settings import Settings
from contracts.transactions import Transaction
from serving.schemas import ScoreResponse

log = logging.getLogger(__name__)


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

    def submit(
        self,
        transactions: Sequence[Transaction],
        feature_names: Sequence[str],
        features: np.ndarray,
        responses: Sequence[ScoreResponse],
        latency_ms: float,
    ) -> None:
        """Hand scored payments over (features: one row per payment, one column per name)."""
        with self._lock:
            if self._waiting + len(transactions) > self.capacity:
                self.dropped += len(transactions)
                return
            self._waiting += len(transactions)
        self._queue.put(
            _Scored(
                transactions, feature_names, features, responses, latency_ms, scored_at=datetime.now(UTC).isoformat()
            )
        )

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
                        publish_event(pipe, self.settings, event)
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
        return [
            ScoringEvent.of(
                tx,
                dict(zip(self.feature_names, row)),
                risk_score=response.risk_score,
                decision=response.decision,
                model_version=response.model_version,
                latency_ms=self.latency_ms,
                scored_at=self.scored_at,
            )
            for tx, row, response in zip(self.transactions, self.features.tolist(), self.responses)
        ]
