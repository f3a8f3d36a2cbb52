"""Scoring payments: stored features (one Redis round trip) + request-time features -> model ->
decision and reasons. One path serves POST /score (one payment) and POST /score/batch.

Nothing on this path waits on secondary work: each scored payment becomes an event on
the scoring stream, published by a background thread; `fraud worker` consumes it (the
prediction log, and the customer-state update that feeds the next request).
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import redis
from feast import FeatureService, FeatureStore
from pydantic import TypeAdapter

from contracts.alerts import alert_fields, publish_alert
from contracts.decision import decide
from contracts.rollout import RolloutPlan
from contracts.settings import Settings
from contracts.tracing import Spans
from feature_repo.store import feature_descriptions, model_feature_names, published_service
from feature_repo.transforms import customer_request_features, entity_row, event_micros, terminal_request_features
from serving.model import LoadedModel, ModelHolder, Rollout
from serving.online import OnlineFeatureReader
from serving.publisher import EventPublisher
from serving.schemas import ScoreResponse, Transaction

log = logging.getLogger(__name__)

TOP_REASONS = 3
UNAPPROVED_CHAMPION = "unapproved_champion"  # the alert's kind
REQUEST_FIELDS = ("tx_amount", "tx_epoch_seconds", "device_hash")


class Scorer:
    """Everything a request needs, resolved once at start: service, model, Redis layout."""

    def __init__(
        self,
        settings: Settings,
        store: FeatureStore,
        model: LoadedModel,
        refused_version: str | None = None,
        on_drop: Callable[[int], None] = lambda count: None,
        spans: Spans | None = None,
    ) -> None:
        self.settings = settings
        self.spans = spans or Spans()  # off unless given: one span per step of `score` when on
        self.service: FeatureService = published_service(store, settings.feature_service)
        self.offered = set(model_feature_names(store, self.service))
        self.check_model(model)
        # For /health and alerts: short timeouts, so a dead Redis answers "unreachable" quickly.
        self.health_redis = redis.Redis.from_url(settings.redis_url, socket_timeout=0.2, socket_connect_timeout=0.2)
        self.models = ModelHolder(
            settings,
            model,
            validate=self.check_model,
            refused=self.alert_refused_champion,
            refused_version=refused_version,
        )
        self.reader = OnlineFeatureReader(settings, store, self.service)
        self.stored = self.reader.feature_names
        self.descriptions = feature_descriptions(store, self.service)
        self.events = EventPublisher(settings, on_drop=on_drop)

    def online_store_reachable(self) -> bool:
        try:
            return bool(self.health_redis.ping())
        except redis.RedisError:
            return False

    def alert_refused_champion(self, version: str, message: str) -> None:
        """On the alert stream: the champion is a version nobody approved, and it is not served."""
        try:
            publish_alert(self.health_redis, self.settings, alert_fields(UNAPPROVED_CHAMPION, message, version))
        except redis.RedisError as error:  # the refusal stands; /health and /metrics still say it
            log.error("could not publish the alert about v%s: %s", version, error)

    def check_model(self, model: LoadedModel) -> None:
        """A model may serve only if the feature service offers every input it needs."""
        absent = [name for name in model.feature_names if name not in self.offered]
        if absent:
            raise ValueError(
                f"model v{model.version} needs features the service "
                f"{self.service.name} does not offer: {', '.join(absent)}"
            )

    @property
    def model(self) -> LoadedModel:
        return self.models.current

    async def score(self, transactions: Sequence[Transaction], trace_id: str | None = None) -> list[ScoreResponse]:
        """Score payments; features the online store lacks are reported, not invented.

        `trace_id`: the request's trace, carried by each payment's event into the prediction
        log. With tracing on, each step is a span under the current (request) span."""
        started = time.perf_counter()
        spans = self.spans
        model = self.models.current  # read once: a swap mid-request cannot mix two models
        rollout = self.models.rollout  # read once too: a plan moved mid-request never mixes
        if spans.enabled:
            spans.annotate({"fraud.model_version": model.version, "fraud.feature_service": self.service.name})
        with spans.span("score.online_read"):
            entities = [
                entity_row(tx.customer_id, tx.terminal_id, tx.device_id, tx.tx_datetime, tx.tx_amount)
                for tx in transactions
            ]
            stored = await self.reader.read(entities, [event_micros(tx.tx_datetime) for tx in transactions])
        with spans.span("score.request_features"):
            columns = {**stored.columns, **{field: [e[field] for e in entities] for field in REQUEST_FIELDS}}
            values = {**stored.columns, **customer_request_features(columns), **terminal_request_features(columns)}
            # Without a rollout the champion answers every payment: one group, no per-payment work.
            groups: list[Group] = [(model, None)] if rollout is None else _groups(rollout, model, transactions)
            matrices = [_matrix(answering, values, rows, len(transactions)) for answering, rows in groups]
        missing = self._missing(stored.missing)
        answers = [
            self._answer(answering, transactions, matrix, missing, rows)
            for (answering, rows), matrix in zip(groups, matrices)
        ]
        responses = answers[0] if groups[0][1] is None else _in_request_order(groups, answers, len(transactions))
        shadows = None if rollout is None else _shadow_versions(rollout.plan, transactions)
        with spans.span("score.publish"):
            latency_ms = (time.perf_counter() - started) * 1000
            for (answering, rows), matrix, answered in zip(groups, matrices, answers):
                self.events.submit(
                    transactions if rows is None else [transactions[i] for i in rows],
                    answering.feature_names,
                    matrix,
                    answered,
                    latency_ms,
                    trace_id,
                    shadow_versions=shadows,  # shadow mode has one group: every payment
                )
        return responses

    def _answer(
        self,
        model: LoadedModel,
        transactions: Sequence[Transaction],
        matrix: np.ndarray,
        missing: list[list[str]],
        rows: list[int] | None,
    ) -> list[ScoreResponse]:
        """`model`'s answers for `rows` of the request (None: all), from their feature matrix."""
        with self.spans.span("score.predict"):
            risks = model.booster.inplace_predict(matrix).tolist()
        with self.spans.span("score.reasons"):
            reasons = self._reasons(model, matrix)
        picked = range(len(transactions)) if rows is None else rows
        return _RESPONSES.validate_python(
            [
                {
                    "transaction_id": transactions[i].transaction_id,
                    "risk_score": risk,
                    "decision": decide(risk, self.settings),
                    "reasons": reasons[k],
                    "model_name": model.name,
                    "model_version": model.version,
                    "feature_service": self.service.name,
                    "missing_features": missing[i],
                }
                for k, (i, risk) in enumerate(zip(picked, risks))
            ]
        )

    def _missing(self, absent: np.ndarray) -> list[list[str]]:
        """Per row, the stored features the online store had no value for."""
        return [[name for name, gone in zip(self.stored, row) if gone] if row.any() else [] for row in absent]

    def _reasons(self, model: LoadedModel, matrix: np.ndarray) -> list[list[dict[str, object]]]:
        """Per row, the features that pushed the score up most (XGBoost's own contributions)."""
        names = model.feature_names
        contributions = model.contributions(matrix)
        top = np.argsort(-contributions, axis=1)[:, :TOP_REASONS]
        top_values = np.take_along_axis(matrix, top, axis=1).tolist()
        top_contributions = np.take_along_axis(contributions, top, axis=1).tolist()
        return [
            [
                {
                    "feature": names[j],
                    "description": self.descriptions.get(names[j], names[j]),
                    "value": None if math.isnan(value) else value,
                    "contribution": round(contribution, 4),
                }
                for j, value, contribution in zip(features, row_values, row_contributions)
                if contribution > 0
            ]
            for features, row_values, row_contributions in zip(top.tolist(), top_values, top_contributions)
        ]


_RESPONSES = TypeAdapter(list[ScoreResponse])  # one validation call for a whole batch

Group = tuple[LoadedModel, list[int] | None]  # a model and the request's rows it answers (None: all)


def _groups(rollout: Rollout, champion: LoadedModel, transactions: Sequence[Transaction]) -> list[Group]:
    """Who answers which payments: in canary, the plan's customers meet the challenger."""
    plan = rollout.plan
    if plan.mode != "canary":
        return [(champion, None)]
    flags = [plan.answers_with_challenger(tx.customer_id) for tx in transactions]
    if all(flags):
        return [(rollout.challenger, None)]
    if not any(flags):
        return [(champion, None)]
    return [
        (champion, [i for i, flag in enumerate(flags) if not flag]),
        (rollout.challenger, [i for i, flag in enumerate(flags) if flag]),
    ]


def _matrix(model: LoadedModel, values: Mapping[str, Any], rows: list[int] | None, count: int) -> np.ndarray:
    """The model's inputs, one row per payment of `rows` (None: all `count`), in its feature order."""
    matrix = np.empty((count if rows is None else len(rows), len(model.feature_names)), dtype=np.float64)
    for j, name in enumerate(model.feature_names):
        column = np.asarray(values[name], dtype=np.float64)  # None (missing online) becomes NaN
        matrix[:, j] = column if rows is None else column[rows]
    return matrix


def _in_request_order(groups: list[Group], answers: list[list[ScoreResponse]], count: int) -> list[ScoreResponse]:
    ordered: list[ScoreResponse | None] = [None] * count
    for (_, rows), answered in zip(groups, answers):
        for i, response in zip(rows or range(count), answered):
            ordered[i] = response
    return [response for response in ordered if response is not None]


def _shadow_versions(plan: RolloutPlan, transactions: Sequence[Transaction]) -> list[str | None] | None:
    """Shadow mode: per payment, the challenger version the worker scores it with (None: not sampled)."""
    if plan.mode != "shadow":
        return None
    return [plan.version if plan.shadows(str(tx.transaction_id)) else None for tx in transactions]
