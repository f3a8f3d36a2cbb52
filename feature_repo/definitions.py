"""Feast definitions of the fraud platform: entity -> source -> view -> on-demand view -> service.

Every feature's window, as-of rule and freshness is written next to it. The values
themselves are computed in `feature_repo/transforms.py`, the one module of transforms,
for training (offline tables, historical retrieval) and serving (online reads) alike.

Nothing here depends on a deployment's settings: the platform applies these objects with
each file source bound to its own FRAUD_DATA_DIR (`feature_repo.store.apply_definitions`).
"""

import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd
from feast import Entity, FeatureService, FeatureView, Field, FileSource, PushSource, RequestSource
from feast.on_demand_feature_view import on_demand_feature_view
from feast.types import Array, Float64, Int64
from feast.value_type import ValueType


def offline_table(name: str) -> str:
    """An offline table: the parquet parts of a folder under FRAUD_DATA_DIR/features, as Feast's
    own CLI finds them (`feast apply` after `eval "$(fraud env)"`); the platform re-binds it."""
    return str(Path(os.environ.get("FRAUD_DATA_DIR", ".fraud-data")) / "features" / name / "part-*.parquet")


# --- Entities -----------------------------------------------------------------------

customer = Entity(
    name="customer",
    join_keys=["customer_id"],
    value_type=ValueType.INT64,
    description="A card holder (one card per customer).",
)
terminal = Entity(
    name="terminal",
    join_keys=["terminal_id"],
    value_type=ValueType.INT64,
    description="A payment terminal or merchant.",
)
device = Entity(
    name="device",
    join_keys=["device_id"],
    value_type=ValueType.STRING,
    description="The device a payment was made from; empty when unknown.",
)

# --- Sources ------------------------------------------------------------------------

# Offline: one row per payment, written by `fraud features build` from the raw store.
# Online: the scorer pushes the next state after every payment it scores, so the next
# request of the same customer sees it (freshness: per payment, pushed).
customer_state_source = FileSource(
    name="customer_state_source", path=offline_table("customer_state"), timestamp_field="event_timestamp"
)
customer_state_push = PushSource(name="customer_state_push", batch_source=customer_state_source)
# One row per labelled payment, stamped payment time + LABEL_DELAY: the moment the
# label is known (the feature pipeline applies the delay; nothing downstream needs it).
# Freshness: `feast materialize-incremental` (the label feed) run often.
terminal_labels_source = FileSource(
    name="terminal_labels_source",
    path=offline_table("terminal_labels"),
    timestamp_field="event_timestamp",
)
# Daily snapshot stamped 00:00 of day D, counting days before D. Freshness: daily batch.
device_profile_source = FileSource(
    name="device_profile_source",
    path=offline_table("device_profile"),
    timestamp_field="event_timestamp",
)

# Feast stamps a source with the time it is constructed, and `feast plan` compares those
# stamps: pinned, a plan against an unchanged repository (and its registry) is clean.
DEFINED_AT = datetime(2025, 1, 1, tzinfo=UTC)
for _source in (customer_state_push, customer_state_source, terminal_labels_source, device_profile_source):
    _source.created_timestamp = _source.last_updated_timestamp = DEFINED_AT

# --- Feature views (stored state) ---------------------------------------------------

customer_state = FeatureView(
    name="customer_state",
    entities=[customer],
    # Payments older than 30 days fall out of every window: older state is as good as none.
    ttl=timedelta(days=30),
    schema=[
        Field(
            name="recent_tx_epoch_seconds",
            dtype=Array(Int64),
            description="times of the customer's payments in the 30 days up to its last one",
        ),
        Field(name="recent_tx_amounts", dtype=Array(Float64), description="amounts of those payments"),
        Field(
            name="recent_tx_device_hashes",
            dtype=Array(Int64),
            description="device hashes of those payments (0 = no device)",
        ),
    ],
    source=customer_state_push,
    online=True,
    tags={"freshness": "pushed per payment", "as_of": "row stamped 1 us after the payment it includes"},
)

terminal_labels = FeatureView(
    name="terminal_labels",
    entities=[terminal],
    # A row whose newest label became known more than 30 days ago holds nothing any window sees.
    ttl=timedelta(days=30),
    schema=[
        Field(
            name="label_known_epoch_seconds",
            dtype=Array(Int64),
            description="when the labels of the terminal's payments in the 30 days up to a labelled one "
            "became known (payment time + LABEL_DELAY)",
        ),
        Field(name="labelled_tx_frauds", dtype=Array(Int64), description="their labels (1 = fraud)"),
    ],
    source=terminal_labels_source,
    online=True,
    tags={
        # Rows are stamped when their labels become known: `fraud features materialize --end T`
        # loads them up to T + LABEL_DELAY, every label of the data up to T (feature_repo/store.py).
        "stamped_ahead": "label_delay",
        "freshness": "daily batch; each label is served from the moment it is known",
        "as_of": "row stamped when its newest label becomes known (payment + LABEL_DELAY)",
    },
)

device_profile = FeatureView(
    name="device_profile",
    entities=[device],
    # A snapshot older than two days means the daily batch stopped: serve "missing".
    ttl=timedelta(days=2),
    schema=[
        # Everything seen on days before D. A device never seen has no row: its
        # features are missing, itself a strong signal (account takeover).
        Field(name="device_nb_customers", dtype=Int64, description="customers seen on this device"),
        Field(name="device_age_days", dtype=Int64, description="days since the device was first seen"),
    ],
    source=device_profile_source,
    online=True,
    tags={"freshness": "daily batch", "as_of": "snapshot of day D counts days before D"},
)

# --- Request-time features (on-demand views) ----------------------------------------

payment_request = RequestSource(
    name="payment_request",
    schema=[
        Field(name="tx_amount", dtype=Float64),
        Field(name="tx_epoch_seconds", dtype=Int64),
        Field(name="device_hash", dtype=Int64),
    ],
)

# Field descriptions would break Feast's schema inference for on-demand views, so the
# analyst-readable names travel as tags ("description:<feature>").


@on_demand_feature_view(
    sources=[payment_request, customer_state],
    schema=[
        # Windows (t - w, t], the current payment included (Handbook chapter 3.4).
        Field(name="customer_id_nb_tx_1day_window", dtype=Int64),
        Field(name="customer_id_avg_amount_1day_window", dtype=Float64),
        Field(name="customer_id_nb_tx_7day_window", dtype=Int64),
        Field(name="customer_id_avg_amount_7day_window", dtype=Float64),
        Field(name="customer_id_nb_tx_30day_window", dtype=Int64),
        Field(name="customer_id_avg_amount_30day_window", dtype=Float64),
        Field(name="amount", dtype=Float64),
        Field(name="tx_during_weekend", dtype=Int64),  # weekday >= 5 (UTC)
        Field(name="tx_during_night", dtype=Int64),  # hour <= 6 (UTC)
        # Ours, over the customer's previous 30 days (current payment excluded).
        Field(name="amount_over_customer_avg_30day", dtype=Float64),
        Field(name="seconds_since_previous_tx", dtype=Float64),
        Field(name="hour_gap_from_customer_usual", dtype=Float64),
        Field(name="device_used_by_customer_30day", dtype=Float64),
    ],
    mode="pandas",
    tags={
        "freshness": "request time",
        "description:customer_id_nb_tx_1day_window": "customer's payments, last 24 h",
        "description:customer_id_avg_amount_1day_window": "customer's average amount, last 24 h",
        "description:customer_id_nb_tx_7day_window": "customer's payments, last 7 days",
        "description:customer_id_avg_amount_7day_window": "customer's average amount, last 7 days",
        "description:customer_id_nb_tx_30day_window": "customer's payments, last 30 days",
        "description:customer_id_avg_amount_30day_window": "customer's average amount, last 30 days",
        "description:amount": "payment amount",
        "description:tx_during_weekend": "payment on a weekend",
        "description:tx_during_night": "payment at night (before 07:00 UTC)",
        "description:amount_over_customer_avg_30day": "amount against the customer's 30-day average",
        "description:seconds_since_previous_tx": "time since the customer's previous payment",
        "description:hour_gap_from_customer_usual": "hours away from the customer's usual time",
        "description:device_used_by_customer_30day": "device already used by this customer",
    },
)
def customer_payment_features(inputs: pd.DataFrame) -> pd.DataFrame:
    # Feast stores this source in the registry and runs it wherever features are
    # read, so the import is inside: the transform itself lives in one module.
    from feature_repo.transforms import customer_request_features

    return pd.DataFrame(customer_request_features(inputs), index=inputs.index)


@on_demand_feature_view(
    sources=[payment_request, terminal_labels],
    schema=[
        # Payments in (t - delay - w, t - delay], i.e. labels known in (t - w, t], and their
        # fraud share (0 when none).
        Field(name="terminal_id_nb_tx_1day_window", dtype=Int64),
        Field(name="terminal_id_risk_1day_window", dtype=Float64),
        Field(name="terminal_id_nb_tx_7day_window", dtype=Int64),
        Field(name="terminal_id_risk_7day_window", dtype=Float64),
        Field(name="terminal_id_nb_tx_30day_window", dtype=Int64),
        Field(name="terminal_id_risk_30day_window", dtype=Float64),
    ],
    mode="pandas",
    tags={
        "freshness": "request time",
        "description:terminal_id_nb_tx_1day_window": "terminal's payments, 1 day before the label delay",
        "description:terminal_id_risk_1day_window": "terminal's known fraud share, 1 day",
        "description:terminal_id_nb_tx_7day_window": "terminal's payments, 7 days before the label delay",
        "description:terminal_id_risk_7day_window": "terminal's known fraud share, 7 days",
        "description:terminal_id_nb_tx_30day_window": "terminal's payments, 30 days before the label delay",
        "description:terminal_id_risk_30day_window": "terminal's known fraud share, 30 days",
    },
)
def terminal_payment_features(inputs: pd.DataFrame) -> pd.DataFrame:
    from feature_repo.transforms import terminal_request_features

    return pd.DataFrame(terminal_request_features(inputs), index=inputs.index)


# --- Feature services ---------------------------------------------------------------

fraud_detection_v1 = FeatureService(
    name="fraud_detection_v1",
    features=[customer_state, terminal_labels, device_profile, customer_payment_features, terminal_payment_features],
    description="Inputs of the payment fraud model (list-valued state is not a model input).",
    tags={"consumer": "fraud-scorer"},
)

# The card-limit team's view of a customer: its stored payment history, nothing computed at
# request time. A consumer with only feature_store.yaml reads it through Feast alone (an
# on-demand view would need this package installed to run), and passes nothing but the
# customer id and, offline, the time of each row.
customer_risk_profile_v1 = FeatureService(
    name="customer_risk_profile_v1",
    features=[customer_state],
    description="Customer's payments of the last 30 days (times, amounts, devices) as of a time, for card limits.",
    tags={"consumer": "card-limits"},
)
