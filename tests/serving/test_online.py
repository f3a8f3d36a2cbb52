"""The online reader on real Redis: a batch, decoded in bulk, reads what payments read one by one do."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import numpy as np

from feature_repo.transforms import Ragged, entity_row
from serving.online import OnlineFeatureReader, StoredFeatures


def test_batch_read_equals_reads_one_by_one(settings, feature_store, transactions, online_until) -> None:
    live = transactions[transactions["tx_datetime"] >= online_until].head(40)
    entities = [
        entity_row(
            tx.customer_id,
            tx.terminal_id,
            tx.device_id if isinstance(tx.device_id, str) else None,
            tx.tx_datetime,
            tx.tx_amount,
        )
        for tx in live.itertuples()
    ]
    entities.append(entity_row(10**9, 10**9, "never-seen", datetime.now(UTC), 1.0))  # nothing stored
    service = feature_store.get_feature_service(settings.feature_service)
    reader = OnlineFeatureReader(settings, feature_store, service)

    async def read() -> tuple[StoredFeatures, list[StoredFeatures]]:
        try:
            return await reader.read(entities), [await reader.read([entity]) for entity in entities]
        finally:
            await reader.redis.aclose()

    batch, singles = asyncio.run(read())
    assert isinstance(batch.columns["recent_tx_epoch_seconds"], Ragged)  # the bulk path
    np.testing.assert_array_equal(batch.missing, np.vstack([single.missing for single in singles]))
    assert batch.missing[-1].all() and not batch.missing[:-1].all(axis=1).any()
    for name in reader.feature_names:
        column = batch.columns[name]
        if isinstance(column, Ragged):
            rows = [row.tolist() for row in np.split(column.values, np.cumsum(column.lengths)[:-1])]
            assert rows == [single.columns[name][0] or [] for single in singles], name
        else:
            assert column == [single.columns[name][0] for single in singles], name
