"""Loading the served model from the MLflow registry."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timezone

import mlflow.xgboost
import numpy as np
import xgboost as xgb

from data.settings import Settings
from training.register import CHAMPION, configure_mlflow


@dataclass
class LoadedModel:
    """A registered model version held in memory, with what it needs to say where it came from."""

    name: str
    version: str
    alias: str
    run_id: str | None
    booster: xgb.Booster
    feature_names: list[str]
    tags: dict[str, str]
    loaded_at: datetime = field(default_factory=lambda: datetime.now(timezone.utc))


def load_model(settings: Settings, alias: str = CHAMPION) -> LoadedModel:
    """Load the version `alias` points at; the booster runs on one thread, warmed up."""
    client = configure_mlflow(settings)
    version = client.get_model_version_by_alias(settings.model_name, alias)
    booster = mlflow.xgboost.load_model(f"models:/{settings.model_name}/{version.version}")
    booster.set_param({"nthread": 1})
    names = list(booster.feature_names or [])
    if not names:
        raise ValueError(f"model {settings.model_name} v{version.version} carries no feature names; retrain it")
    booster.inplace_predict(np.zeros((1, len(names))))  # first call allocates; keep it off the request path
    return LoadedModel(name=settings.model_name, version=str(version.version), alias=alias,
                       run_id=version.run_id, booster=booster, feature_names=names, tags=dict(version.tags))
