"""A small world operated day after day through the real scorer, worker and daily job: served
features equal training's every day (the skew check finds nothing), drift stays quiet on clean
days at the shipped settings and speaks on the day amounts move (benchmarks/daily_replay.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from benchmarks.daily_replay import DayReport, operate, simulated_world
from contracts.settings import Settings

HISTORY_DAYS, LIVE_DAYS = 45, 11


@pytest.fixture(scope="module")
def days(
    settings: Settings, second_redis_url: str, tmp_path_factory: pytest.TempPathFactory, test_environment: None
) -> list[DayReport]:
    world = Settings(
        **{
            **settings.model_dump(),
            "data_dir": Path(tmp_path_factory.mktemp("daily")),
            "redis_url": second_redis_url,
            "model_name": "daily_operation",
            "scoring_stream": "fraud:test-daily:events",
        }
    )
    transactions = simulated_world(150, 300, HISTORY_DAYS + LIVE_DAYS, seed=3)
    return list(operate(world, transactions, HISTORY_DAYS, shift_last=1.6))


def test_every_live_day_is_operated(days: list[DayReport]) -> None:
    assert len(days) == LIVE_DAYS and all(day.payments > 200 for day in days)


def test_served_features_equal_training_s_every_day(days: list[DayReport]) -> None:
    assert [(str(d.day), d.features_differing, d.worst_feature) for d in days if d.features_differing] == []


def test_clean_days_raise_no_drift_alert_and_moved_amounts_do(days: list[DayReport]) -> None:
    assert [(str(d.day), d.alerts) for d in days[:-1] if d.alerts] == []
    assert "feature_drift:amount" in days[-1].alerts
