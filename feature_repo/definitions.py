"""Feast definitions of the fraud platform: entity -> source -> view -> on-demand view -> service.

Freshness rule for every batch view: a daily snapshot stamped at 00:00 UTC of day D,
built by `fraud features build` from the raw store (`feature_repo/transforms.py`).
A transaction at time t on day D is joined to the snapshot of D: it sees days before D
only, never itself and never its future.
"""

from datetime import timedelta

import pandas as pd
from feast import Entity, FeatureService, FeatureView, Field, FileSource, RequestSource
from feast.on_demand_feature_view import on_demand_feature_view
from feast.types import Float64, Int64, String
from feast.value_type import ValueType

from data.settings import Settings

_offline_dir = Settings().offline_dir

# A snapshot older than two days means the daily batch stopped: serve "missing"
# rather than silently stale values.
SNAPSHOT_TTL = timedelta(days=2)

# --- Entities -----------------------------------------------------------------------

customer = Entity(name="customer", join_keys=["customer_id"], value_type=ValueType.INT64,
                  description="A card holder (one card per customer).")
terminal = Entity(name="terminal", join_keys=["terminal_id"], value_type=ValueType.INT64,
                  description="A payment terminal or merchant.")
device = Entity(name="device", join_keys=["device_id"], value_type=ValueType.STRING,
                description="The device a payment was made from; empty when unknown.")

# --- Sources (offline tables written by the feature pipeline) ----------------------

customer_spending_source = FileSource(
    name="customer_spending_source",
    path=str(_offline_dir / "customer_spending.parquet"),
    timestamp_field="event_timestamp",
)
terminal_risk_source = FileSource(
    name="terminal_risk_source",
    path=str(_offline_dir / "terminal_risk.parquet"),
    timestamp_field="event_timestamp",
)
device_profile_source = FileSource(
    name="device_profile_source",
    path=str(_offline_dir / "device_profile.parquet"),
    timestamp_field="event_timestamp",
)

# --- Feature views ------------------------------------------------------------------

customer_spending = FeatureView(
    name="customer_spending",
    entities=[customer],
    ttl=SNAPSHOT_TTL,
    # Window: transactions of the customer on days [D - w, D), daily batch.
    schema=[
        Field(name="customer_id_nb_tx_1day_window", dtype=Int64,
              description="customer's number of payments, last day"),
        Field(name="customer_id_avg_amount_1day_window", dtype=Float64,
              description="customer's average amount, last day"),
        Field(name="customer_id_nb_tx_7day_window", dtype=Int64,
              description="customer's number of payments, last 7 days"),
        Field(name="customer_id_avg_amount_7day_window", dtype=Float64,
              description="customer's average amount, last 7 days"),
        Field(name="customer_id_nb_tx_30day_window", dtype=Int64,
              description="customer's number of payments, last 30 days"),
        Field(name="customer_id_avg_amount_30day_window", dtype=Float64,
              description="customer's average amount, last 30 days"),
    ],
    source=customer_spending_source,
    online=True,
    tags={"freshness": "daily batch", "owner": "fraud-platform"},
)

terminal_risk = FeatureView(
    name="terminal_risk",
    entities=[terminal],
    ttl=SNAPSHOT_TTL,
    # Window: days [D - delay - w, D - delay), delay = LABEL_DELAY (7 days): only
    # labels old enough to be known on day D are counted. Daily batch.
    schema=[
        Field(name="terminal_id_nb_tx_1day_window", dtype=Int64,
              description="terminal's number of payments, 1 day before the label delay"),
        Field(name="terminal_id_risk_1day_window", dtype=Float64,
              description="terminal's known fraud share, 1 day before the label delay"),
        Field(name="terminal_id_nb_tx_7day_window", dtype=Int64,
              description="terminal's number of payments, 7 days before the label delay"),
        Field(name="terminal_id_risk_7day_window", dtype=Float64,
              description="terminal's known fraud share, 7 days before the label delay"),
        Field(name="terminal_id_nb_tx_30day_window", dtype=Int64,
              description="terminal's number of payments, 30 days before the label delay"),
        Field(name="terminal_id_risk_30day_window", dtype=Float64,
              description="terminal's known fraud share, 30 days before the label delay"),
    ],
    source=terminal_risk_source,
    online=True,
    tags={"freshness": "daily batch", "owner": "fraud-platform"},
)

device_profile = FeatureView(
    name="device_profile",
    entities=[device],
    ttl=SNAPSHOT_TTL,
    # Everything seen before day D. A device never seen before has no row: its
    # features are missing, which is itself a strong signal (account takeover).
    schema=[
        Field(name="device_nb_customers", dtype=Int64,
              description="number of customers seen on this device"),
        Field(name="device_age_days", dtype=Int64,
              description="days since the device was first seen"),
    ],
    source=device_profile_source,
    online=True,
    tags={"freshness": "daily batch", "owner": "fraud-platform"},
)

# --- Request-time features ----------------------------------------------------------

transaction_request = RequestSource(
    name="transaction_request",
    schema=[
        Field(name="tx_amount", dtype=Float64),
        Field(name="tx_epoch_seconds", dtype=Int64),
    ],
)


@on_demand_feature_view(
    sources=[transaction_request, customer_spending],
    # Field descriptions would break Feast's schema inference for on-demand views;
    # the analyst-readable names travel as tags instead.
    schema=[
        Field(name="amount", dtype=Float64),
        Field(name="tx_hour", dtype=Int64),
        Field(name="tx_during_weekend", dtype=Int64),
        Field(name="tx_during_night", dtype=Int64),
        Field(name="amount_over_customer_avg_30day", dtype=Float64),
    ],
    mode="pandas",
    tags={
        "freshness": "request time",
        "description:amount": "payment amount",
        "description:tx_hour": "hour of the payment (UTC)",
        "description:tx_during_weekend": "payment on a weekend",
        "description:tx_during_night": "payment at night (before 07:00)",
        "description:amount_over_customer_avg_30day": "amount against the customer's 30-day average",
    },
)
def transaction_request_features(inputs: pd.DataFrame) -> pd.DataFrame:
    # Feast stores this function's source in the registry and runs it wherever the
    # features are read, so the import is inside: the transform lives in one module.
    from feature_repo.transforms import request_time_features

    return request_time_features(inputs)


# --- Feature services ---------------------------------------------------------------

fraud_detection_v1 = FeatureService(
    name="fraud_detection_v1",
    features=[customer_spending, terminal_risk, device_profile, transaction_request_features],
    description="Inputs of the transaction fraud model.",
    tags={"consumer": "fraud-scorer"},
)
