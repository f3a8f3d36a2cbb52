"""Where a drift run leaves its results for others: the latest run's summary, under one Redis key.

`fraud monitor drift` writes it (monitoring/alerts.py); the scorer's GET /metrics reads it
at each scrape (serving/metrics.py) without loading the drift job.
"""

from __future__ import annotations

import json
from typing import TypedDict

import redis

from contracts.settings import Settings


class DriftCheckResult(TypedDict):
    kind: str  # feature_drift, prediction_drift, decision_rate, missing_values
    feature: str
    statistic: str
    value: float
    threshold: float
    reference_value: float | None
    current_value: float | None
    alerting: bool  # False: shown, never alerting (FRAUD_DRIFT_REPORT_ONLY)
    floor: float | None  # the configured distance; the threshold is the larger of it and `chance`
    chance: float | None  # what clean windows of this size reach by chance (monitoring/calibration.py)
    fired: bool


class DriftSummary(TypedDict):
    window_start: str
    window_end: str
    model_version: str
    rows: int
    reference_rows: int
    other_version_rows: int
    finished_at: str  # ISO 8601
    seconds: float
    html_report: str | None
    alerts: list[dict[str, object]]
    checks: list[DriftCheckResult]


def store_latest(client: redis.Redis | redis.client.Pipeline, settings: Settings, summary: DriftSummary) -> None:
    client.set(settings.drift_results_key, json.dumps(summary))


def latest(client: redis.Redis, settings: Settings) -> DriftSummary | None:
    """The summary of the last recorded drift run, or None before any."""
    raw = client.get(settings.drift_results_key)
    return None if raw is None else json.loads(raw)  # type: ignore[arg-type]
