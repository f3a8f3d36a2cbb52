"""Training-serving parity: payments replayed through POST /score on real Redis get exactly the
features that get_historical_features gives for the same payments; skew-check agrees."""

from __future__ import annotations

import math
import time

import pytest
import redis

from contracts.events import ScoringEvent, latest_events
from feature_repo.store import materialize
from monitoring.skew import skew_report
from serving.worker import WorkerConfig, open_worker

REPLAY_CUSTOMERS = 8


def wait_for_event(client: redis.Redis, stream: str, transaction_id: str, timeout_s: float = 10) -> ScoringEvent:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        for _, fields in client.xrevrange(stream, count=20):
            event = ScoringEvent.from_fields(fields)
            if str(event.transaction["transaction_id"]) == transaction_id:
                return event
        time.sleep(0.01)
    raise AssertionError(f"no scoring event for {transaction_id} within {timeout_s} s")


@pytest.fixture(scope="module")
def replayed(http_session, feature_store, transactions, online_until, live_customers, settings):
    """Every live-day payment of a few customers, scored in time order, with its logged event."""
    live = transactions[
        (transactions["tx_datetime"] >= online_until)
        & transactions["customer_id"].isin(live_customers[:REPLAY_CUSTOMERS])
    ]
    client = redis.Redis.from_url(settings.redis_url)
    worker = open_worker(settings, WorkerConfig(consumer="parity-replay"))
    events = []
    for tx in live.sort_values("tx_datetime").itertuples():
        # The label feed: labels known by this payment's time reach the online store first.
        materialize(
            feature_store, online_until.to_pydatetime(), tx.tx_datetime.to_pydatetime(), views=["terminal_labels"]
        )
        body = {
            "transaction_id": tx.transaction_id,
            "tx_datetime": tx.tx_datetime.isoformat(),
            "customer_id": int(tx.customer_id),
            "terminal_id": int(tx.terminal_id),
            "tx_amount": float(tx.tx_amount),
            "device_id": tx.device_id,
        }
        assert http_session.post("/score", json=body).status_code == 200
        # The worker turns the scoring event into the customer's next state; the next
        # payment of this customer must see it.
        events.append(wait_for_event(client, settings.scoring_stream, str(tx.transaction_id)))
        worker.run(once=True)
    client.close()
    assert len(events) >= 2 * REPLAY_CUSTOMERS
    return live.sort_values("tx_datetime"), events


def test_served_features_equal_historical_features(replayed, feature_store, settings) -> None:
    from training.dataset import build_training_set

    live, events = replayed
    service = feature_store.get_feature_service(settings.feature_service)
    offline = build_training_set(feature_store, service, live).set_index("transaction_id")
    same_customer_repeats = live["customer_id"].duplicated().sum()
    assert same_customer_repeats > 0  # some payments depend on a state pushed during the replay
    for event in events:
        row = offline.loc[str(event.transaction["transaction_id"])]
        for name, served in event.features.items():
            stored = row[name]
            if served is None:
                assert stored is None or math.isnan(stored), f"{name}: served missing, offline {stored}"
            else:
                assert math.isclose(served, float(stored), rel_tol=0, abs_tol=1e-6), (
                    f"{name} of {event.transaction['transaction_id']}: served {served}, offline {stored}"
                )


def test_skew_check_finds_no_mismatch_on_the_replay(replayed, feature_store, settings) -> None:
    _, events = replayed
    report = skew_report(feature_store, feature_store.get_feature_service(settings.feature_service), events)
    assert len(report) == 21
    assert report["mismatches"].sum() == 0, report[report["mismatches"] > 0]


def test_skew_check_names_a_skewed_feature(replayed, feature_store, settings) -> None:
    _, events = replayed
    skewed = [
        ScoringEvent(**{**e.__dict__, "features": {**e.features, "customer_id_avg_amount_7day_window": 0.123}})
        for e in events[:4]
    ]
    report = skew_report(
        feature_store, feature_store.get_feature_service(settings.feature_service), skewed + events[4:]
    ).set_index("feature")
    assert report.loc["customer_id_avg_amount_7day_window", "mismatches"] == 4
    assert report.drop("customer_id_avg_amount_7day_window")["mismatches"].sum() == 0


def test_latest_events_reads_back_what_was_published(replayed, settings) -> None:
    client = redis.Redis.from_url(settings.redis_url)
    latest = latest_events(client, settings, count=3)
    client.close()
    assert len(latest) == 3
    assert all(isinstance(e.risk_score, float) for e in latest)


def test_skew_check_command_reports_every_feature_and_passes(replayed, settings) -> None:
    import os
    import subprocess
    import sys
    from pathlib import Path

    result = subprocess.run(
        [str(Path(sys.executable).parent / "fraud"), "skew-check", "--sample", "10"],
        env=dict(os.environ),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert "customer_id_avg_amount_7day_window" in result.stdout
    assert "terminal_id_risk_30day_window" in result.stdout
