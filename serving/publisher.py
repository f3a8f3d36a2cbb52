"""The scorer's event publisher: scored payments become events on the scoring stream, off the request path.

No event vanishes silently. A request hands its payments over and returns; a background
thread builds the events and sends them in pipelined batches. An error in one batch never
stops the thread: a call whose events cannot be built is dropped alone, and a batch Redis
refuses is sent again after growing pauses before it is dropped. Every drop is counted
(`dropped`, the `on_drop` callback: /metrics) and logged, and /health says "dropping" for
a while after. A batch sent twice (a failure after Redis took part of it) is harmless:
the worker counts each transaction once.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

import numpy as np
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from contracts.events import ScoringEvent, publish_event
from contracts.settings import Settings
from contracts.transactions import Transaction
from serving.schemas import ScoreResponse

log = logging.getLogger(__name__)

RETRY_PAUSES_S = (0.1, 0.5, 2.0, 5.0)  # between attempts to send one batch (~8 s in all)
DROP_MEMORY_S = 300.0  # /health says "dropping" this long after the last drop


class EventPublisher:
    """Publishes events from a background thread, in pipelined batches: requests never wait.

    What waits is bounded (`capacity` events); when Redis cannot keep up (or is down)
    events are dropped and counted rather than slowing the request path.
    """

    def __init__(
        self,
        settings: Settings,
        capacity: int = 100_000,
        batch: int = 500,
        on_drop: Callable[[int], None] = lambda count: None,
        retry_pauses_s: Sequence[float] = RETRY_PAUSES_S,
    ) -> None:
        self.settings = settings
        self.capacity = capacity
        self.batch = batch
        self.dropped = 0
        self.sent = 0
        self._on_drop = on_drop
        self._retry_pauses_s = tuple(retry_pauses_s)
        self._last_drop: float | None = None
        self._waiting = 0  # events handed over and not yet taken by the thread
        self._lock = threading.Lock()
        self._queue: queue.SimpleQueue[_Scored] = queue.SimpleQueue()
        self._client = stream_client(settings.redis_url)
        self._thread = threading.Thread(target=self._run, name="event-publisher", daemon=True)
        self._thread.start()

    def submit(
        self,
        transactions: Sequence[Transaction],
        feature_names: Sequence[str],
        features: np.ndarray,
        responses: Sequence[ScoreResponse],
        latency_ms: float,
        trace_id: str | None = None,
        shadow_versions: Sequence[str | None] | None = None,
    ) -> None:
        """Hand scored payments over (features: one row per payment, one column per name;
        `trace_id`: the scoring request's trace, for their log rows; `shadow_versions`: per
        payment, the challenger the worker also scores it with, in a shadow rollout)."""
        with self._lock:
            full = self._waiting + len(transactions) > self.capacity
            if not full:
                self._waiting += len(transactions)
        if full:
            self._drop(len(transactions), "the publisher's queue is full (Redis too slow or down)")
            return
        self._queue.put(
            _Scored(
                transactions,
                feature_names,
                features,
                responses,
                latency_ms,
                scored_at=datetime.now(UTC).isoformat(),
                trace_id=trace_id,
                shadow_versions=shadow_versions,
            )
        )

    def dropping(self) -> bool:
        """Whether events were dropped in the last DROP_MEMORY_S seconds."""
        return self._last_drop is not None and time.monotonic() - self._last_drop < DROP_MEMORY_S

    def _run(self) -> None:
        while True:
            taken = [self._queue.get()]
            while sum(len(scored.transactions) for scored in taken) < self.batch:
                try:
                    taken.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            with self._lock:
                self._waiting -= sum(len(scored.transactions) for scored in taken)
            self._send(self._build(taken))

    def _build(self, taken: list[_Scored]) -> list[ScoringEvent]:
        events: list[ScoringEvent] = []
        for scored in taken:
            try:
                events.extend(scored.events())
            # Data no event can hold (a value of the wrong type, a field missing): the other
            # calls' events are still published; this one is counted, logged with its traceback, dropped.
            except (TypeError, ValueError, ArithmeticError, AttributeError, LookupError):
                log.exception("could not build the events of %d scored payments", len(scored.transactions))
                self._drop(len(scored.transactions), "their events could not be built")
        return events

    def _send(self, events: list[ScoringEvent]) -> None:
        if not events:
            return
        for pause in (*self._retry_pauses_s, None):
            try:
                with self._client.pipeline(transaction=False) as pipe:
                    for event in events:
                        publish_event(pipe, self.settings, event)
                    pipe.execute()
                self.sent += len(events)
                return
            except redis.RedisError as error:
                if pause is None:
                    self._drop(len(events), f"Redis refused them: {error}")
                    return
                log.warning("sending %d scoring events failed (%s); again in %.1f s", len(events), error, pause)
                time.sleep(pause)

    def _drop(self, count: int, why: str) -> None:
        with self._lock:
            self.dropped += count
            self._last_drop = time.monotonic()
        log.error("dropped %d scoring events: %s", count, why)
        self._on_drop(count)


def stream_client(url: str) -> redis.Redis:
    """A client that fails fast: the publisher's own pauses, not redis-py's retries (~10 s on a
    refused connection), say how long a batch waits for Redis."""
    return redis.Redis.from_url(url, retry=Retry(NoBackoff(), 0), socket_connect_timeout=1, socket_timeout=5)


@dataclass(frozen=True)
class _Scored:
    """One scoring call as handed to the publisher."""

    transactions: Sequence[Transaction]
    feature_names: Sequence[str]
    features: np.ndarray
    responses: Sequence[ScoreResponse]
    latency_ms: float
    scored_at: str
    trace_id: str | None = None
    shadow_versions: Sequence[str | None] | None = None

    def events(self) -> list[ScoringEvent]:
        shadows = self.shadow_versions or [None] * len(self.transactions)
        return [
            ScoringEvent.of(
                tx,
                dict(zip(self.feature_names, row)),
                risk_score=response.risk_score,
                decision=response.decision,
                model_version=response.model_version,
                latency_ms=self.latency_ms,
                scored_at=self.scored_at,
                trace_id=self.trace_id,
                shadow_version=shadow,
            )
            for tx, row, response, shadow in zip(self.transactions, self.features.tolist(), self.responses, shadows)
        ]
