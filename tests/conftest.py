"""Shared fixtures: a real Redis (its own db), a private data dir, real Feast, MLflow and HTTP.

The test session never touches the demo's data: FRAUD_DATA_DIR points at a temporary
folder and REDIS_URL at db 15 (override with FRAUD_TEST_REDIS_URL), flushed before and after.
"""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import httpx
import pandas as pd
import pytest
import redis

TEST_REDIS_URL = os.environ.get("FRAUD_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")
SIM_START = date(2024, 1, 1)


@pytest.fixture(scope="session")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("fraud-data")


@pytest.fixture(scope="session", autouse=True)
def test_environment(data_dir: Path) -> Iterator[None]:
    """Point every component at the test Redis db and data dir; fail loudly if Redis is down."""
    client = redis.Redis.from_url(TEST_REDIS_URL, socket_connect_timeout=2)
    try:
        client.ping()
    except redis.ConnectionError as error:
        pytest.exit(f"no Redis answers at {TEST_REDIS_URL}: start redis-server ({error})", returncode=3)
    saved = {k: os.environ.get(k) for k in ("FRAUD_DATA_DIR", "REDIS_URL", "MLFLOW_TRACKING_URI")}
    os.environ.update({"FRAUD_DATA_DIR": str(data_dir), "REDIS_URL": TEST_REDIS_URL})
    os.environ.pop("MLFLOW_TRACKING_URI", None)
    client.flushdb()
    yield
    client.flushdb()
    client.close()
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


@pytest.fixture(scope="session")
def settings(test_environment: None):
    from data.settings import Settings

    return Settings()


@pytest.fixture(scope="session")
def transactions(settings) -> pd.DataFrame:
    """A small simulated history, ingested through the contract into the test raw store."""
    from data.raw_store import RawStore
    from data.simulate import SimulationConfig, simulate_transactions

    frame = simulate_transactions(SimulationConfig(n_customers=200, n_terminals=400, n_days=45,
                                                   start_date=SIM_START, seed=7))
    store = RawStore(settings)
    store.ingest_frame(frame, source="test-simulation")
    return store.load()


@pytest.fixture(scope="session")
def feature_store(settings, transactions):
    """Offline tables built, definitions applied: a ready Feast store on the test registry."""
    from feature_repo.pipeline import build_offline_tables
    from feature_repo.store import apply_definitions, feature_store as open_store

    build_offline_tables(settings, transactions)
    store = open_store(settings)
    apply_definitions(store)
    return store


@pytest.fixture(scope="session")
def trained_model(settings, feature_store, transactions):
    """A model trained from the store and registered as champion in the test MLflow."""
    from training.train import train_and_register

    return train_and_register(settings, feature_store, transactions)


@pytest.fixture(scope="session")
def online_until(feature_store, transactions) -> pd.Timestamp:
    """Materialise every snapshot up to the last day's: online holds what that day's payments see."""
    from feature_repo.store import materialize

    last_day = transactions["tx_datetime"].max().floor("D")
    materialize(feature_store, (last_day - pd.Timedelta(days=3)).to_pydatetime(), last_day.to_pydatetime())
    return last_day


@pytest.fixture(scope="session")
def scorer_url(settings, trained_model, online_until) -> Iterator[str]:
    """The real scorer app served by uvicorn on a free port (real HTTP), for the session."""
    import uvicorn

    from serving.app import create_app

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(create_app(settings), host="127.0.0.1", port=port,
                                           log_level="warning", access_log=False))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    base_url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the scorer did not start")
        time.sleep(0.05)
    yield base_url
    server.should_exit = True
    thread.join(timeout=10)


@pytest.fixture()
def http(scorer_url: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=scorer_url, timeout=10) as client:
        yield client
