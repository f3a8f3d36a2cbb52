"""POST /score, GET /model and GET /health over real HTTP against real Feast, Redis and MLflow."""

from __future__ import annotations

import pandas as pd
import pytest


@pytest.fixture(scope="module")
def probe(transactions, online_until, live_customers) -> pd.Series:
    """A live-day payment of a customer the parity replay does not use (scoring pushes state)."""
    live = transactions[transactions["tx_datetime"] >= online_until]
    return live[live["customer_id"] == live_customers[-1]].iloc[0]


def payload(tx: pd.Series, **overrides) -> dict:
    body = {
        "transaction_id": "t-1",
        "tx_datetime": tx["tx_datetime"].isoformat(),
        "customer_id": int(tx["customer_id"]),
        "terminal_id": int(tx["terminal_id"]),
        "tx_amount": float(tx["tx_amount"]),
        "device_id": tx["device_id"],
    }
    return {**body, **overrides}


def test_score_returns_score_decision_reasons_and_model_version(http, probe, trained_model, settings) -> None:
    response = http.post("/score", json=payload(probe))
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["transaction_id"] == "t-1"
    assert 0.0 <= body["risk_score"] <= 1.0
    assert body["decision"] in {"approve", "review", "block"}
    assert body["model_version"] == trained_model.version
    assert body["feature_service"] == settings.feature_service
    assert body["missing_features"] == []
    for reason in body["reasons"]:
        assert reason["contribution"] > 0 and reason["description"]


def test_score_decision_follows_thresholds(http, probe, settings) -> None:
    # A fraud of scenario 1 (amount far above 220) must at least be reviewed.
    body = http.post("/score", json=payload(probe, tx_amount=5000.0)).json()
    assert body["risk_score"] >= settings.review_threshold
    expected = "block" if body["risk_score"] >= settings.block_threshold else "review"
    assert body["decision"] == expected
    assert any(r["feature"] in {"amount", "amount_over_customer_avg_30day"} for r in body["reasons"])


def test_score_of_unknown_customer_names_the_missing_features(http, probe) -> None:
    body = http.post("/score", json=payload(probe, customer_id=987654321, device_id="never-seen")).json()
    assert 0.0 <= body["risk_score"] <= 1.0
    assert {"recent_tx_epoch_seconds", "recent_tx_amounts", "device_age_days"} <= set(body["missing_features"])
    assert not any(name.startswith("labelled_tx") for name in body["missing_features"])


@pytest.mark.parametrize(
    "field, value, problem",
    [
        ("tx_amount", -1.0, "greater than or equal to 0"),
        ("tx_amount", "ten", "valid number"),
        ("customer_id", "12", "valid integer"),
        ("customer_id", 1.5, "valid integer"),
        ("tx_datetime", "yesterday", "datetime"),
        ("terminal_id", None, "valid integer"),
        ("customer_id", 2**64, "less than or equal to 9223372036854775807"),
    ],
)
def test_score_rejects_wrongly_typed_or_invalid_fields(http, probe, field, value, problem) -> None:
    response = http.post("/score", json=payload(probe, **{field: value}))
    assert response.status_code == 422
    errors = response.json()["detail"]
    assert [e["field"] for e in errors] == [field]
    assert problem in errors[0]["problem"]


def test_score_rejects_an_integer_transaction_id_beyond_int64(http, probe) -> None:
    response = http.post("/score", json=payload(probe, transaction_id=2**64))
    assert response.status_code == 422
    errors = response.json()["detail"]
    # An id is an integer or a string: each reading says why it fails, both name the field.
    assert all(e["field"].startswith("transaction_id") for e in errors)
    assert any("less than or equal to 9223372036854775807" in e["problem"] for e in errors)


@pytest.mark.parametrize("literal", ["NaN", "Infinity", "-Infinity", "1e999"])
def test_score_rejects_non_finite_amount(http, probe, literal) -> None:
    body = payload(probe, tx_amount=0.0)
    text = pd.io.json.ujson_dumps(body).replace('"tx_amount":0.0', f'"tx_amount":{literal}')
    response = http.post("/score", content=text, headers={"content-type": "application/json"})
    assert response.status_code == 422, response.text
    assert response.json()["detail"][0]["field"] == "tx_amount"


def test_score_rejects_missing_field_and_names_it(http, probe) -> None:
    body = payload(probe)
    del body["terminal_id"]
    response = http.post("/score", json=body)
    assert response.status_code == 422
    assert response.json()["detail"] == [{"field": "terminal_id", "problem": "Field required", "type": "missing"}]


def test_score_rejects_a_label_in_the_request(http, probe) -> None:
    response = http.post("/score", json=payload(probe, is_fraud=1))
    assert response.status_code == 422
    assert response.json()["detail"][0]["field"] == "is_fraud"


def test_model_endpoint_says_which_version_serves_and_where_it_came_from(http, trained_model, settings) -> None:
    body = http.get("/model").json()
    assert body["version"] == trained_model.version
    assert body["run_id"] == trained_model.run_id
    assert body["alias"] == "champion"
    assert body["feature_service"] == settings.feature_service
    assert "amount" in body["features"] and body["data_start"] < body["data_end"]
    assert body["approved_by"] == "test-suite" and body["approved_at"]
    assert len(body["data_digest"]) >= 8


def test_health_reports_model_online_store_and_registry(http, trained_model) -> None:
    body = http.get("/health").json()
    assert {k: body[k] for k in ("status", "model_version", "online_store", "model_registry")} == {
        "status": "ok",
        "model_version": trained_model.version,
        "online_store": "ok",
        "model_registry": "ok",
    }
    assert body["registry_error"] is None


def test_batch_scores_in_order_and_agrees_with_single_scoring(http, transactions, online_until, live_customers) -> None:
    live = transactions[
        (transactions["tx_datetime"] >= online_until) & transactions["customer_id"].isin(live_customers[-6:-3])
    ].head(6)
    bodies = [payload(tx, transaction_id=f"b-{i}") for i, (_, tx) in enumerate(live.iterrows())]
    # Scoring pushes no state by itself (the worker does), so single and batch see the same features.
    singles = [http.post("/score", json=body).json() for body in bodies]
    batch = http.post("/score/batch", json={"transactions": bodies})
    assert batch.status_code == 200, batch.text
    results = batch.json()["results"]
    assert [r["transaction_id"] for r in results] == [b["transaction_id"] for b in bodies]
    for single, batched in zip(singles, results):
        assert batched["risk_score"] == pytest.approx(single["risk_score"], abs=1e-6)
        assert batched["reasons"] == single["reasons"]


def test_batch_rejects_more_than_a_thousand_or_none(http, probe) -> None:
    too_many = http.post("/score/batch", json={"transactions": [payload(probe)] * 1001})
    assert too_many.status_code == 422 and too_many.json()["detail"][0]["field"] == "transactions"
    empty = http.post("/score/batch", json={"transactions": []})
    assert empty.status_code == 422 and empty.json()["detail"][0]["field"] == "transactions"


def test_batch_names_the_broken_item(http, probe) -> None:
    response = http.post("/score/batch", json={"transactions": [payload(probe), payload(probe, tx_amount=-3)]})
    assert response.status_code == 422
    assert response.json()["detail"][0]["field"] == "transactions.1.tx_amount"
