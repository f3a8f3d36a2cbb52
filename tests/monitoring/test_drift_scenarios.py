"""Drift scenarios end to end: the real scorer answers replayed traffic, the real worker logs
it, `fraud monitor drift` compares it with the model's training reference.

Every drift setting is at its production default: a clean day of this 200-customer world
(~330 payments of ~150 customers) raises nothing because each threshold is calibrated for
the window's size (monitoring/calibration.py).

Each scenario replays the live day's payments (the day after the one the online store was
materialised for) through POST /score/batch in waves (serving/replay.py), changed in one
way, logs them into a folder of its own, and runs the drift job there; the online store
is restored afterwards, so every scenario starts from the same customer states.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import numpy as np
import pandas as pd
import pytest
import redis

from contracts.settings import Settings
from monitoring.checks import DECISION_RATE, FEATURE_DRIFT, MISSING_VALUES, PREDICTION_DRIFT
from serving.replay import payment_bodies, replay
from serving.worker import Worker, WorkerConfig
from tests.support.servers import served

FRAUD = str(Path(sys.executable).parent / "fraud")
DEVICE_FEATURES = {"device_nb_customers", "device_age_days", "device_used_by_customer_30day"}
# The features computed from the payment's amount (feature_repo/definitions.py).
AMOUNT_FEATURES = {
    "amount",
    "amount_over_customer_avg_30day",
    "customer_id_avg_amount_1day_window",
    "customer_id_avg_amount_7day_window",
    "customer_id_avg_amount_30day_window",
}


@dataclass(frozen=True)
class Outcome:
    exit_code: int
    summary: dict
    output: str
    published: list[dict]  # alert events the run put on the alert stream

    def alerting(self, kind: str) -> set[str]:
        return {alert["feature"] for alert in self.summary["alerts"] if alert["kind"] == kind}

    @property
    def kinds(self) -> set[str]:
        return {alert["kind"] for alert in self.summary["alerts"]}


def online_store_keys(client: redis.Redis) -> dict[bytes, bytes]:
    """Feast's entity keys (every key not ours) and their dumped values."""
    return {key: client.dump(key) for key in client.scan_iter(count=1000) if not key.startswith(b"fraud:")}


def restore_online_store(client: redis.Redis, snapshot: dict[bytes, bytes]) -> None:
    for key in client.scan_iter(count=1000):
        if not key.startswith(b"fraud:") and key not in snapshot:
            client.delete(key)
    with client.pipeline(transaction=False) as pipe:
        for key, dumped in snapshot.items():
            pipe.restore(key, 0, dumped, replace=True)
        pipe.execute()


@pytest.fixture(scope="module")
def scenario_scorer(settings, trained_model, online_until) -> Iterator[tuple[Settings, str]]:
    """A scorer of its own, publishing on a stream of its own."""
    from serving.app import create_app

    local = Settings(**{**settings.model_dump(), "scoring_stream": "fraud:test-monitoring:events"})
    with served(create_app(local)) as base_url:
        yield local, base_url


@pytest.fixture(scope="module")
def run_scenario(settings, feature_store, scenario_scorer, transactions, online_until, tmp_path_factory):
    """Replay the live day changed by `change`, log it with the worker, run `fraud monitor drift`."""
    from feature_repo.store import materialize

    scorer_settings, base_url = scenario_scorer
    client = redis.Redis.from_url(settings.redis_url, decode_responses=False)
    day_end = online_until + pd.Timedelta(days=1)
    live = transactions[transactions["tx_datetime"] >= online_until]

    def run(name: str, change: Callable[[list[dict]], list[dict]]) -> Outcome:
        data_dir = tmp_path_factory.mktemp(f"monitoring-{name}")
        worker = Worker(
            Settings(**{**scorer_settings.model_dump(), "data_dir": data_dir}),
            feature_store,
            client,
            WorkerConfig(consumer=name),
        )
        snapshot = online_store_keys(client)
        try:
            # The label feed: labels reach the online store as they become known; the
            # terminal features count only labels of payments older than the delay.
            materialize(feature_store, online_until.to_pydatetime(), day_end.to_pydatetime(), views=["terminal_labels"])
            with httpx.Client(base_url=base_url, timeout=60) as http:
                answers = list(replay(http, worker, change(payment_bodies(live, f"{name}-"))))
            assert len(answers) == len(live)
        finally:
            restore_online_store(client, snapshot)
        last_alert = (client.xrevrange(settings.alert_stream, count=1) or [(b"0-0", {})])[0][0]
        env = {**os.environ, "FRAUD_DATA_DIR": str(data_dir)}  # every drift setting at its production default
        done = subprocess.run(
            [
                FRAUD,
                "monitor",
                "drift",
                "--start",
                online_until.strftime("%Y-%m-%dT%H:%M:%S"),
                "--end",
                day_end.strftime("%Y-%m-%dT%H:%M:%S"),
            ],
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        summaries = sorted((data_dir / "monitoring" / "drift").glob("*/summary.json"))
        assert len(summaries) == 1, f"expected one summary: {done.stdout}\n{done.stderr}"
        assert summaries[0].with_name("report.html").stat().st_size > 0
        published = [
            {k.decode(): v.decode() for k, v in fields.items()}
            for _, fields in client.xrange(settings.alert_stream, min=f"({last_alert.decode()}")
        ]
        return Outcome(done.returncode, json.loads(summaries[0].read_text()), done.stdout + done.stderr, published)

    yield run
    client.close()


@pytest.fixture(scope="module")
def clean(run_scenario) -> Outcome:
    return run_scenario("clean", lambda bodies: bodies)


def test_clean_traffic_raises_no_alert(clean: Outcome) -> None:
    assert clean.exit_code == 0, clean.output
    assert clean.summary["alerts"] == [] and clean.published == []
    assert clean.summary["rows"] > 300 and clean.summary["reference_rows"] > 1000
    checked = {(c["kind"], c["feature"]) for c in clean.summary["checks"]}
    assert {
        (FEATURE_DRIFT, "amount"),
        (PREDICTION_DRIFT, "risk_score"),
        (DECISION_RATE, "decision=block"),
        (MISSING_VALUES, "device_age_days"),
    } <= checked


def test_shifted_amounts_raise_feature_drift_on_amount(run_scenario) -> None:
    # Payments 40 % smaller: the amount (and what is computed from it) moves; too few of
    # the day's payments are large for the decisions to change.
    outcome = run_scenario(
        "amount", lambda bodies: [{**b, "tx_amount": round(b["tx_amount"] * 0.6, 2)} for b in bodies]
    )
    assert outcome.exit_code == 3, outcome.output
    assert outcome.kinds == {FEATURE_DRIFT}
    flagged = outcome.alerting(FEATURE_DRIFT)
    assert "amount" in flagged and flagged <= AMOUNT_FEATURES, flagged
    amount = next(a for a in outcome.summary["alerts"] if a["feature"] == "amount")
    assert amount["statistic"] == "wasserstein_distance_norm" and amount["value"] > amount["threshold"]
    assert amount["threshold"] == max(amount["floor"], amount["chance"]) and amount["floor"] == 0.1
    assert "amount" in outcome.output and "wasserstein_distance_norm" in outcome.output


def test_fraud_wave_raises_prediction_and_decision_rate_alerts(run_scenario) -> None:
    # 29 % of payments turned into the simulator's first fraud pattern (amounts above 220).
    def fraud_wave(bodies: list[dict]) -> list[dict]:
        rng = np.random.default_rng(29)
        hit = set(rng.choice(len(bodies), size=round(0.29 * len(bodies)), replace=False).tolist())
        return [
            {**b, "tx_amount": round(float(rng.uniform(225, 400)), 2)} if i in hit else b for i, b in enumerate(bodies)
        ]

    outcome = run_scenario("fraud", fraud_wave)
    assert outcome.exit_code == 3, outcome.output
    assert outcome.alerting(PREDICTION_DRIFT) == {"risk_score"}
    assert {"decision=approve", "decision=block"} <= outcome.alerting(DECISION_RATE)
    block = next(c for c in outcome.summary["checks"] if c["feature"] == "decision=block")
    assert block["current_value"] - block["reference_value"] > 0.2
    # The frauds are told apart by their amounts, so those inputs move too; nothing goes missing.
    assert MISSING_VALUES not in outcome.kinds
    assert outcome.alerting(FEATURE_DRIFT) <= AMOUNT_FEATURES


def test_device_id_missing_for_28_percent_raises_missing_value_alerts(run_scenario) -> None:
    def drop_device(bodies: list[dict]) -> list[dict]:
        rng = np.random.default_rng(28)
        gone = set(rng.choice(len(bodies), size=round(0.28 * len(bodies)), replace=False).tolist())
        return [{k: v for k, v in b.items() if k != "device_id"} if i in gone else b for i, b in enumerate(bodies)]

    outcome = run_scenario("missing", drop_device)
    assert outcome.exit_code == 3, outcome.output
    assert outcome.kinds == {MISSING_VALUES}
    assert outcome.alerting(MISSING_VALUES) == DEVICE_FEATURES
    for alert in outcome.summary["alerts"]:
        assert alert["current_value"] == pytest.approx(0.28, abs=0.01)
        assert alert["value"] == pytest.approx(alert["current_value"] - alert["reference_value"])
    assert {(e["kind"], e["feature"]) for e in outcome.published} == {(MISSING_VALUES, f) for f in DEVICE_FEATURES}
    assert all(float(e["value"]) > float(e["threshold"]) for e in outcome.published)


def test_scorer_metrics_show_the_latest_drift_run(run_scenario, scenario_scorer) -> None:
    outcome = run_scenario("metrics", lambda bodies: [{k: v for k, v in b.items() if k != "device_id"} for b in bodies])
    assert outcome.alerting(MISSING_VALUES) == DEVICE_FEATURES
    _, base_url = scenario_scorer
    text = httpx.get(f"{base_url}/metrics").text
    for feature in DEVICE_FEATURES:
        assert (
            f'fraud_drift_alert{{feature="{feature}",kind="missing_values",statistic="missing_share_increase"}} 1.0'
        ) in text
    assert 'fraud_drift_alert{feature="amount",kind="feature_drift",statistic="wasserstein_distance_norm"} 0.0' in text
    assert f"fraud_drift_alerts {float(len(DEVICE_FEATURES))}" in text
