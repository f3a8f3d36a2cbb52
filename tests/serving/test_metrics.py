"""GET /metrics over real HTTP: what scoring and errors add to each series (before/after deltas)."""

from __future__ import annotations

import time

import pandas as pd
import pytest
from prometheus_client.parser import text_string_to_metric_families


def sample(http, name: str, **labels: str) -> float:
    """The value of one sample of /metrics (0 when the series does not exist yet)."""
    response = http.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    for family in text_string_to_metric_families(response.text):
        for found in family.samples:
            if found.name == name and all(found.labels.get(k) == v for k, v in labels.items()):
                return found.value
    return 0.0


@pytest.fixture(scope="module")
def probe(transactions, online_until, live_customers) -> pd.Series:
    live = transactions[transactions["tx_datetime"] >= online_until]
    return live[live["customer_id"] == live_customers[-2]].iloc[0]


def body(tx: pd.Series, **overrides) -> dict:
    return {
        "transaction_id": "m-1",
        "tx_datetime": tx["tx_datetime"].isoformat(),
        "customer_id": int(tx["customer_id"]),
        "terminal_id": int(tx["terminal_id"]),
        "tx_amount": float(tx["tx_amount"]),
        "device_id": tx["device_id"],
        **overrides,
    }


def test_scoring_counts_decisions_scores_and_latency_by_route(http, probe) -> None:
    route = {"route": "/score", "method": "POST", "status": "200"}
    before = {
        "requests": sample(http, "fraud_http_request_duration_seconds_count", **route),
        "scores": sample(http, "fraud_risk_score_count"),
        "block": sample(http, "fraud_decisions_total", decision="block"),
    }
    decisions = [
        http.post("/score", json=body(probe, tx_amount=amount)).json()["decision"] for amount in (3.0, 5000.0, 4000.0)
    ]
    assert sample(http, "fraud_http_request_duration_seconds_count", **route) == before["requests"] + 3
    assert sample(http, "fraud_risk_score_count") == before["scores"] + 3
    assert sample(http, "fraud_decisions_total", decision="block") == before["block"] + decisions.count("block")
    assert sample(http, "fraud_http_request_duration_seconds_bucket", le="+Inf", **route) >= 3


def test_batch_counts_every_payment(http, probe) -> None:
    before = sample(http, "fraud_risk_score_count")
    items = [body(probe, transaction_id=f"m-b{i}") for i in range(5)]
    assert http.post("/score/batch", json={"transactions": items}).status_code == 200
    assert sample(http, "fraud_risk_score_count") == before + 5
    assert sample(http, "fraud_http_request_duration_seconds_count", route="/score/batch", status="200") >= 1


def test_rejected_and_unknown_requests_are_counted_by_status(http, probe) -> None:
    rejected = {"route": "/score", "method": "POST", "status": "422"}
    before = sample(http, "fraud_http_request_duration_seconds_count", **rejected)
    assert http.post("/score", json=body(probe, tx_amount=-1)).status_code == 422
    assert sample(http, "fraud_http_request_duration_seconds_count", **rejected) == before + 1
    # Unknown paths share one label, whatever the path.
    unknown = {"route": "unmatched", "method": "GET", "status": "404"}
    before = sample(http, "fraud_http_request_duration_seconds_count", **unknown)
    for path in ("/nope", "/wp-admin/setup.php"):
        assert http.get(path).status_code == 404
    assert sample(http, "fraud_http_request_duration_seconds_count", **unknown) == before + 2


@pytest.mark.parametrize("path", ["/docs", "/openapi.json", "/docs/oauth2-redirect", "/redoc"])
def test_documentation_pages_are_counted_under_their_own_route(http, path: str) -> None:
    page = {"route": path, "method": "GET", "status": "200"}
    unmatched = {"route": "unmatched", "method": "GET", "status": "200"}
    before = (
        sample(http, "fraud_http_request_duration_seconds_count", **page),
        sample(http, "fraud_http_request_duration_seconds_count", **unmatched),
    )
    assert http.get(path).status_code == 200
    assert sample(http, "fraud_http_request_duration_seconds_count", **page) == before[0] + 1
    assert sample(http, "fraud_http_request_duration_seconds_count", **unmatched) == before[1]


def test_missing_features_are_counted_per_feature(http, probe) -> None:
    before = sample(http, "fraud_missing_features_total", feature="device_age_days")
    answer = http.post("/score", json=body(probe, device_id="never-seen-device")).json()
    assert "device_age_days" in answer["missing_features"]
    assert sample(http, "fraud_missing_features_total", feature="device_age_days") == before + 1


def test_metrics_name_the_serving_model_version(http, trained_model, settings) -> None:
    assert sample(http, "fraud_model_info", model_name=settings.model_name, model_version=trained_model.version) == 1.0


def test_metrics_add_up_across_worker_processes(settings, trained_model, online_until, probe) -> None:
    """`fraud serve --workers 2`: whichever worker answers a scrape, it counts every worker's requests."""
    import os
    import socket
    import subprocess
    import sys
    import time
    from pathlib import Path

    import httpx

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    env = {k: v for k, v in os.environ.items() if not k.startswith("PROMETHEUS_")}
    env["FRAUD_SCORING_STREAM"] = "fraud:test-metrics:events"
    server = subprocess.Popen(
        [str(Path(sys.executable).parent / "fraud"), "serve", "--port", str(port), "--workers", "2"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10) as client:
            deadline = time.monotonic() + 120
            while True:
                assert server.poll() is None, server.stderr.read().decode()
                assert time.monotonic() < deadline, "the scorer did not start"
                try:
                    if client.get("/health").status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                time.sleep(0.3)
            requests = 40
            for i in range(requests):
                # A new connection each time: the kernel spreads them over both workers.
                assert (
                    httpx.post(
                        f"http://127.0.0.1:{port}/score", json=body(probe, transaction_id=f"w-{i}"), timeout=10
                    ).status_code
                    == 200
                )
            scrapes = {
                sample(httpx.Client(base_url=f"http://127.0.0.1:{port}"), "fraud_risk_score_count") for _ in range(6)
            }
        assert scrapes == {float(requests)}
        # Both workers scored some: their value files are what the scrape added up.
        files = (settings.data_dir / "metrics" / f"serve-{server.pid}").glob("histogram_*.db")
        assert len({path.stem.rsplit("_", 1)[1] for path in files}) == 2
    finally:
        server.terminate()
        server.wait(timeout=30)


def test_dropped_scoring_events_are_counted_and_make_health_degraded(scorer_app, http, probe) -> None:
    """The stream unreachable past the publisher's retries: the answer still comes, the loss shows."""
    from contracts.net import free_port
    from serving.publisher import stream_client

    publisher = scorer_app.state.scorer.events
    saved = publisher._client, publisher._retry_pauses_s
    publisher._client = stream_client(f"redis://127.0.0.1:{free_port()}/0")  # nothing listens there
    publisher._retry_pauses_s = (0.01,)
    try:
        before = sample(http, "fraud_scoring_events_dropped_total")
        assert http.post("/score", json=body(probe, transaction_id="m-drop")).status_code == 200
        for _ in range(100):
            if sample(http, "fraud_scoring_events_dropped_total") == before + 1:
                break
            time.sleep(0.05)
        assert sample(http, "fraud_scoring_events_dropped_total") == before + 1
        health = http.get("/health").json()
        assert health["status"] == "degraded" and health["event_publisher"] == "dropping"
        assert health["events_dropped"] >= 1
    finally:
        publisher._client, publisher._retry_pauses_s = saved
        publisher._last_drop = None  # the other tests start from a publisher that has not dropped lately
