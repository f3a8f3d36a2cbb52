"""The online reader on real Redis: a batch, decoded in bulk, reads what payments read one by one do."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import numpy as np
import pandas as pd

from feature_repo.transforms import Ragged, entity_row, event_micros
from serving.online import OnlineFeatureReader, StoredFeatures

DAY_US = 86_400 * 1_000_000


def live_entities(transactions: pd.DataFrame, since: pd.Timestamp, count: int) -> tuple[list[dict], list[int]]:
    live = transactions[transactions["tx_datetime"] >= since].head(count)
    rows = [
        entity_row(
            tx.customer_id,
            tx.terminal_id,
            tx.device_id if isinstance(tx.device_id, str) else None,
            tx.tx_datetime,
            tx.tx_amount,
        )
        for tx in live.itertuples()
    ]
    return rows, [event_micros(tx.tx_datetime) for tx in live.itertuples()]


def test_batch_read_equals_reads_one_by_one(settings, feature_store, transactions, online_until) -> None:
    entities, times = live_entities(transactions, online_until, 40)
    now = datetime.now(UTC)
    entities.append(entity_row(10**9, 10**9, "never-seen", now, 1.0))  # nothing stored
    times.append(event_micros(now))
    service = feature_store.get_feature_service(settings.feature_service)
    reader = OnlineFeatureReader(settings, feature_store, service)

    async def read() -> tuple[StoredFeatures, list[StoredFeatures]]:
        try:
            return await reader.read(entities, times), [
                await reader.read([entity], [at]) for entity, at in zip(entities, times)
            ]
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


def test_rows_older_than_their_view_ttl_read_as_absent(settings, feature_store, transactions, online_until) -> None:
    """Feast's offline join drops a row once its stamp + the view's TTL is before the payment:
    the device profile (2 days) a little later, the customer state (30 days) much later."""
    entities, times = live_entities(transactions, online_until, 40)
    reader = OnlineFeatureReader(settings, feature_store, feature_store.get_feature_service(settings.feature_service))
    names = reader.feature_names
    device = [names.index(n) for n in ("device_nb_customers", "device_age_days")]
    customer = [names.index(n) for n in ("recent_tx_epoch_seconds", "recent_tx_amounts")]

    async def read_at(shift_days: float) -> StoredFeatures:
        return await reader.read(entities, [t + int(shift_days * DAY_US) for t in times])

    async def read_all() -> list[StoredFeatures]:
        try:
            return [await read_at(days) for days in (0, 3, 31)]
        finally:
            await reader.redis.aclose()

    now, three_days, a_month = asyncio.run(read_all())
    with_device = ~now.missing[:, device[0]]
    assert with_device.any() and not now.missing[:, customer].any()
    assert three_days.missing[with_device][:, device].all()  # the latest snapshot is over 2 days old
    assert not three_days.missing[:, customer].any()
    assert a_month.missing[:, customer].all()  # every state older than 30 days
