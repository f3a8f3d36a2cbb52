"""The feature store on real Feast and Redis: online values equal offline values; the Feast CLI works."""

from __future__ import annotations

import math
import os
import subprocess
import sys

import pandas as pd

from data.settings import FEATURE_REPO_DIR
from feature_repo.store import service_feature_names
from feature_repo.transforms import entity_frame, entity_row
from training.dataset import build_training_set


def test_online_features_equal_offline_features_for_the_same_transactions(
        feature_store, transactions, online_until, settings) -> None:
    service = feature_store.get_feature_service(settings.feature_service)
    names = service_feature_names(feature_store, service)
    sample = transactions[transactions["tx_datetime"] >= online_until].sample(n=40, random_state=1)
    offline = build_training_set(feature_store, service, sample).set_index("transaction_id")
    rows = [entity_row(t.customer_id, t.terminal_id, t.device_id, t.tx_datetime, t.tx_amount)
            for t in sample.itertuples()]
    online = pd.DataFrame(feature_store.get_online_features(features=service, entity_rows=rows).to_dict())
    online.index = sample["transaction_id"].to_numpy()
    compared = 0
    for tx_id in sample["transaction_id"]:
        for name in names:
            off, on = offline.at[tx_id, name], online.at[tx_id, name]
            if off is None or (isinstance(off, float) and math.isnan(off)):
                assert on is None or math.isnan(on), f"{name} of {tx_id}: offline missing, online {on}"
            else:
                assert math.isclose(float(on), float(off), rel_tol=0, abs_tol=1e-6), f"{name} of {tx_id}"
                compared += 1
    assert compared > 30 * len(names)  # most values present: the comparison is not vacuous


def test_historical_features_come_back_in_entity_order(feature_store, transactions, settings) -> None:
    service = feature_store.get_feature_service(settings.feature_service)
    sample = transactions.sample(n=25, random_state=3)
    joined = build_training_set(feature_store, service, sample)
    assert joined["transaction_id"].tolist() == sample["transaction_id"].tolist()
    assert joined["customer_id"].tolist() == sample["customer_id"].tolist()
    assert (joined["amount"].to_numpy() == sample["tx_amount"].to_numpy()).all()


def test_feast_cli_apply_publishes_the_feature_service(feature_store, settings) -> None:
    env = {**os.environ, **settings.export_feast_env()}
    feast = os.path.join(os.path.dirname(sys.executable), "feast")
    result = subprocess.run([feast, "apply"], cwd=FEATURE_REPO_DIR, env=env, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-2000:]
    listed = subprocess.run([feast, "feature-services", "list"], cwd=FEATURE_REPO_DIR, env=env,
                            capture_output=True, text=True)
    assert listed.returncode == 0, listed.stderr[-2000:]
    assert settings.feature_service in listed.stdout


def test_entity_frame_has_no_label_columns(transactions) -> None:
    # Labels must never reach the feature store as request data.
    assert not {"is_fraud", "fraud_scenario"} & set(entity_frame(transactions.head()).columns)
