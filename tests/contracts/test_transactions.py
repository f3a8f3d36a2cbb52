"""The transaction schema is declared once: every contract, store, log and request derives from it."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from pydantic import Field, ValidationError

from contracts.events import payment_record
from contracts.prediction_log import base_schema
from contracts.tables import ARROW_TYPES, arrow_schema, request_body, utc_timestamp
from contracts.transactions import (
    Column,
    Transaction,
    as_utc,
    column_names,
    contract_columns,
    label_columns,
    raw_columns,
)
from data.contract import check_contract, normalize


class WithMerchant(Transaction):
    """The one place a new payment column is declared: what the test below adds."""

    merchant_category: Annotated[str | None, Field(max_length=32), Column("text", nullable=True)] = None


def payment(**extra: object) -> dict[str, object]:
    return {
        "transaction_id": "t-1",
        "tx_datetime": "2024-03-01T10:00:00+01:00",
        "customer_id": 7,
        "terminal_id": 9,
        "tx_amount": 12.5,
        **extra,
    }


def frame(**extra: list[object]) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "transaction_id": ["a", "b"],
            "tx_datetime": ["2024-03-01T10:00:00", "2024-03-02T11:00:00"],
            "customer_id": [1, 2],
            "terminal_id": [3, 4],
            "tx_amount": [1.0, 2.0],
            **extra,
        }
    )


def test_a_column_added_to_the_payment_reaches_the_request_contract_stores_log_and_events() -> None:
    # The scoring request: accepted by the extended model, refused (extra field) by today's.
    assert WithMerchant.model_validate(payment(merchant_category="grocery")).merchant_category == "grocery"
    with pytest.raises(ValidationError, match="merchant_category"):
        Transaction.model_validate(payment(merchant_category="grocery"))
    # The contract check: known, typed, optional.
    assert check_contract(frame(merchant_category=["grocery", None]), WithMerchant) == []
    assert [v.rule for v in check_contract(frame(merchant_category=["grocery", None]))] == ["unknown_column"]
    wrong = check_contract(frame(merchant_category=["grocery", 5]), WithMerchant)
    assert [(v.rule, v.column, v.rows) for v in wrong] == [("type", "merchant_category", 1)]
    assert normalize(frame(merchant_category=["grocery", None]), WithMerchant)["merchant_category"].tolist() == [
        "grocery",
        None,
    ]
    # The raw store's and the prediction log's Arrow schemas.
    assert arrow_schema(raw_columns(WithMerchant)).field("merchant_category").type == pa.string()
    assert "merchant_category" in base_schema(WithMerchant).names
    assert "merchant_category" not in base_schema(Transaction).names
    # The scoring event's payment, and request bodies built from raw rows.
    assert payment_record(WithMerchant.model_validate(payment(merchant_category="fuel")))["merchant_category"] == "fuel"
    assert request_body({**payment(), "merchant_category": "fuel"}, WithMerchant)["merchant_category"] == "fuel"
    assert "merchant_category" not in request_body({**payment(), "merchant_category": "fuel"})


def test_raw_columns_are_the_payment_then_the_labels_with_their_rules() -> None:
    columns = {c.name: c for c in raw_columns()}
    assert column_names(raw_columns()) == (*Transaction.model_fields, *label_columns())
    assert label_columns() == ("is_fraud", "fraud_scenario")
    assert [c.name for c in contract_columns() if c.required] == [
        "transaction_id",
        "tx_datetime",
        "customer_id",
        "terminal_id",
        "tx_amount",
    ]
    assert columns["device_id"].nullable and not columns["is_fraud"].nullable and not columns["is_fraud"].required
    assert columns["is_fraud"].kind == "label" and ARROW_TYPES[columns["transaction_id"].kind] == pa.string()


def test_a_field_without_its_column_kind_is_refused() -> None:
    class Undeclared(Transaction):
        channel: str | None = None

    with pytest.raises(TypeError, match=r"Undeclared\.channel needs exactly one Column"):
        contract_columns(Undeclared)


def test_request_body_keeps_present_payment_values_as_json() -> None:
    row = {
        "transaction_id": np.int64(5),
        "tx_datetime": pd.Timestamp("2024-03-01 10:00"),
        "customer_id": np.int64(1),
        "terminal_id": 2,
        "tx_amount": np.float64(3.5),
        "device_id": None,
        "device_type": float("nan"),
        "is_fraud": 1,
        "fraud_scenario": 0,
    }
    body = request_body(row)
    assert body == {
        "transaction_id": 5,
        "tx_datetime": "2024-03-01T10:00:00+00:00",
        "customer_id": 1,
        "terminal_id": 2,
        "tx_amount": 3.5,
    }
    assert all(type(value) in (int, float, str) for value in body.values())
    assert Transaction.model_validate(body).tx_datetime == datetime(2024, 3, 1, 10, tzinfo=UTC)


def test_naive_times_are_utc_and_aware_ones_are_converted() -> None:
    assert as_utc(datetime(2024, 3, 1, 10)) == datetime(2024, 3, 1, 10, tzinfo=UTC)
    assert as_utc(datetime.fromisoformat("2024-03-01T10:00:00+02:00")).hour == 8
    assert utc_timestamp("2024-03-01T10:00:00") == pd.Timestamp("2024-03-01T10:00:00Z")
    assert utc_timestamp("2024-03-01T10:00:00-05:00") == pd.Timestamp("2024-03-01T15:00:00Z")
    assert Transaction.model_validate(payment()).tx_datetime.hour == 9  # +01:00 in the request, UTC inside
