"""The scorer follows the champion alias: promote and roll back under load, zero failed requests;
an unreachable registry leaves the served model in place and shows in /health."""

from __future__ import annotations

import asyncio
import threading
import time

import httpx
import pandas as pd
import pytest
import redis

from contracts.alerts import latest_alerts
from contracts.registry import CHAMPION, registry_client
from serving.app import create_app
from training.lifecycle import approve, audit_trail, promote, rollback
from training.train import train_candidate

LOAD_THREADS = 4


@pytest.fixture(scope="module")
def second_version(settings, feature_store, transactions, trained_model) -> str:
    result = train_candidate(settings, feature_store, transactions)
    approve(settings, result.version, by="test-suite", note="second version for the swap test")
    return result.version


def body(transactions: pd.DataFrame, online_until: pd.Timestamp, customer: int) -> dict:
    tx = transactions[(transactions["tx_datetime"] >= online_until) & (transactions["customer_id"] == customer)].iloc[0]
    return {
        "transaction_id": "swap",
        "tx_datetime": tx["tx_datetime"].isoformat(),
        "customer_id": int(customer),
        "terminal_id": int(tx["terminal_id"]),
        "tx_amount": float(tx["tx_amount"]),
        "device_id": tx["device_id"],
    }


class Load:
    """Threads posting /score back to back, recording status, version and latency of each answer."""

    def __init__(self, url: str, payload: dict) -> None:
        self.url, self.payload = url, payload
        self.results: list[tuple[int, str | None, float]] = []
        self.errors: list[str] = []
        self.stop = threading.Event()
        self.threads = [threading.Thread(target=self._run) for _ in range(LOAD_THREADS)]

    def _run(self) -> None:
        with httpx.Client(base_url=self.url, timeout=10) as client:
            while not self.stop.is_set():
                started = time.perf_counter()
                try:
                    response = client.post("/score", json=self.payload)
                except httpx.HTTPError as error:
                    self.errors.append(repr(error))
                    continue
                version = response.json().get("model_version") if response.status_code == 200 else None
                self.results.append((response.status_code, version, time.perf_counter() - started))

    def wait_for_version(self, version: str, timeout_s: float = 15) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            recent = [v for _, v, _ in self.results[-LOAD_THREADS * 3 :]]
            if recent and all(v == version for v in recent):
                return
            time.sleep(0.05)
        raise AssertionError(f"the scorer did not switch to v{version} within {timeout_s} s")


def test_promote_and_rollback_under_load_fail_no_request(
    scorer_url, settings, trained_model, second_version, transactions, online_until, live_customers, http
) -> None:
    load = Load(scorer_url, body(transactions, online_until, live_customers[-2]))
    for thread in load.threads:
        thread.start()
    try:
        time.sleep(0.5)
        promote(settings, second_version, by="test-suite", reason="swap under load")
        load.wait_for_version(second_version)
        assert http.get("/model").json()["version"] == second_version
        rollback(settings, by="test-suite", reason="roll back under load")
        load.wait_for_version(trained_model.version)
        time.sleep(0.3)
    finally:
        load.stop.set()
        for thread in load.threads:
            thread.join()
    statuses = {status for status, _, _ in load.results}
    assert load.errors == [] and statuses == {200}, (load.errors[:3], statuses)
    assert {v for _, v, _ in load.results} == {trained_model.version, second_version}
    assert len(load.results) > 100
    assert max(latency for _, _, latency in load.results) < 2.0
    assert http.get("/model").json()["version"] == trained_model.version


def test_unreachable_registry_keeps_the_model_and_shows_in_health(
    scorer_app, registry_link, http, trained_model, transactions, online_until, live_customers
) -> None:
    registry_link.cut()
    try:
        wait_for_registry(http, "unreachable")
        health = http.get("/health").json()
        assert health["status"] == "degraded" and health["registry_error"]
        assert health["model_version"] == trained_model.version
        scored = http.post("/score", json=body(transactions, online_until, live_customers[-3]))
        assert scored.status_code == 200 and scored.json()["model_version"] == trained_model.version
    finally:
        registry_link.start()
    wait_for_registry(http, "ok")


def wait_for_registry(http: httpx.Client, state: str, timeout_s: float = 20) -> None:
    deadline = time.monotonic() + timeout_s
    while http.get("/health").json()["model_registry"] != state:
        assert time.monotonic() < deadline, f"health never reported the registry as {state}"
        time.sleep(0.1)


def test_a_champion_nobody_approved_is_never_served(
    scorer_app, settings, http, feature_store, trained_model, transactions, online_until, live_customers
) -> None:
    """The alias moved with MLflow's own API (its UI's alias editor) to a version nobody approved."""
    unapproved = train_candidate(settings, feature_store, transactions).version
    client = registry_client(settings)
    alerts_before = len(latest_alerts(redis.Redis.from_url(settings.redis_url), settings, 1000))
    client.set_registered_model_alias(settings.model_name, CHAMPION, unapproved)
    try:
        deadline = time.monotonic() + 15
        while http.get("/health").json()["champion_refused"] != unapproved:
            assert time.monotonic() < deadline, "the scorer did not notice the unapproved champion"
            time.sleep(0.1)
        health = http.get("/health").json()
        assert health["status"] == "degraded" and health["model_version"] == trained_model.version
        answer = http.post("/score", json=body(transactions, online_until, live_customers[-4]))
        assert answer.status_code == 200 and answer.json()["model_version"] == trained_model.version
        metrics = http.get("/metrics").text
        assert (
            f'fraud_champion_refused{{model_name="{settings.model_name}",model_version="{unapproved}"}} 1.0' in metrics
        )
        alerts = latest_alerts(redis.Redis.from_url(settings.redis_url), settings, 1000)[alerts_before:]
        assert [(a["kind"], a["model_version"]) for a in alerts] == [("unapproved_champion", unapproved)]
        # A scorer starting now serves the last approved champion, not the unapproved one.
        fresh = create_app(settings)
        asyncio.run(_start_and_stop(fresh))
        assert fresh.state.versions == (trained_model.version, unapproved)
    finally:
        rollback(settings, by="test-suite", reason="back from the unapproved champion")
    trail = audit_trail(settings)
    assert [(m.kind, m.to_version) for m in trail[-2:]] == [
        ("external", unapproved),
        ("rollback", trained_model.version),
    ]
    deadline = time.monotonic() + 15
    while http.get("/health").json()["champion_refused"] is not None:
        assert time.monotonic() < deadline, "the refusal did not clear once the champion was approved again"
        time.sleep(0.1)


async def _start_and_stop(app) -> None:
    async with app.router.lifespan_context(app):
        models = app.state.scorer.models
        app.state.versions = (models.current.version, models.status.refused_version)
