"""The scoring-event worker on real Redis and Feast: customer states, the prediction log,
acknowledgement, and every event counted once across crashes (simulated and SIGKILL)."""

from __future__ import annotations

import math
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from urllib.parse import urlparse

import pandas as pd
import pytest
import redis

from contracts.events import ScoringEvent, publish_event
from contracts.files import TEMP_PREFIX
from contracts.prediction_log import log_dir
from contracts.settings import Settings
from feature_repo.store import feature_store as open_feature_store
from feature_repo.transforms import CUSTOMER_STATE_COLUMNS, device_hash, next_customer_state
from monitoring.prediction_log import read_prediction_log
from serving.worker import Worker, WorkerConfig
from tests.support.tcp_proxy import TcpProxy

FRAUD = str(Path(sys.executable).parent / "fraud")
WORKER_CUSTOMERS = slice(8, 14)  # the parity replay uses the first 8 live customers, probes the last 3
FEATURES = ("amount", "customer_id_nb_tx_1day_window", "device_age_days")
SYNTHETIC_START = pd.Timestamp("2024-03-01T00:00:00Z")


# --- Helpers --------------------------------------------------------------------------------


def local_settings(settings: Settings, data_dir: Path, stream: str) -> Settings:
    """The session's settings with a private stream and log folder (the Feast store is shared)."""
    return Settings(**{**settings.model_dump(), "data_dir": data_dir, "scoring_stream": stream})


def scoring_event(transaction: dict, n: int) -> ScoringEvent:
    """An event as the scorer publishes it, with recognisable values derived from `n`."""
    return ScoringEvent(
        transaction=transaction,
        features={
            "amount": float(transaction["tx_amount"]),
            "customer_id_nb_tx_1day_window": float(n % 5 + 1),
            "device_age_days": None if n % 3 == 0 else float(n % 40),
        },
        risk_score=round((n % 97) / 97, 6),
        decision=("approve", "review", "block")[n % 3],
        model_version=str(1 + n % 2),
        latency_ms=round(1.5 + n % 11, 3),
        scored_at=(pd.Timestamp(transaction["tx_datetime"]) + pd.Timedelta(milliseconds=5)).isoformat(),
    )


def live_events(transactions: pd.DataFrame, since: pd.Timestamp, customers: list[int]) -> list[ScoringEvent]:
    """Events of the real live-day payments of `customers`, in time order."""
    live = transactions[(transactions["tx_datetime"] >= since) & transactions["customer_id"].isin(customers)]
    events = []
    for n, tx in enumerate(live.sort_values("tx_datetime").itertuples()):
        events.append(
            scoring_event(
                {
                    "transaction_id": tx.transaction_id
                    if isinstance(tx.transaction_id, str)
                    else int(tx.transaction_id),
                    "tx_datetime": tx.tx_datetime.isoformat(),
                    "customer_id": int(tx.customer_id),
                    "terminal_id": int(tx.terminal_id),
                    "tx_amount": float(tx.tx_amount),
                    "device_id": tx.device_id if isinstance(tx.device_id, str) else None,
                },
                n,
            )
        )
    return events


def synthetic_events(n: int, first_customer: int, customers: int, prefix: str) -> list[ScoringEvent]:
    """`n` payments a minute apart (spanning dates) of customers no other test knows."""
    return [
        scoring_event(
            {
                "transaction_id": f"{prefix}-{i}",
                "tx_datetime": (SYNTHETIC_START + pd.Timedelta(minutes=i)).isoformat(),
                "customer_id": first_customer + i % customers,
                "terminal_id": i % 50,
                "tx_amount": round(5 + (i * 7.31) % 200, 2),
                "device_id": None if i % 4 == 0 else f"dev-{i % 9}",
            },
            i,
        )
        for i in range(n)
    ]


def online_states(store, customers: list[int]) -> dict[int, dict[str, list]]:
    values = store.get_online_features(
        features=[f"customer_state:{c}" for c in CUSTOMER_STATE_COLUMNS],
        entity_rows=[{"customer_id": c} for c in customers],
    ).to_dict()
    return {c: {column: values[column][row] for column in CUSTOMER_STATE_COLUMNS} for row, c in enumerate(customers)}


def folded_states(before: dict[int, dict[str, list]], events: list[ScoringEvent]) -> dict[int, dict[str, list]]:
    """`next_customer_state` applied, payment by payment, to the states before the worker ran."""
    states = dict(before)
    for event in events:
        tx = event.transaction
        states[tx["customer_id"]] = next_customer_state(
            states[tx["customer_id"]],
            int(pd.Timestamp(tx["tx_datetime"]).timestamp()),
            tx["tx_amount"],
            device_hash(tx["device_id"]),
        )
    return states


def assert_logged_exactly_once(log: pd.DataFrame, events: list[ScoringEvent]) -> None:
    counts = log["transaction_id"].value_counts()
    expected = {str(e.transaction["transaction_id"]) for e in events}
    assert not (counts > 1).any(), f"logged twice: {counts[counts > 1].index.tolist()[:10]}"
    missing = expected - set(counts.index)
    assert not missing, f"{len(missing)} events never logged, e.g. {sorted(missing)[:5]}"
    assert set(counts.index) == expected


def pending(client: redis.Redis, stream: str, group: str = "fraud-workers") -> int:
    return client.xpending(stream, group)["pending"]


@pytest.fixture()
def client(settings) -> Iterator[redis.Redis]:
    connection = redis.Redis.from_url(settings.redis_url)
    yield connection
    connection.close()


# --- Consuming real live-day events -------------------------------------------------------


@pytest.fixture(scope="module")
def consumed(settings, feature_store, transactions, online_until, live_customers, tmp_path_factory):
    """Real live-day payments of six customers published, then consumed by one worker in small batches."""
    customers = live_customers[WORKER_CUSTOMERS]
    local = local_settings(settings, tmp_path_factory.mktemp("worker-live"), "fraud:test-worker:live")
    events = live_events(transactions, online_until, customers)
    before = online_states(feature_store, customers)
    client = redis.Redis.from_url(settings.redis_url)
    stream_ids = [publish_event(client, local, event) for event in events]
    # Batches of 4 split some customers' payments over several batches.
    processed = Worker(local, feature_store, client, WorkerConfig(consumer="live", batch=4)).run(once=True)
    yield {
        "settings": local,
        "events": events,
        "stream_ids": stream_ids,
        "before": before,
        "customers": customers,
        "processed": processed,
        "client": client,
    }
    client.close()


def test_consumed_events_are_logged_once_each_with_their_values(consumed) -> None:
    events, stream_ids = consumed["events"], consumed["stream_ids"]
    assert consumed["processed"] == len(events) > len(consumed["customers"])  # some pay twice or more
    log = read_prediction_log(consumed["settings"]).set_index("transaction_id")
    assert_logged_exactly_once(log.reset_index(), events)
    for event, stream_id in zip(events, stream_ids):
        row, tx = log.loc[str(event.transaction["transaction_id"])], event.transaction
        assert row["stream_id"] == stream_id
        assert row["tx_datetime"] == pd.Timestamp(tx["tx_datetime"])
        assert (row["customer_id"], row["terminal_id"]) == (tx["customer_id"], tx["terminal_id"])
        assert row["tx_amount"] == tx["tx_amount"]
        assert (row["device_id"] if isinstance(row["device_id"], str) else None) == tx["device_id"]
        assert (row["risk_score"], row["decision"], row["model_version"], row["latency_ms"]) == (
            event.risk_score,
            event.decision,
            event.model_version,
            event.latency_ms,
        )
        assert row["scored_at"] == pd.Timestamp(event.scored_at)
        for name in FEATURES:
            value = event.features[name]
            assert math.isnan(row[name]) if value is None else row[name] == value, name


def test_the_log_is_partitioned_by_payment_date(consumed) -> None:
    days = {pd.Timestamp(e.transaction["tx_datetime"]).date() for e in consumed["events"]}
    root = log_dir(consumed["settings"])
    assert {p.name for p in root.iterdir()} == {f"date={d.isoformat()}" for d in days}
    assert not list(root.rglob(f"{TEMP_PREFIX}*"))


def test_consumed_events_are_acknowledged(consumed) -> None:
    assert pending(consumed["client"], consumed["settings"].scoring_stream) == 0


def test_customer_states_after_the_worker_fold_every_payment_into_the_previous_state(consumed, feature_store) -> None:
    expected = folded_states(consumed["before"], consumed["events"])
    actual = online_states(feature_store, consumed["customers"])
    for customer in consumed["customers"]:
        assert actual[customer] == expected[customer], f"customer {customer}"
        assert actual[customer] != consumed["before"][customer]  # every one of them paid on the live day


def test_replaying_the_whole_stream_changes_neither_the_log_nor_the_states(consumed, feature_store) -> None:
    local, client = consumed["settings"], consumed["client"]
    states = online_states(feature_store, consumed["customers"])
    log = read_prediction_log(local)
    client.xgroup_setid(local.scoring_stream, "fraud-workers", id="0")  # redeliver everything
    replayed = Worker(local, feature_store, client, WorkerConfig(consumer="replay", batch=5)).run(once=True)
    assert replayed == len(consumed["events"])
    pd.testing.assert_frame_equal(read_prediction_log(local), log)
    assert online_states(feature_store, consumed["customers"]) == states
    assert pending(client, local.scoring_stream) == 0


# --- Crash points, one at a time ---------------------------------------------------------


class Killed(Exception):
    """Stands for the process dying at this point."""


def _die(*_: object, **__: object) -> None:
    raise Killed


def _after(method: Callable[..., object]) -> Callable[..., None]:
    def run_then_die(*args: object, **kwargs: object) -> None:
        method(*args, **kwargs)
        raise Killed

    return run_then_die


CRASH_POINTS: dict[str, Callable[[Worker], None]] = {
    "after the state push, before the log": lambda w: setattr(w, "log", _die),
    "after recording the intent, before the file": lambda w: setattr(w, "_record_intent", _after(w._record_intent)),
    "after the file, before the ack": lambda w: setattr(w.client, "xack", _die),
}


@pytest.mark.parametrize("crash_point", list(CRASH_POINTS))
def test_a_worker_dying_mid_batch_loses_nothing_and_logs_nothing_twice_once_another_takes_over(
    crash_point, settings, feature_store, tmp_path
) -> None:
    k = list(CRASH_POINTS).index(crash_point)
    local = local_settings(settings, tmp_path, f"fraud:test-worker:crash-{k}")
    events = synthetic_events(60, first_customer=9_100_000 + 1000 * k, customers=7, prefix=f"crash{k}")
    customers = sorted({e.transaction["customer_id"] for e in events})
    with redis.Redis.from_url(settings.redis_url) as publisher:
        for event in events:
            publish_event(publisher, local, event)
    dying = Worker(
        local, feature_store, redis.Redis.from_url(settings.redis_url), WorkerConfig(consumer="dying", batch=25)
    )
    dying.ensure_group()
    CRASH_POINTS[crash_point](dying)
    with pytest.raises(Killed):
        dying.process(dying.next_batch(block=False)[1])
    # Another consumer, batches grouped differently, takes over the dead one's pending events.
    survivor = Worker(
        local,
        feature_store,
        redis.Redis.from_url(settings.redis_url),
        WorkerConfig(consumer="survivor", batch=10, claim_idle_s=0),
    )
    assert survivor.run(once=True) == len(events)
    assert_logged_exactly_once(read_prediction_log(local), events)
    assert pending(survivor.client, local.scoring_stream) == 0
    empty = {c: {column: None for column in CUSTOMER_STATE_COLUMNS} for c in customers}
    assert online_states(feature_store, customers) == folded_states(empty, events)


def test_a_batch_mixing_payments_already_in_the_state_with_new_ones_adds_only_the_new_ones(
    settings, feature_store, tmp_path
) -> None:
    local = local_settings(settings, tmp_path, "fraud:test-worker:mixed")
    events = synthetic_events(6, first_customer=9_200_000, customers=1, prefix="mixed")  # one customer
    with redis.Redis.from_url(settings.redis_url) as publisher:
        for event in events:
            publish_event(publisher, local, event)

    def worker(name: str, batch: int, **config: float) -> Worker:
        return Worker(
            local,
            feature_store,
            redis.Redis.from_url(settings.redis_url),
            WorkerConfig(consumer=name, batch=batch, **config),
        )

    first, second = worker("first", 3), worker("second", 3)
    first.ensure_group()
    first.log = _die  # dies with payments 0-2 in the online state
    with pytest.raises(Killed):
        first.process(first.next_batch(block=False)[1])
    second.update_states = _die  # dies before folding payments 3-5
    with pytest.raises(Killed):
        second.process(second.next_batch(block=False)[1])
    survivor = worker("survivor", 10, claim_idle_s=0)
    source, raw = survivor.next_batch(block=False)
    assert (source, len(raw)) == ("claimed", 6)  # both dead consumers' payments in one batch
    assert survivor.process(raw, source).customers_updated == 1
    assert survivor.run(once=True) == 0
    assert pending(survivor.client, local.scoring_stream) == 0
    assert_logged_exactly_once(read_prediction_log(local), events)
    assert online_states(feature_store, [9_200_000]) == folded_states({9_200_000: {}}, events)


# --- A real process killed with SIGKILL ---------------------------------------------------------


def _entries_read(client: redis.Redis, stream: str) -> int:
    """How many entries the group has been handed so far (re-deliveries not counted)."""
    groups = client.xinfo_groups(stream) if client.exists(stream) else []
    return int(groups[0]["entries-read"] or 0) if groups else 0


def _kill_when_writing(
    process: subprocess.Popen,
    client: redis.Redis,
    stream: str,
    read_before: int,
    partition: Path,
    timeout_s: float = 60,
) -> None:
    """SIGKILL the worker the moment it starts writing its first file of `partition`.

    Payments are dated in order, so the first batch to reach a new date also holds the end
    of the previous one: while its temp file for the new date is being written, its file
    for the previous date is already in place and the batch is not acknowledged. A replay
    must then skip the rows in place and write the others: both halves of the de-duplication.
    The window lasts a fraction of a millisecond, hence a busy wait, started once the group
    has read `read_before` entries (polling gently until then leaves the CPU to the worker).
    """
    deadline = time.monotonic() + timeout_s
    while _entries_read(client, stream) < read_before:
        assert process.poll() is None, "the worker stopped before it was killed"
        assert time.monotonic() < deadline, "the worker is too slow"
        time.sleep(0.005)
    while True:
        try:
            names = os.listdir(partition)
        except FileNotFoundError:
            names = []
        if names or process.poll() is not None or time.monotonic() > deadline:
            break
    assert process.poll() is None, "the worker stopped before it was killed"
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=10)
    assert names, f"the worker never wrote to {partition.name}"


def test_a_worker_killed_with_sigkill_mid_batch_and_restarted_logs_every_event_exactly_once(
    settings, feature_store, tmp_path, client
) -> None:
    data_dir, stream, total = tmp_path / "data", "fraud:test-worker:sigkill", 3000
    # A private data dir for the log; the Feast registry is copied so the process finds its views.
    shutil.copytree(settings.feast_dir, data_dir / "feast")
    local = local_settings(settings, data_dir, stream)
    events = synthetic_events(total, first_customer=9_000_000, customers=250, prefix="kill")
    for event in events:
        publish_event(client, local, event)
    env = {**os.environ, "FRAUD_DATA_DIR": str(data_dir), "FRAUD_SCORING_STREAM": stream}
    root = log_dir(local)

    def worker(*args: str) -> subprocess.Popen:
        # Output to a file: a pipe nobody reads would fill up and stall the worker.
        with open(tmp_path / "worker.log", "a") as output:
            return subprocess.Popen(
                [FRAUD, "worker", "--name", "sigkill", *args], env=env, stdout=output, stderr=subprocess.STDOUT
            )

    # Payment i is at minute i from 2024-03-01 00:00: dates change at payments 1440 and 2880.
    # Batch sizes that do not divide 1440 make a batch straddle midnight; each restart
    # re-reads the pending events in batches of another size.
    _kill_when_writing(worker("--batch", "23"), client, stream, 1440 - 3 * 23, root / "date=2024-03-02")
    assert 0 < len(read_prediction_log(local)) < total
    _kill_when_writing(worker("--batch", "7", "--once"), client, stream, 2880 - 3 * 7, root / "date=2024-03-03")
    assert len(read_prediction_log(local)) < total
    final = worker("--batch", "50", "--once")
    assert final.wait(timeout=120) == 0, (tmp_path / "worker.log").read_text()[-3000:]

    assert_logged_exactly_once(read_prediction_log(local), events)
    assert pending(client, stream) == 0
    customers = sorted({e.transaction["customer_id"] for e in events})
    empty = {c: {column: None for column in CUSTOMER_STATE_COLUMNS} for c in customers}
    assert online_states(feature_store, customers) == folded_states(empty, events)


def test_the_worker_command_finishes_its_batch_and_exits_cleanly_on_sigterm(settings, feature_store, tmp_path) -> None:
    data_dir, stream = tmp_path / "data", "fraud:test-worker:sigterm"
    shutil.copytree(settings.feast_dir, data_dir / "feast")
    local = local_settings(settings, data_dir, stream)
    events = synthetic_events(30, first_customer=9_300_000, customers=5, prefix="term")
    with redis.Redis.from_url(settings.redis_url) as client:
        for event in events:
            publish_event(client, local, event)
    process = subprocess.Popen(
        [FRAUD, "worker", "--batch", "10"],
        text=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={**os.environ, "FRAUD_DATA_DIR": str(data_dir), "FRAUD_SCORING_STREAM": stream},
    )
    deadline = time.monotonic() + 60
    while len(read_prediction_log(local)) < len(events) and time.monotonic() < deadline:
        time.sleep(0.05)
    process.send_signal(signal.SIGTERM)
    out, err = process.communicate(timeout=15)
    assert process.returncode == 0, err[-3000:]
    assert "30 events processed" in out
    assert err.count("new batch: 10 events") == 3  # one line per batch
    assert_logged_exactly_once(read_prediction_log(local), events)


def test_the_worker_command_fails_clearly_when_redis_is_unreachable(tmp_path) -> None:
    with socket.socket() as sock:  # a port nothing listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    result = subprocess.run(
        [FRAUD, "worker", "--once"],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "REDIS_URL": f"redis://127.0.0.1:{port}/0", "FRAUD_DATA_DIR": str(tmp_path)},
    )
    assert result.returncode != 0
    assert f"cannot reach Redis at 127.0.0.1:{port}/0" in result.stderr
    assert "Traceback" not in result.stderr


def test_a_running_worker_waits_out_a_redis_outage_and_loses_nothing(settings, tmp_path) -> None:
    """Redis gone for a few seconds under a running worker (its client and its feature store both
    reach Redis through a relay the test cuts): every event is logged once and folded once."""
    url = urlparse(settings.redis_url)
    proxy = TcpProxy(url.hostname or "127.0.0.1", url.port or 6379).start()
    proxied = f"redis://127.0.0.1:{proxy.port}{url.path}"
    local = Settings(
        **{**local_settings(settings, tmp_path, "fraud:test-worker:outage").model_dump(), "redis_url": proxied}
    )
    store = open_feature_store(Settings(**{**settings.model_dump(), "redis_url": proxied}))
    events = synthetic_events(120, first_customer=9_300_000, customers=5, prefix="outage")
    direct = redis.Redis.from_url(settings.redis_url)
    for event in events[:60]:
        publish_event(direct, local, event)
    worker = Worker(local, store, redis.Redis.from_url(proxied), WorkerConfig(consumer="outage", batch=20))
    stop = threading.Event()
    running = threading.Thread(target=worker.run, kwargs={"stop": stop})
    running.start()
    try:
        wait_for_rows(local, 60)
        proxy.cut()
        for event in events[60:]:  # the scorer goes on publishing; the worker cannot read them
            publish_event(direct, local, event)
        time.sleep(3)
        assert len(read_prediction_log(local)) == 60
        proxy.start()
        wait_for_rows(local, 120, timeout_s=90)
    finally:
        stop.set()
        running.join(timeout=30)
        proxy.cut()
    assert not running.is_alive()
    assert_logged_exactly_once(read_prediction_log(local), events)
    assert pending(direct, local.scoring_stream) == 0
    customers = sorted({e.transaction["customer_id"] for e in events})
    assert online_states(open_feature_store(settings), customers) == folded_states({c: {} for c in customers}, events)
    direct.close()


def wait_for_rows(local: Settings, rows: int, timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while len(read_prediction_log(local)) < rows:
        assert time.monotonic() < deadline, f"the worker logged {len(read_prediction_log(local))} of {rows}"
        time.sleep(0.1)
