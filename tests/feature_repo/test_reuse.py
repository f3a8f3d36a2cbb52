"""Another team reuses the published features with nothing but feature_store.yaml."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest
from feast import FeatureStore

from feature_repo.store import FEATURE_REPO_DIR
from feature_repo.transforms import entity_frame

PROFILE = "customer_risk_profile_v1"


@pytest.fixture(scope="module")
def consumer_store(tmp_path_factory: pytest.TempPathFactory, feature_store, settings) -> Iterator[FeatureStore]:
    """A repo folder holding only the YAML, read with the environment `fraud env` prints, as the
    other team would: every definition comes from the registry."""
    folder = Path(tmp_path_factory.mktemp("card-limit-team"))
    shutil.copy(FEATURE_REPO_DIR / "feature_store.yaml", folder)
    assert [p.name for p in folder.iterdir()] == ["feature_store.yaml"]
    with pytest.MonkeyPatch.context() as environment:
        for name, value in settings.feast_variables().items():
            environment.setenv(name, value)
        yield FeatureStore(repo_path=str(folder))


def profile_rows(transactions: pd.DataFrame) -> pd.DataFrame:
    return entity_frame(transactions)[
        ["customer_id", "event_timestamp", "tx_amount", "tx_epoch_seconds", "device_hash", "transaction_id"]
    ]


def test_consumer_fetches_the_profile_service_offline_by_name(
    consumer_store, feature_store, transactions, settings
) -> None:
    sample = transactions.sample(n=30, random_state=11)
    service = consumer_store.get_feature_service(PROFILE)
    theirs = consumer_store.get_historical_features(entity_df=profile_rows(sample), features=service).to_df()
    ours = feature_store.get_historical_features(
        entity_df=entity_frame(sample), features=feature_store.get_feature_service(settings.feature_service)
    ).to_df()
    columns = [f.name for p in service.feature_view_projections for f in p.features]
    assert "customer_id_avg_amount_30day_window" in columns and not any(c.startswith("terminal") for c in columns)
    theirs, ours = theirs.set_index("transaction_id").sort_index(), ours.set_index("transaction_id").sort_index()
    pd.testing.assert_frame_equal(theirs[columns], ours[columns], check_dtype=False)


def test_consumer_fetches_the_profile_service_online_by_name(consumer_store, transactions, online_until) -> None:
    customer = int(transactions.loc[transactions["tx_datetime"] < online_until, "customer_id"].iloc[-1])
    now = int(online_until.timestamp())
    online = consumer_store.get_online_features(
        features=consumer_store.get_feature_service(PROFILE),
        entity_rows=[{"customer_id": customer, "tx_amount": 0.0, "tx_epoch_seconds": now, "device_hash": 0}],
    ).to_dict()
    assert online["customer_id_nb_tx_30day_window"][0] >= 2  # the request plus at least one stored payment
    assert online["seconds_since_previous_tx"][0] > 0
