"""The drift job's pieces on small frames: which test each feature gets, when a check alerts,
and what the command says when it cannot give a verdict."""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from contracts.registry import REFERENCE_TIME_COLUMN
from contracts.settings import Settings
from monitoring.checks import (
    DECISION_RATE,
    FEATURE_DRIFT,
    MISSING_VALUES,
    PREDICTION_DRIFT,
    DriftCheck,
    Window,
    parse_duration,
)
from monitoring.drift import CATEGORICAL_TEST, NUMERIC_TEST, compare, drift_test, reference_for_window, reference_frame

FRAUD = str(Path(sys.executable).parent / "fraud")
ROWS = 4000


def frames(rng: np.random.Generator, rows: int = ROWS) -> pd.DataFrame:
    """Reference-like rows: a continuous input, a flag, and a score."""
    return pd.DataFrame(
        {
            "amount": rng.gamma(2.0, 25.0, rows),
            "tx_during_night": (rng.random(rows) < 0.2).astype(float),
            "risk_score": rng.beta(0.5, 12.0, rows),
        }
    )


def fired(checks: list[DriftCheck]) -> set[tuple[str, str]]:
    return {(check.kind, check.feature) for check in checks if check.fired}


@pytest.fixture()
def quiet_settings(settings) -> Settings:
    return Settings(**{**settings.model_dump(), "drift_report_only": []})


def run_compare(reference: pd.DataFrame, current: pd.DataFrame, settings: Settings) -> list[DriftCheck]:
    scored = current.copy()
    scored["decision"] = reference_frame(current, settings)["decision"]
    checks, _ = compare(reference_frame(reference, settings), scored, settings)
    return checks


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("90m", timedelta(minutes=90)),
        ("24h", timedelta(hours=24)),
        ("7d", timedelta(days=7)),
        (" 2H ", timedelta(hours=2)),
    ],
)
def test_parse_duration_reads_minutes_hours_days(text: str, expected: timedelta) -> None:
    assert parse_duration(text) == expected


@pytest.mark.parametrize("text", ["0h", "24", "h", "-3h", "1w", ""])
def test_parse_duration_rejects_what_is_not_a_positive_duration(text: str) -> None:
    with pytest.raises(ValueError, match="positive duration"):
        parse_duration(text)


def test_flags_get_jensen_shannon_and_continuous_inputs_wasserstein() -> None:
    assert drift_test(pd.Series([0.0, 1.0, 1.0, np.nan])) == CATEGORICAL_TEST
    assert drift_test(pd.Series([0.0, 1.0, 2.0, 7.5])) == NUMERIC_TEST


def test_same_distribution_raises_nothing(quiet_settings: Settings) -> None:
    rng = np.random.default_rng(1)
    checks = run_compare(frames(rng), frames(rng), quiet_settings)
    assert fired(checks) == set()
    assert {check.kind for check in checks} == {FEATURE_DRIFT, PREDICTION_DRIFT, DECISION_RATE, MISSING_VALUES}


def test_a_moved_input_alerts_on_that_input_only(quiet_settings: Settings) -> None:
    rng = np.random.default_rng(2)
    current = frames(rng)
    current["amount"] *= 1.5
    checks = run_compare(frames(rng), current, quiet_settings)
    assert fired(checks) == {(FEATURE_DRIFT, "amount")}
    amount = next(c for c in checks if c.fired)
    assert amount.statistic == NUMERIC_TEST[1] and amount.threshold == quiet_settings.drift_numeric_threshold
    assert "amount" in amount.message() and f"{amount.value:.4f}" in amount.message()


def test_a_moved_flag_alerts_with_jensen_shannon(quiet_settings: Settings) -> None:
    rng = np.random.default_rng(3)
    current = frames(rng)
    current["tx_during_night"] = (rng.random(ROWS) < 0.6).astype(float)
    checks = run_compare(frames(rng), current, quiet_settings)
    night = next(c for c in checks if c.kind == FEATURE_DRIFT and c.feature == "tx_during_night")
    assert night.fired and night.statistic == CATEGORICAL_TEST[1]
    assert night.threshold == quiet_settings.drift_categorical_threshold


def test_report_only_features_are_measured_but_never_alert(settings: Settings) -> None:
    rng = np.random.default_rng(4)
    current = frames(rng)
    current["amount"] *= 2
    local = Settings(**{**settings.model_dump(), "drift_report_only": ["amount"]})
    amount = next(c for c in run_compare(frames(rng), current, local) if c.feature == "amount")
    assert amount.value > amount.threshold and not amount.alerting and not amount.fired


def test_higher_scores_alert_on_predictions_and_decision_rates(quiet_settings: Settings) -> None:
    rng = np.random.default_rng(5)
    current = frames(rng)
    current["risk_score"] = np.where(rng.random(ROWS) < 0.3, rng.uniform(0.85, 1.0, ROWS), current["risk_score"])
    flagged = fired(run_compare(frames(rng), current, quiet_settings))
    assert (PREDICTION_DRIFT, "risk_score") in flagged
    assert {(DECISION_RATE, "decision=approve"), (DECISION_RATE, "decision=block")} <= flagged


def test_a_field_missing_everywhere_alerts_on_missing_values_not_drift(quiet_settings: Settings) -> None:
    rng = np.random.default_rng(6)
    current = frames(rng)
    current["amount"] = np.nan
    checks = run_compare(frames(rng), current, quiet_settings)
    assert fired(checks) == {(MISSING_VALUES, "amount")}
    missing = next(c for c in checks if c.fired)
    assert missing.value == pytest.approx(1.0) and missing.current_value == pytest.approx(1.0)
    assert not any(c.kind == FEATURE_DRIFT and c.feature == "amount" for c in checks)


def test_drift_command_with_no_traffic_fails_with_a_sentence(settings: Settings, tmp_path: Path) -> None:
    env = {
        "FRAUD_DATA_DIR": str(tmp_path),
        "REDIS_URL": settings.redis_url,
        "MLFLOW_TRACKING_URI": settings.mlflow_tracking_uri,
        "PATH": str(Path(sys.executable).parent),
    }
    done = subprocess.run(
        [FRAUD, "monitor", "drift", "--window", "24h"], env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 1
    assert "only 0 payments were scored" in done.stderr and "fraud worker" in done.stderr


def test_drift_command_rejects_a_bad_window(settings: Settings, tmp_path: Path) -> None:
    done = subprocess.run(
        [FRAUD, "monitor", "drift", "--window", "soon"],
        capture_output=True,
        text=True,
        env={"FRAUD_DATA_DIR": str(tmp_path), "PATH": str(Path(sys.executable).parent)},
        timeout=120,
    )
    assert done.returncode == 1 and "not a positive duration like 90m, 24h or 7d" in done.stderr


def days_of_payments(rng: np.random.Generator, days: int) -> pd.DataFrame:
    """Reference-like rows over whole days, whose night flag and amounts follow the hour."""
    times = pd.Timestamp("2024-03-01", tz="UTC") + pd.to_timedelta(rng.uniform(0, days * 86_400, days * 1000), "s")
    hours = times.hour.to_numpy()
    return pd.DataFrame(
        {
            REFERENCE_TIME_COLUMN: times,
            "amount": rng.gamma(2.0, 25.0, len(times)) * np.where(hours < 7, 0.6, 1.0),
            "tx_during_night": (hours <= 6).astype(float),
            "risk_score": rng.beta(0.5, 12.0, len(times)),
        }
    )


def test_a_daytime_window_is_compared_with_the_same_hours_of_the_reference(quiet_settings: Settings) -> None:
    rng = np.random.default_rng(6)
    reference, later = days_of_payments(rng, 14), days_of_payments(rng, 2)
    window = Window(datetime(2024, 3, 2, 10, tzinfo=UTC), datetime(2024, 3, 2, 16, tzinfo=UTC))
    daytime = later[later[REFERENCE_TIME_COLUMN].dt.hour.between(10, 15)].drop(columns=REFERENCE_TIME_COLUMN)
    same_hours = reference_for_window(reference, window, quiet_settings)
    assert set(same_hours[REFERENCE_TIME_COLUMN].dt.hour) == set(range(10, 16))
    checks = run_compare(same_hours, daytime, quiet_settings)
    assert fired(checks) == set()
    by_feature = {c.feature: c for c in checks if c.kind == FEATURE_DRIFT}
    assert by_feature["tx_during_night"].value == 0 and by_feature["amount"].value < 0.1
    # Against whole days, time of day reads as distance, and as thresholds too loose to see much.
    whole = {c.feature: c for c in run_compare(reference, daytime, quiet_settings) if c.kind == FEATURE_DRIFT}
    assert whole["tx_during_night"].value > 0.3
    assert whole["amount"].threshold > 2 * by_feature["amount"].threshold
    moved = daytime.assign(amount=daytime["amount"] * 1.2)
    assert fired(run_compare(same_hours, moved, quiet_settings)) == {(FEATURE_DRIFT, "amount")}


def test_a_window_across_midnight_takes_the_hours_on_both_sides(quiet_settings: Settings) -> None:
    reference = days_of_payments(np.random.default_rng(7), 7)
    window = Window(datetime(2024, 3, 9, 22, tzinfo=UTC), datetime(2024, 3, 10, 2, tzinfo=UTC))
    hours = set(reference_for_window(reference, window, quiet_settings)[REFERENCE_TIME_COLUMN].dt.hour)
    assert hours == {22, 23, 0, 1}


def test_a_day_long_window_or_an_untimed_reference_is_compared_whole(quiet_settings: Settings) -> None:
    reference = days_of_payments(np.random.default_rng(8), 3)
    day = Window(datetime(2024, 3, 9, tzinfo=UTC), datetime(2024, 3, 10, tzinfo=UTC))
    assert len(reference_for_window(reference, day, quiet_settings)) == len(reference)
    hours = Window(datetime(2024, 3, 9, 10, tzinfo=UTC), datetime(2024, 3, 9, 12, tzinfo=UTC))
    untimed = reference.drop(columns=REFERENCE_TIME_COLUMN)
    assert len(reference_for_window(untimed, hours, quiet_settings)) == len(reference)
