"""Thresholds calibrated for the window's size: the statistics are Evidently's, chance shrinks as
windows grow, and clean windows of 300 and 100,000 rows raise nothing at production settings."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from evidently import DataDefinition, Dataset, Report
from evidently.metrics import ValueDrift

from contracts.settings import Settings
from monitoring.calibration import Statistic, _largest_null, chance_levels
from monitoring.checks import FEATURE_DRIFT
from monitoring.drift import compare, reference_frame


def payments(rng: np.random.Generator, rows: int, customers: int, amount_factor: float = 1.0) -> pd.DataFrame:
    """Rows whose customer-level inputs repeat within a customer, as a day's payments do."""
    customer = rng.integers(0, customers, rows)
    usual = rng.gamma(2.0, 25.0, customers)
    frame = pd.DataFrame(
        {
            "amount": rng.gamma(2.0, 1.0, rows) * usual[customer] / 2 * amount_factor,
            "customer_id_nb_tx_7day_window": rng.poisson(2 + customer % 7).astype(float),
            "tx_during_night": (rng.random(rows) < 0.2).astype(float),
            "device_age_days": np.where(rng.random(rows) < 0.05, np.nan, rng.integers(0, 60, rows).astype(float)),
            "device_used_by_customer_30day": np.where(rng.random(rows) < 0.1, np.nan, (rng.random(rows) < 0.9) * 1.0),
        }
    )
    frame["risk_score"] = 1 / (1 + np.exp(-(frame["amount"] / 100 - 4 + rng.normal(0, 1, rows))))
    return frame


@pytest.fixture(scope="module")
def production() -> Settings:
    return Settings(drift_report_only=[])  # every default threshold as shipped; nothing report-only


METHODS = {
    "amount": "wasserstein",
    "device_age_days": "wasserstein",
    "tx_during_night": "jensenshannon",
    "device_used_by_customer_30day": "jensenshannon",
}


def statistic(name: str) -> Statistic:
    return Statistic(FEATURE_DRIFT, name, "distance", 0.1, METHODS[name], name)  # type: ignore[arg-type]


def test_the_statistics_are_the_ones_evidently_reports() -> None:
    rng = np.random.default_rng(0)
    reference, current = payments(rng, 3000, 300), payments(rng, 800, 100, amount_factor=1.2)
    categorical = [name for name, method in METHODS.items() if method == "jensenshannon"]
    definition = DataDefinition(
        numerical_columns=[n for n in METHODS if n not in categorical], categorical_columns=categorical
    )
    snapshot = Report([ValueDrift(column=name, method=method) for name, method in METHODS.items()]).run(
        Dataset.from_pandas(current, data_definition=definition),
        Dataset.from_pandas(reference, data_definition=definition),
    )
    theirs = {m["config"]["column"]: float(m["value"]) for m in snapshot.dict()["metrics"]}
    ours = {name: statistic(name).measure(reference, current)[0] for name in METHODS}
    assert ours == pytest.approx(theirs, rel=1e-9)


def test_the_resamples_statistics_are_the_same_formulas() -> None:
    """The fast null (the reference sorted once) gives what the window's own computation gives."""
    rng = np.random.default_rng(5)
    reference = payments(rng, 2000, 200)
    for name in METHODS:
        for start in (0, 700, 1700):
            block = reference.iloc[start : start + 300]
            rest = pd.concat([reference.iloc[:start], reference.iloc[start + 300 :]])
            fast = _largest_null(reference[name].to_numpy(), statistic(name), np.array([start]), 300)
            assert fast == pytest.approx(abs(statistic(name).measure(rest, block)[0]), rel=1e-9), (name, start)


def test_chance_shrinks_as_windows_grow_and_levels_off_at_the_reference_s_own_noise() -> None:
    rng = np.random.default_rng(1)
    reference = payments(rng, 6000, 600)
    amount = [Statistic(FEATURE_DRIFT, "amount", "wasserstein_distance_norm", 0.1, "wasserstein", "amount")]
    levels = [
        float(chance_levels(reference, amount, rows, resamples=100, margin=1.0)[0])
        for rows in (100, 300, 1000, 3000, 100_000)
    ]
    assert levels == sorted(levels, reverse=True) and levels[0] > 2 * levels[2]
    assert levels[-1] == pytest.approx(levels[-2] * np.sqrt((1 / 100_000 + 1 / 6000) / (1 / 3000 + 1 / 6000)), rel=1e-9)


@pytest.mark.parametrize("window_rows", [300, 100_000])
def test_clean_windows_raise_no_alert_at_production_settings(production: Settings, window_rows: int) -> None:
    rng = np.random.default_rng(window_rows)
    reference = reference_frame(payments(rng, 20_000, 2000), production)
    current = reference_frame(payments(rng, window_rows, max(window_rows // 2, 150)), production)
    checks, _ = compare(reference, current, production)
    assert [c.message() for c in checks if c.fired] == []
    amount = next(c for c in checks if c.feature == "amount" and c.kind == FEATURE_DRIFT)
    assert amount.threshold == max(amount.floor, amount.chance)  # recorded beside the value


@pytest.mark.parametrize("window_rows", [300, 100_000])
def test_a_shifted_amount_alerts_at_any_window_size(production: Settings, window_rows: int) -> None:
    rng = np.random.default_rng(window_rows + 1)
    reference = reference_frame(payments(rng, 20_000, 2000), production)
    current = reference_frame(payments(rng, window_rows, max(window_rows // 2, 150), amount_factor=1.6), production)
    checks, _ = compare(reference, current, production)
    assert (FEATURE_DRIFT, "amount") in {(c.kind, c.feature) for c in checks if c.fired}
