"""Scoring one payment: online features (Feast) -> model -> decision and reasons.

After the answer is sent, `record` pushes the customer's next state to the online
store (so its next payment sees this one) and publishes a scoring event.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from datetime import datetime, timezone

import numpy as np
import pandas as pd
import redis
import xgboost as xgb
from feast import FeatureService, FeatureStore

from data.settings import Settings
from feature_repo.store import (
    feature_descriptions,
    model_feature_names,
    push_customer_states,
    stored_feature_names,
)
from feature_repo.transforms import CUSTOMER_STATE_COLUMNS, STATE_STAMP_OFFSET, entity_row, next_customer_state
from serving.events import ScoringEvent, clean_features, publish
from serving.model import LoadedModel, ModelHolder
from serving.schemas import Decision, Reason, ScoreResponse, Transaction

TOP_REASONS = 3


def decide(score: float, settings: Settings) -> Decision:
    """Map a risk score to a decision with the configured thresholds."""
    if score >= settings.block_threshold:
        return "block"
    if score >= settings.review_threshold:
        return "review"
    return "approve"


@dataclass(frozen=True)
class Scored:
    """What `record` needs after the answer: the payment, its features and its answer."""

    transaction: Transaction
    entity: dict[str, object]
    features: dict[str, float]
    state: dict[str, list]
    response: ScoreResponse
    latency_ms: float


class Scorer:
    """Everything a request needs, resolved once at start: service, model, feature metadata."""

    def __init__(self, settings: Settings, store: FeatureStore, model: LoadedModel) -> None:
        self.settings = settings
        self.store = store
        self.service: FeatureService = store.get_feature_service(settings.feature_service)
        self.offered = set(model_feature_names(store, self.service))
        self.check_model(model)
        self.models = ModelHolder(settings, model, validate=self.check_model)
        self.stored = stored_feature_names(store, self.service)
        self.descriptions = feature_descriptions(store, self.service)
        self.redis = redis.Redis.from_url(settings.redis_url)

    def check_model(self, model: LoadedModel) -> None:
        """A model may serve only if the feature service offers every input it needs."""
        absent = [name for name in model.feature_names if name not in self.offered]
        if absent:
            raise ValueError(f"model v{model.version} needs features the service "
                             f"{self.service.name} does not offer: {', '.join(absent)}")

    @property
    def model(self) -> LoadedModel:
        return self.models.current

    def score(self, tx: Transaction) -> Scored:
        """Score one payment; features the online store lacks are reported, not invented."""
        started = time.perf_counter()
        model = self.models.current  # read once: a swap mid-request cannot mix two models
        entity = entity_row(tx.customer_id, tx.terminal_id, tx.device_id, tx.tx_datetime, tx.tx_amount)
        online = self.store.get_online_features(features=self.service, entity_rows=[entity]).to_dict()
        features = {name: _as_float(online[name][0]) for name in model.feature_names}
        vector = np.array([list(features.values())], dtype=np.float64)
        risk = float(model.booster.inplace_predict(vector)[0])
        response = ScoreResponse(
            transaction_id=tx.transaction_id,
            risk_score=risk,
            decision=decide(risk, self.settings),
            reasons=self._reasons(model, vector),
            model_name=model.name,
            model_version=model.version,
            feature_service=self.service.name,
            missing_features=[n for n in self.stored if online[n][0] is None],
        )
        state = {column: online[column][0] for column in CUSTOMER_STATE_COLUMNS}
        return Scored(transaction=tx, entity=entity, features=features, state=state, response=response,
                      latency_ms=(time.perf_counter() - started) * 1000)

    def record(self, scored: Scored) -> None:
        """Off the request path: push the customer's next state, then publish the scoring event."""
        tx, entity = scored.transaction, scored.entity
        state = next_customer_state(scored.state, int(entity["tx_epoch_seconds"]), tx.tx_amount,
                                    int(entity["device_hash"]))
        push_customer_states(self.store, pd.DataFrame([{
            "customer_id": tx.customer_id,
            "event_timestamp": pd.Timestamp(tx.tx_datetime).floor("us") + STATE_STAMP_OFFSET,
            **state,
        }]))
        publish(self.redis, self.settings, ScoringEvent(
            transaction=tx.model_dump(mode="json"),
            features=clean_features(scored.features),
            risk_score=scored.response.risk_score,
            decision=scored.response.decision,
            model_version=scored.response.model_version,
            latency_ms=round(scored.latency_ms, 3),
            scored_at=datetime.now(timezone.utc).isoformat(),
        ))

    def _reasons(self, model: LoadedModel, vector: np.ndarray) -> list[Reason]:
        names = model.feature_names
        matrix = xgb.DMatrix(vector, feature_names=names, missing=np.nan)
        contributions = model.booster.predict(matrix, pred_contribs=True)[0][:-1]  # last is the bias
        order = np.argsort(-contributions)[:TOP_REASONS]
        return [
            Reason(feature=names[i], description=self.descriptions.get(names[i], names[i]),
                   value=None if math.isnan(vector[0, i]) else float(vector[0, i]),
                   contribution=round(float(contributions[i]), 4))
            for i in order if contributions[i] > 0
        ]


def _as_float(value: object) -> float:
    return float("nan") if value is None else float(value)
