"""The feature store on real Feast: historical retrieval keeps entity order; the Feast CLI works."""

from __future__ import annotations

import os
import subprocess
import sys

from feature_repo.store import FEATURE_REPO_DIR
from feature_repo.transforms import entity_frame
from training.dataset import build_training_set


def test_historical_features_come_back_in_entity_order(feature_store, transactions, settings) -> None:
    service = feature_store.get_feature_service(settings.feature_service)
    sample = transactions.sample(n=25, random_state=3)
    joined = build_training_set(feature_store, service, sample)
    assert joined["transaction_id"].tolist() == sample["transaction_id"].tolist()
    assert joined["customer_id"].tolist() == sample["customer_id"].tolist()
    assert (joined["amount"].to_numpy() == sample["tx_amount"].to_numpy()).all()


def test_feast_cli_apply_publishes_the_feature_service(feature_store, settings) -> None:
    env = {**os.environ, **settings.feast_variables()}
    feast = os.path.join(os.path.dirname(sys.executable), "feast")
    result = subprocess.run([feast, "apply"], cwd=FEATURE_REPO_DIR, env=env, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-2000:]
    listed = subprocess.run(
        [feast, "feature-services", "list"], cwd=FEATURE_REPO_DIR, env=env, capture_output=True, text=True
    )
    assert listed.returncode == 0, listed.stderr[-2000:]
    assert settings.feature_service in listed.stdout


def test_entity_frame_has_no_label_columns(transactions) -> None:
    # Labels must never reach the feature store as request data.
    assert not {"is_fraud", "fraud_scenario"} & set(entity_frame(transactions.head()).columns)
