"""Shared fixtures: a real Redis (its own db), a private data dir, real Feast, MLflow and HTTP.

The test session never touches the demo's data nor another test run's: FRAUD_DATA_DIR
points at a temporary folder, and REDIS_URL at a db number the session claims with a lock
key (from db 15 down to db 8), flushed before and after. FRAUD_TEST_REDIS_URL names the
server (default redis://127.0.0.1:6379), FRAUD_TEST_POSTGRES_URL the registry's PostgreSQL
(default postgresql://postgres@127.0.0.1:5432). Where nothing answers at one of them, the run
starts an embedded server of its own (tests/support/services.py) and says so in its summary.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import ExitStack
from datetime import date
from pathlib import Path
from urllib.parse import urlparse

import httpx
import pandas as pd
import pytest
import redis

from tests.support.services import Service, ServiceError, postgres_service, redis_service

TEST_REDIS_SERVER = os.environ.get("FRAUD_TEST_REDIS_URL", "redis://127.0.0.1:6379").rstrip("/")
# The test registry runs on PostgreSQL, as production does; one database per test run.
TEST_POSTGRES = os.environ.get("FRAUD_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432").rstrip("/")
TEST_DBS = range(15, 7, -1)
LOCK_KEY = "fraud:test-run-lock"
SIM_START = date(2024, 1, 1)
SERVICE_NOTICES = pytest.StashKey[list[str]]()


@pytest.fixture(scope="session")
def test_services(
    tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest
) -> Iterator[dict[str, Service]]:
    """The Redis and PostgreSQL servers of the run: those at the test URLs, or embedded ones if
    nothing answers there (stopped at the end). A server that answers wrongly stops the run."""
    with ExitStack() as running:
        try:
            redis_server = running.enter_context(redis_service(TEST_REDIS_SERVER, tmp_path_factory.mktemp("valkey")))
            postgres_server = running.enter_context(postgres_service(TEST_POSTGRES))
        except ServiceError as error:
            pytest.exit(str(error), returncode=3)
        request.config.stash[SERVICE_NOTICES] = [redis_server.notice, postgres_server.notice]
        yield {"redis": redis_server, "postgres": postgres_server}


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter, config: pytest.Config) -> None:
    """Say which servers the run used, so an embedded one (no Redis or PostgreSQL found) is seen."""
    notices = config.stash.get(SERVICE_NOTICES, [])
    if notices:
        terminalreporter.write_sep("-", "test services")
        for notice in notices:
            terminalreporter.write_line(notice)


@pytest.fixture(scope="session")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("fraud-data")


@pytest.fixture(scope="session", autouse=True)
def test_environment(data_dir: Path, test_services: dict[str, Service]) -> Iterator[None]:
    """Point every component at a claimed Redis db, a fresh PostgreSQL registry and the data dir.

    Subprocesses (scorer, worker, `fraud`) inherit os.environ, so they use the same servers.
    """
    redis_server, postgres_server = test_services["redis"].url, test_services["postgres"].url
    client, url = _claim_redis_db(redis_server)
    database = f"fraud_test_{url.rsplit('/', 1)[1]}"
    _recreate_database(postgres_server, database)
    saved = {
        k: os.environ.get(k) for k in ("FRAUD_DATA_DIR", "REDIS_URL", "MLFLOW_TRACKING_URI", "FRAUD_MODEL_POLL_SECONDS")
    }
    os.environ.update(
        {
            "FRAUD_DATA_DIR": str(data_dir),
            "REDIS_URL": url,
            "MLFLOW_TRACKING_URI": f"{postgres_server}/{database}",
            "FRAUD_MODEL_POLL_SECONDS": "0.2",
        }
    )
    yield
    client.flushdb()  # also releases the claim
    client.close()
    _drop_database(postgres_server, database)
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


def _claim_redis_db(server: str) -> tuple[redis.Redis, str]:
    """The first test db no other run holds: flushed, then marked as ours for up to 2 hours."""
    for db in TEST_DBS:
        client = redis.Redis.from_url(f"{server}/{db}", socket_connect_timeout=2)
        try:
            claimed = client.set(LOCK_KEY, os.getpid(), nx=True, ex=7200)
        except redis.ConnectionError as error:
            pytest.exit(f"Redis at {server} stopped answering: restart it ({error})", returncode=3)
        if claimed:
            client.flushdb()
            client.set(LOCK_KEY, os.getpid(), ex=7200)
            return client, f"{server}/{db}"
        client.close()
    pytest.exit(f"every test db ({TEST_DBS.start} to {TEST_DBS.stop + 1}) is held by another run", returncode=3)


def _admin_connection(server: str):
    import psycopg

    try:
        return psycopg.connect(f"{server}/postgres", autocommit=True, connect_timeout=3)
    except psycopg.OperationalError as error:
        pytest.exit(f"PostgreSQL at {server} stopped answering: restart it ({error})", returncode=3)


def _recreate_database(server: str, name: str) -> None:
    with _admin_connection(server) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.execute(f'CREATE DATABASE "{name}"')


def _drop_database(server: str, name: str) -> None:
    with _admin_connection(server) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="module")
def second_redis_url(test_environment: None, test_services: dict[str, Service]) -> Iterator[str]:
    """Another claimed db, for a module that builds a world of its own beside the session's."""
    client, url = _claim_redis_db(test_services["redis"].url)
    yield url
    client.flushdb()  # also releases the claim
    client.close()


@pytest.fixture(scope="session")
def settings(test_environment: None):
    from contracts.settings import Settings

    return Settings()


@pytest.fixture(scope="session")
def transactions(settings) -> pd.DataFrame:
    """A small simulated history, ingested through the contract into the test raw store."""
    from data.raw_store import RawStore
    from data.simulate import SimulationConfig, simulate_transactions

    frame = simulate_transactions(
        SimulationConfig(n_customers=200, n_terminals=400, n_days=45, start_date=SIM_START, seed=7)
    )
    store = RawStore(settings)
    store.ingest_frame(frame, source="test-simulation")
    return store.load()


@pytest.fixture(scope="session")
def feature_store(settings, transactions):
    """Offline tables built, definitions applied: a ready Feast store on the test registry."""
    from feature_repo.pipeline import build_offline_tables
    from feature_repo.store import apply_definitions, limit_offline_memory
    from feature_repo.store import feature_store as open_store

    limit_offline_memory(settings)  # the test session is the program: it bounds DuckDB, as `fraud` does
    build_offline_tables(settings, transactions)
    store = open_store(settings)
    apply_definitions(store, settings)
    return store


@pytest.fixture(scope="session")
def trained_model(settings, feature_store, transactions):
    """A model trained from the store, registered, approved and promoted in the test MLflow."""
    from training.lifecycle import approve, promote
    from training.train import train_candidate

    result = train_candidate(settings, feature_store, transactions)
    approve(settings, result.version, by="test-suite", note="fixture model")
    promote(settings, result.version, by="test-suite", reason="fixture model")
    return result


@pytest.fixture(scope="session")
def online_until(feature_store, transactions) -> pd.Timestamp:
    """Materialise every snapshot up to the last day's: online holds what that day's payments see."""
    from feature_repo.store import materialize

    last_day = transactions["tx_datetime"].max().floor("D")
    materialize(feature_store, (last_day - pd.Timedelta(days=40)).to_pydatetime(), last_day.to_pydatetime())
    return last_day


@pytest.fixture(scope="session")
def registry_link(settings):
    """The scorer reaches the PostgreSQL registry through a relay a test can cut (an outage)."""
    from tests.support.tcp_proxy import TcpProxy

    url = urlparse(settings.mlflow_tracking_uri)
    return TcpProxy(url.hostname, url.port or 5432).start()


@pytest.fixture(scope="session")
def scorer_app(settings, trained_model, online_until, registry_link):
    from contracts.settings import Settings
    from serving.app import create_app

    url = urlparse(settings.mlflow_tracking_uri)
    relayed = url._replace(netloc=f"{url.username}@127.0.0.1:{registry_link.port}").geturl()
    return create_app(Settings(**{**settings.model_dump(), "mlflow_tracking_uri": relayed}))


@pytest.fixture(scope="session")
def scorer_url(scorer_app) -> Iterator[str]:
    """The real scorer app served by uvicorn on a free port (real HTTP), for the session."""
    from tests.support.servers import served

    with served(scorer_app) as base_url:
        yield base_url


@pytest.fixture()
def http(scorer_url: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=scorer_url, timeout=10) as client:
        yield client


@pytest.fixture(scope="module")
def http_session(scorer_url: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=scorer_url, timeout=10) as client:
        yield client


@pytest.fixture(scope="session")
def live_customers(transactions, online_until) -> list[int]:
    """Customers paying on the last day, sorted. Scoring pushes their online state, so tests
    that replay history take them from the front and tests that probe take them from the back."""
    live = transactions[transactions["tx_datetime"] >= online_until]
    return sorted(live["customer_id"].unique().tolist())
