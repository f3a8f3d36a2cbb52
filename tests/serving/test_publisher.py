"""The event publisher on real Redis: an error in one batch never stops it, and no drop is silent."""

from __future__ import annotations

import time
from collections.abc import Iterator
from urllib.parse import urlparse

import numpy as np
import pytest
import redis

from contracts.events import latest_events
from contracts.settings import Settings
from serving.publisher import EventPublisher
from serving.schemas import ScoreResponse, Transaction
from tests.support.tcp_proxy import TcpProxy

NAMES = ["amount", "device_age_days"]


def payments(first: int, count: int) -> tuple[list[Transaction], list[ScoreResponse]]:
    transactions = [
        Transaction.model_validate(
            {
                "transaction_id": f"pub-{first + i}",
                "tx_datetime": "2024-03-01T10:00",
                "customer_id": 1,
                "terminal_id": 2,
                "tx_amount": 5.0,
            }
        )
        for i in range(count)
    ]
    responses = [
        ScoreResponse(
            transaction_id=tx.transaction_id,
            risk_score=0.1,
            decision="approve",
            reasons=[],
            model_name="m",
            model_version="1",
            feature_service="s",
            missing_features=[],
        )
        for tx in transactions
    ]
    return transactions, responses


def wait_until(condition, timeout_s: float = 15) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


@pytest.fixture()
def local(settings: Settings, request: pytest.FixtureRequest) -> Iterator[Settings]:
    stream = f"fraud:test-publisher:{request.node.name[-30:]}"
    yield Settings(**{**settings.model_dump(), "scoring_stream": stream})
    client = redis.Redis.from_url(settings.redis_url)
    client.delete(stream)
    client.close()


def test_a_batch_whose_events_cannot_be_built_is_counted_and_the_next_ones_are_published(local: Settings) -> None:
    drops: list[int] = []
    publisher = EventPublisher(local, on_drop=drops.append)
    poisoned, responses = payments(0, 3)
    unreadable = np.array([["not a number", 1.0]] * 3, dtype=object)  # a feature value no event can hold
    publisher.submit(poisoned, NAMES, unreadable, responses, 1.0)
    good, good_responses = payments(10, 4)
    publisher.submit(good, NAMES, np.ones((4, 2)), good_responses, 1.0)
    wait_until(lambda: publisher.sent == 4 and publisher.dropped >= 1)
    client = redis.Redis.from_url(local.redis_url)
    published = [e.transaction["transaction_id"] for e in latest_events(client, local, 100)]
    client.close()
    assert published[-4:] == ["pub-10", "pub-11", "pub-12", "pub-13"]
    assert publisher.dropped == 3 and sum(drops) == 3 and publisher.dropping()


def test_a_redis_outage_shorter_than_the_retries_loses_nothing(local: Settings) -> None:
    url = urlparse(local.redis_url)
    proxy = TcpProxy(url.hostname or "127.0.0.1", url.port or 6379).start()
    through_proxy = Settings(**{**local.model_dump(), "redis_url": f"redis://127.0.0.1:{proxy.port}{url.path}"})
    publisher = EventPublisher(through_proxy, retry_pauses_s=(0.2, 0.5, 1.0, 2.0))
    proxy.cut()
    transactions, responses = payments(100, 5)
    publisher.submit(transactions, NAMES, np.ones((5, 2)), responses, 1.0)
    time.sleep(0.5)  # the first attempts fail
    proxy.start()
    wait_until(lambda: publisher.sent == 5)
    assert publisher.dropped == 0 and not publisher.dropping()
    proxy.cut()


def test_an_outage_longer_than_the_retries_drops_the_batch_and_says_so(local: Settings) -> None:
    url = urlparse(local.redis_url)
    proxy = TcpProxy(url.hostname or "127.0.0.1", url.port or 6379).start()
    through_proxy = Settings(**{**local.model_dump(), "redis_url": f"redis://127.0.0.1:{proxy.port}{url.path}"})
    drops: list[int] = []
    publisher = EventPublisher(through_proxy, on_drop=drops.append, retry_pauses_s=(0.05, 0.05))
    proxy.cut()
    transactions, responses = payments(200, 5)
    publisher.submit(transactions, NAMES, np.ones((5, 2)), responses, 1.0)
    wait_until(lambda: publisher.dropped == 5)
    assert drops == [5] and publisher.dropping() and publisher.sent == 0
