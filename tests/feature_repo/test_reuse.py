"""Another team reuses the published features with nothing but feature_store.yaml, and without
this platform's package: a process that cannot import it reads `customer_risk_profile_v1`."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from feature_repo.store import FEATURE_REPO_DIR
from feature_repo.transforms import entity_frame

PROFILE = "customer_risk_profile_v1"
OUR_PACKAGES = ("contracts", "data", "feature_repo", "training", "serving", "monitoring", "fraud")

# The consumer's program: Feast and pandas only; importing any package of ours fails.
CONSUMER = textwrap.dedent(
    f"""
    import importlib.abc, json, sys

    class NotInstalled(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in {OUR_PACKAGES!r}:
                raise ModuleNotFoundError(f"No module named {{name!r}} (the platform is not installed here)")

    sys.meta_path.insert(0, NotInstalled())
    import pandas as pd
    from feast import FeatureStore

    store = FeatureStore(repo_path=".")
    service = store.get_feature_service("{PROFILE}")
    entities = pd.read_parquet(sys.argv[1])
    store.get_historical_features(entity_df=entities, features=service).to_df().to_parquet(sys.argv[2])
    rows = [{{"customer_id": int(c)}} for c in json.loads(sys.argv[3])]
    print(json.dumps(store.get_online_features(features=service, entity_rows=rows).to_dict()))
    """
)


@pytest.fixture(scope="module")
def consumer_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A repo folder holding only the YAML, as the other team's would."""
    folder = Path(tmp_path_factory.mktemp("card-limit-team"))
    shutil.copy(FEATURE_REPO_DIR / "feature_store.yaml", folder)
    assert [p.name for p in folder.iterdir()] == ["feature_store.yaml"]
    return folder


def run_consumer(folder: Path, settings, entities: pd.DataFrame, customers: list[int]) -> tuple[pd.DataFrame, dict]:
    entities.to_parquet(folder / "entities.parquet")
    env = {**os.environ, **settings.feast_variables(), "PYTHONPATH": ""}
    done = subprocess.run(
        [sys.executable, "-c", CONSUMER, "entities.parquet", "offline.parquet", json.dumps(customers)],
        cwd=folder,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return pd.read_parquet(folder / "offline.parquet"), json.loads(done.stdout.strip().splitlines()[-1])


def test_consumer_without_the_platform_reads_the_profile_offline_and_online(
    consumer_folder, feature_store, transactions, settings, online_until
) -> None:
    sample = transactions[transactions["tx_datetime"] < online_until].sample(n=40, random_state=11)
    entities = entity_frame(sample)[["customer_id", "event_timestamp", "transaction_id"]]
    customers = sorted({int(c) for c in sample["customer_id"]})[:5]
    offline, online = run_consumer(consumer_folder, settings, entities, customers)

    # Offline: the customer's stored payments before each time, the same state the model's
    # 30-day window counts (its count includes the payment itself, the profile does not).
    ours = feature_store.get_historical_features(
        entity_df=entity_frame(sample), features=feature_store.get_feature_service(settings.feature_service)
    ).to_df()
    merged = offline.merge(ours[["transaction_id", "customer_id_nb_tx_30day_window"]], on="transaction_id")
    assert len(merged) == len(sample)
    for row in merged.itertuples():
        times = np.asarray(row.recent_tx_epoch_seconds if row.recent_tx_epoch_seconds is not None else [])
        now = row.event_timestamp.timestamp()
        in_window = int(((times > now - 30 * 86_400) & (times <= now)).sum())
        assert in_window == row.customer_id_nb_tx_30day_window - 1, row

    # Online: what the scorer's store serves for the same customers.
    served = feature_store.get_online_features(
        features=feature_store.get_feature_service(PROFILE), entity_rows=[{"customer_id": c} for c in customers]
    ).to_dict()
    assert online["recent_tx_amounts"] == served["recent_tx_amounts"]
    assert any(amounts for amounts in online["recent_tx_amounts"])


def test_profile_asks_nothing_of_a_payment(feature_store) -> None:
    service = feature_store.get_feature_service(PROFILE)
    on_demand = {view.name for view in feature_store.list_on_demand_feature_views()}
    assert {p.name for p in service.feature_view_projections} == {"customer_state"}
    assert "customer_state" not in on_demand  # stored: nothing runs at request time
