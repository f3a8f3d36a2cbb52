"""Scoring one transaction: online features (Feast) -> model -> decision and reasons."""

from __future__ import annotations

import math

import numpy as np
import xgboost as xgb
from feast import FeatureService, FeatureStore

from data.settings import Settings
from feature_repo.store import feature_descriptions, service_feature_names, stored_feature_names
from feature_repo.transforms import entity_row
from serving.model import LoadedModel
from serving.schemas import Decision, Reason, ScoreResponse, Transaction

TOP_REASONS = 3


def decide(score: float, settings: Settings) -> Decision:
    """Map a risk score to a decision with the configured thresholds."""
    if score >= settings.block_threshold:
        return "block"
    if score >= settings.review_threshold:
        return "review"
    return "approve"


class Scorer:
    """Everything a request needs, resolved once at start: service, model, feature metadata."""

    def __init__(self, settings: Settings, store: FeatureStore, model: LoadedModel) -> None:
        self.settings = settings
        self.store = store
        self.service: FeatureService = store.get_feature_service(settings.feature_service)
        self.model = model
        offered = set(service_feature_names(store, self.service))
        absent = [name for name in model.feature_names if name not in offered]
        if absent:
            raise ValueError(f"model v{model.version} needs features the service "
                             f"{self.service.name} does not offer: {', '.join(absent)}")
        self.stored = [n for n in stored_feature_names(store, self.service) if n in set(model.feature_names)]
        self.descriptions = feature_descriptions(store, self.service)

    def score(self, tx: Transaction) -> ScoreResponse:
        """Score one transaction; features the online store lacks are reported, not invented."""
        row = entity_row(tx.customer_id, tx.terminal_id, tx.device_id, tx.tx_datetime, tx.tx_amount)
        online = self.store.get_online_features(features=self.service, entity_rows=[row]).to_dict()
        values = [_as_float(online[name][0]) for name in self.model.feature_names]
        vector = np.array([values], dtype=np.float64)
        risk = float(self.model.booster.inplace_predict(vector)[0])
        return ScoreResponse(
            transaction_id=tx.transaction_id,
            risk_score=risk,
            decision=decide(risk, self.settings),
            reasons=self._reasons(vector),
            model_name=self.model.name,
            model_version=self.model.version,
            feature_service=self.service.name,
            missing_features=[n for n in self.stored if online[n][0] is None],
        )

    def _reasons(self, vector: np.ndarray) -> list[Reason]:
        names = self.model.feature_names
        matrix = xgb.DMatrix(vector, feature_names=names, missing=np.nan)
        contributions = self.model.booster.predict(matrix, pred_contribs=True)[0][:-1]  # last is the bias
        order = np.argsort(-contributions)[:TOP_REASONS]
        return [
            Reason(feature=names[i], description=self.descriptions.get(names[i], names[i]),
                   value=None if math.isnan(vector[0, i]) else float(vector[0, i]),
                   contribution=round(float(contributions[i]), 4))
            for i in order if contributions[i] > 0
        ]


def _as_float(value: object) -> float:
    return float("nan") if value is None else float(value)
