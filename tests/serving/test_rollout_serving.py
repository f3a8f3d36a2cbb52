"""The scorer and the worker follow the rollout plan (contracts/rollout.py) on a real registry:
canary customers meet the challenger, always the same one; a shadow sample is scored by the
challenger in the worker, off the request path; moving the plan under load fails no request."""

from __future__ import annotations

import dataclasses
import math
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime

import httpx
import numpy as np
import orjson
import pandas as pd
import pytest
import redis
import xgboost as xgb
from mlflow.exceptions import MlflowException

from contracts.events import ScoringEvent
from contracts.files import write_parquet_atomically
from contracts.prediction_log import feature_column, log_dir, plan_batch, prediction_table
from contracts.registry import is_absent, load_booster, registry_client
from contracts.rollout import CHALLENGER, PLAN_TAG, RolloutMode, RolloutPlan
from contracts.settings import Settings
from monitoring.prediction_log import read_prediction_log
from serving.explain import Contributions
from serving.worker import Worker
from training.lifecycle import approve
from training.train import train_candidate

BATCH = 300
PLAN_TIMEOUT_S = 15.0


@pytest.fixture(scope="module")
def challenger(settings, feature_store, transactions, trained_model) -> Iterator[str]:
    """An approved version beside the champion (trained without the first week: another
    model, so answers tell the two apart), and no plan before or after the module."""
    later = transactions[transactions["tx_datetime"] >= transactions["tx_datetime"].min() + pd.Timedelta(days=7)]
    version = train_candidate(settings, feature_store, later).version
    approve(settings, version, by="test-suite", note="challenger for the rollout tests")
    clear_plan(settings)
    yield version
    clear_plan(settings)


@pytest.fixture(scope="module")
def challenger_booster(settings, challenger) -> xgb.Booster:
    return load_booster(settings, challenger)


@pytest.fixture()
def scorer(scorer_app, scorer_url):
    return scorer_app.state.scorer


def plan_of(version: str, mode: RolloutMode, share: float) -> RolloutPlan:
    return RolloutPlan(
        version=version, mode=mode, share=share, started_at=datetime.now(UTC).isoformat(), started_by="test-suite"
    )


def set_plan(settings: Settings, plan: RolloutPlan) -> None:
    """As `fraud rollout` leaves the registry: the plan tag, and the alias on its version."""
    client = registry_client(settings)
    client.set_registered_model_tag(settings.model_name, PLAN_TAG, plan.to_tag())
    client.set_registered_model_alias(settings.model_name, CHALLENGER, plan.version)


def clear_plan(settings: Settings) -> None:
    client = registry_client(settings)
    try:
        model = client.get_registered_model(settings.model_name)
    except MlflowException as error:
        if is_absent(error):  # no model registered yet: no plan either
            return
        raise
    if CHALLENGER in model.aliases:
        client.delete_registered_model_alias(settings.model_name, CHALLENGER)
    if PLAN_TAG in model.tags:
        client.delete_registered_model_tag(settings.model_name, PLAN_TAG)


def wait_for_plan(scorer, plan: RolloutPlan | None) -> None:
    """Until the scorer holds `plan` (None: no rollout)."""
    deadline = time.monotonic() + PLAN_TIMEOUT_S
    while True:
        rollout = scorer.models.rollout
        if (rollout.plan if rollout is not None else None) == plan:
            return
        assert time.monotonic() < deadline, f"the scorer did not take up the plan {plan} within {PLAN_TIMEOUT_S} s"
        time.sleep(0.05)


def payments(transactions: pd.DataFrame, online_until: pd.Timestamp, prefix: str, count: int = BATCH) -> list[dict]:
    """Real last-day payments (many customers, several payments each) under fresh transaction ids."""
    live = transactions[transactions["tx_datetime"] >= online_until].sort_values("tx_datetime").head(count)
    return [
        {
            "transaction_id": f"{prefix}-{i}",
            "tx_datetime": tx.tx_datetime.isoformat(),
            "customer_id": int(tx.customer_id),
            "terminal_id": int(tx.terminal_id),
            "tx_amount": float(tx.tx_amount),
            "device_id": tx.device_id if isinstance(tx.device_id, str) else None,
        }
        for i, tx in enumerate(live.itertuples())
    ]


def score_batch(http: httpx.Client, body: list[dict]) -> list[dict]:
    response = http.post("/score/batch", json={"transactions": body})
    assert response.status_code == 200, response.text
    return response.json()["results"]


def logged_events(settings: Settings, prefix: str, count: int, timeout_s: float = 15) -> list[tuple[str, ScoringEvent]]:
    """(stream id, event) of the `count` payments whose transaction id starts with `prefix`."""
    client = redis.Redis.from_url(settings.redis_url)
    deadline = time.monotonic() + timeout_s
    while True:
        found = [
            (entry_id.decode(), event)
            for entry_id, fields in client.xrange(settings.scoring_stream)
            if str((event := ScoringEvent.from_fields(fields)).transaction["transaction_id"]).startswith(f"{prefix}-")
        ]
        if len(found) >= count:
            return found
        assert time.monotonic() < deadline, f"only {len(found)} of {count} events of {prefix} were published"
        time.sleep(0.1)


def challenger_scores(booster: xgb.Booster, rows: list[dict[str, float | None]]) -> list[float]:
    """The booster's own prediction on logged feature vectors (missing: NaN)."""
    names = list(booster.feature_names or [])
    matrix = np.array([[math.nan if row.get(n) is None else row[n] for n in names] for row in rows], dtype=np.float64)
    return booster.inplace_predict(matrix).tolist()


# --- Canary -------------------------------------------------------------------------------------


def test_canary_share_one_answers_every_payment_with_the_challenger(
    http, scorer, settings, challenger, challenger_booster, trained_model, transactions, online_until
) -> None:
    plan = plan_of(challenger, "canary", 1.0)
    set_plan(settings, plan)
    wait_for_plan(scorer, plan)
    body = payments(transactions, online_until, "canary-all")
    results = score_batch(http, body)
    assert {r["model_version"] for r in results} == {challenger}
    # The challenger's own score (and reasons), and its version in each event.
    events = logged_events(settings, "canary-all", len(body))
    assert {event.model_version for _, event in events} == {challenger}
    by_id = {r["transaction_id"]: r for r in results}
    expected = challenger_scores(challenger_booster, [event.features for _, event in events])
    for (_, event), score in zip(events, expected):
        assert by_id[event.transaction["transaction_id"]]["risk_score"] == pytest.approx(score, abs=1e-6)
    champion_scores = challenger_scores(load_booster(settings, trained_model.version), [e.features for _, e in events])
    assert not np.allclose(expected, champion_scores)  # the two models disagree: the answers tell which spoke
    # Reasons are the challenger's own contributions (XGBoost's, as serving/explain.py computes them).
    names = list(challenger_booster.feature_names or [])
    vectors = np.array([[math.nan if e.features.get(n) is None else e.features[n] for n in names] for _, e in events])
    contributions = Contributions(challenger_booster)(vectors)
    assert sum(len(r["reasons"]) for r in results) > len(results)  # reasons there are to check
    for (_, event), row in zip(events, contributions):
        reasons = by_id[event.transaction["transaction_id"]]["reasons"]
        assert [r["contribution"] for r in reasons] == [round(row[names.index(r["feature"])], 4) for r in reasons]


def test_canary_share_zero_answers_no_payment_with_the_challenger(
    http, scorer, settings, challenger, trained_model, transactions, online_until
) -> None:
    plan = plan_of(challenger, "canary", 0.0)
    set_plan(settings, plan)
    wait_for_plan(scorer, plan)
    results = score_batch(http, payments(transactions, online_until, "canary-none"))
    assert {r["model_version"] for r in results} == {trained_model.version}


def test_canary_customer_always_meets_the_same_model(
    http, scorer, settings, challenger, trained_model, transactions, online_until
) -> None:
    plan = plan_of(challenger, "canary", 0.5)
    set_plan(settings, plan)
    wait_for_plan(scorer, plan)
    body = payments(transactions, online_until, "canary-half")
    answers = score_batch(http, body) + score_batch(http, body[::-1])  # other batches, other orders
    answers += [http.post("/score", json=payment).json() for payment in body[:40]]  # and one by one
    customer_of = {p["transaction_id"]: p["customer_id"] for p in body}
    met: dict[int, set[str]] = {}
    for answer in answers:
        met.setdefault(customer_of[answer["transaction_id"]], set()).add(answer["model_version"])
    assert all(len(versions) == 1 for versions in met.values()), met
    assert {v for versions in met.values() for v in versions} == {challenger, trained_model.version}
    for customer, versions in met.items():
        expected = challenger if plan.answers_with_challenger(customer) else trained_model.version
        assert versions == {expected}
    repeats = sum(1 for p in body if sum(q["customer_id"] == p["customer_id"] for q in body) > 1)
    assert repeats > BATCH // 2  # customers did pay several times


# --- Shadow ---------------------------------------------------------------------------------------


def test_shadow_logs_the_challenger_score_of_sampled_payments_and_answers_with_the_champion(
    http,
    scorer,
    settings,
    feature_store,
    challenger,
    challenger_booster,
    trained_model,
    transactions,
    online_until,
    tmp_path,
) -> None:
    plan = plan_of(challenger, "shadow", 0.5)
    set_plan(settings, plan)
    wait_for_plan(scorer, plan)
    body = payments(transactions, online_until, "shadow")
    results = score_batch(http, body)
    assert {r["model_version"] for r in results} == {trained_model.version}
    events = logged_events(settings, "shadow", len(body))
    sampled = {p["transaction_id"] for p in body if plan.shadows(p["transaction_id"])}
    assert 0 < len(sampled) < len(body)
    assert {e.transaction["transaction_id"] for _, e in events if e.shadow_version == challenger} == sampled

    # The worker's log step, on a private log folder (the session's customer states stay as they are).
    local = Settings(**{**settings.model_dump(), "data_dir": tmp_path})
    worker = Worker(local, feature_store, redis.Redis.from_url(settings.redis_url))
    assert worker.log(events) == len(body)
    log = read_prediction_log(local)
    assert len(log) == len(body)
    shadowed = log[log["transaction_id"].isin(sampled)]
    assert set(shadowed["shadow_version"]) == {challenger} and set(shadowed["model_version"]) == {trained_model.version}
    names = list(challenger_booster.feature_names or [])
    vectors = [
        {name: None if math.isnan(row[feature_column(name)]) else row[feature_column(name)] for name in names}
        for _, row in shadowed.iterrows()
    ]
    assert shadowed["shadow_score"].tolist() == pytest.approx(challenger_scores(challenger_booster, vectors), abs=1e-6)
    assert not np.allclose(shadowed["shadow_score"], shadowed["risk_score"])  # two models, two scores
    others = log[~log["transaction_id"].isin(sampled)]
    assert others["shadow_version"].isna().all() and others["shadow_score"].isna().all()


# --- Moving the plan -----------------------------------------------------------------------------


def test_plan_started_changed_and_removed_under_load_fails_no_request(
    scorer_url, scorer, settings, challenger, trained_model, transactions, online_until
) -> None:
    body = payments(transactions, online_until, "moving", count=40)
    results: list[tuple[int, str | None]] = []
    errors: list[str] = []
    stop = threading.Event()

    def hammer() -> None:
        with httpx.Client(base_url=scorer_url, timeout=10) as client:
            n = 0
            while not stop.is_set():
                try:
                    response = client.post("/score", json=body[n % len(body)])
                except httpx.HTTPError as error:
                    errors.append(repr(error))
                    continue
                ok = response.status_code == 200
                results.append((response.status_code, response.json()["model_version"] if ok else None))
                n += 1

    threads = [threading.Thread(target=hammer) for _ in range(3)]
    for thread in threads:
        thread.start()
    try:
        for plan in (
            plan_of(challenger, "canary", 0.5),
            plan_of(challenger, "shadow", 1.0),
            plan_of(challenger, "canary", 1.0),
        ):
            set_plan(settings, plan)
            wait_for_plan(scorer, plan)
            time.sleep(0.3)
        clear_plan(settings)
        wait_for_plan(scorer, None)
        time.sleep(0.3)
    finally:
        stop.set()
        for thread in threads:
            thread.join()
    assert errors == [] and {status for status, _ in results} == {200}, (errors[:3], results[-3:])
    assert {version for _, version in results} == {challenger, trained_model.version}
    assert len(results) > 100
    assert results[-1][1] == trained_model.version


def test_unreachable_registry_keeps_the_plan_in_force_and_shows_in_health(
    http, scorer, settings, registry_link, challenger, transactions, online_until
) -> None:
    plan = plan_of(challenger, "canary", 1.0)
    set_plan(settings, plan)
    wait_for_plan(scorer, plan)
    registry_link.cut()
    try:
        deadline = time.monotonic() + PLAN_TIMEOUT_S
        while http.get("/health").json()["model_registry"] != "unreachable":
            assert time.monotonic() < deadline, "health never reported the registry as unreachable"
            time.sleep(0.1)
        assert scorer.models.rollout is not None and scorer.models.rollout.plan == plan
        results = score_batch(http, payments(transactions, online_until, "outage", count=20))
        assert {r["model_version"] for r in results} == {challenger}
    finally:
        registry_link.start()
    clear_plan(settings)
    wait_for_plan(scorer, None)


@pytest.fixture(autouse=True)
def _no_plan_left(settings, scorer_app, scorer_url) -> Iterator[None]:
    """No plan after a test, in the registry and in the session's scorer (the next module's
    requests must meet the champion, not a plan the scorer has yet to drop)."""
    yield
    clear_plan(settings)
    wait_for_plan(scorer_app.state.scorer, None)


def test_a_challenger_nobody_approved_meets_no_traffic(
    http, scorer, settings, feature_store, trained_model, transactions, online_until
) -> None:
    later = transactions[transactions["tx_datetime"] >= transactions["tx_datetime"].min() + pd.Timedelta(days=3)]
    unapproved = train_candidate(settings, feature_store, later).version
    plan = plan_of(unapproved, "canary", 1.0)
    set_plan(settings, plan)
    time.sleep(10 * settings.model_poll_seconds)  # polls enough to have read the plan (and refused it)
    assert scorer.models.rollout is None
    results = score_batch(http, payments(transactions, online_until, "unapproved", count=30))
    assert {r["model_version"] for r in results} == {trained_model.version}
    approve(settings, unapproved, by="test-suite", note="approved after its plan was refused")
    wait_for_plan(scorer, plan)  # the same plan, taken up once its version is approved
    results = score_batch(http, payments(transactions, online_until, "approved-later", count=30))
    assert {r["model_version"] for r in results} == {unapproved}


# --- Older events and logs ------------------------------------------------------------------------


def test_events_and_log_files_from_before_rollouts_still_read(settings, tmp_path) -> None:
    old_event = {
        "transaction": {
            "transaction_id": "old-1",
            "tx_datetime": "2024-02-14T10:00:00+00:00",
            "customer_id": 1,
            "terminal_id": 2,
            "tx_amount": 12.5,
            "device_id": None,
        },
        "features": {"amount": 12.5},
        "risk_score": 0.1,
        "decision": "approve",
        "model_version": "1",
        "latency_ms": 2.0,
        "scored_at": "2024-02-14T10:00:00.005000+00:00",
    }
    event = ScoringEvent.from_fields({b"event": orjson.dumps(old_event)})
    assert event.shadow_version is None
    new_event = dataclasses.replace(
        event, transaction={**event.transaction, "transaction_id": "new-1"}, shadow_version="2"
    )
    local = Settings(**{**settings.model_dump(), "data_dir": tmp_path})
    old_table = prediction_table([("1-0", event)]).drop_columns(["shadow_version", "shadow_score"])
    for log_file in plan_batch(old_table) + plan_batch(prediction_table([("2-0", new_event)], [0.75])):
        write_parquet_atomically(log_dir(local) / log_file.relative_path, log_file.table)
    log = read_prediction_log(local).set_index("transaction_id")
    assert log.loc["old-1", "shadow_version"] is None and math.isnan(log.loc["old-1", "shadow_score"])
    assert log.loc["new-1", "shadow_version"] == "2" and log.loc["new-1", "shadow_score"] == 0.75
