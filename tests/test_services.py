"""The run's servers: the ones at the test URLs when they answer, embedded ones when nothing does,
and a clear stop when what answers is not the expected server."""

from __future__ import annotations

import shutil
from pathlib import Path
from urllib.parse import urlparse

import psycopg
import pytest
import redis

from contracts.net import free_port
from tests.support.services import (
    POSTGRES_DEFAULT_PORT,
    REDIS_DEFAULT_PORT,
    EmbeddedPostgres,
    Service,
    ServiceError,
    answers,
    postgres_binaries,
    postgres_service,
    redis_service,
)


def _nothing_at(scheme: str) -> str:
    """A URL on a port nothing listens on."""
    return f"{scheme}://127.0.0.1:{free_port()}"


def _address(url: str) -> str:
    parsed = urlparse(url)
    return f"{parsed.hostname}:{parsed.port}"


def test_redis_service_keeps_the_server_that_answers(test_services: dict[str, Service], tmp_path: Path) -> None:
    running = test_services["redis"].url
    with redis_service(running, tmp_path) as service:
        assert (service.url, service.embedded) == (running, False)
        assert "answering there" in service.notice


def test_redis_service_starts_an_embedded_valkey_where_nothing_answers(tmp_path: Path) -> None:
    nothing = _nothing_at("redis")
    with redis_service(nothing, tmp_path) as service:
        assert service.embedded and service.url != nothing
        assert f"nothing answered at {nothing}" in service.notice
        client = redis.Redis.from_url(f"{service.url}/3")
        assert client.ping()
        client.set("k", "v")
        assert client.get("k") == b"v"
        client.close()
    assert not answers(service.url, REDIS_DEFAULT_PORT)  # stopped with the block


def test_redis_service_stops_on_a_server_that_is_not_redis(test_services: dict[str, Service], tmp_path: Path) -> None:
    postgres_address = _address(test_services["postgres"].url)
    with pytest.raises(ServiceError, match="not as Redis"), redis_service(f"redis://{postgres_address}", tmp_path):
        pass


def test_postgres_service_keeps_the_server_that_answers(test_services: dict[str, Service]) -> None:
    running = test_services["postgres"].url
    with postgres_service(running) as service:
        assert (service.url, service.embedded) == (running, False)


def test_postgres_service_starts_an_embedded_server_that_creates_databases() -> None:
    nothing = _nothing_at("postgresql").replace("//", "//postgres@")
    with postgres_service(nothing) as service:
        assert service.embedded and f"nothing answered at {nothing}" in service.notice
        with psycopg.connect(f"{service.url}/postgres", autocommit=True) as admin:
            admin.execute('CREATE DATABASE "fraud_embedded_check"')
        with psycopg.connect(f"{service.url}/fraud_embedded_check") as database:
            query = "SELECT datname, pg_encoding_to_char(encoding) FROM pg_database WHERE datname = current_database()"
            row = database.execute(query).fetchone()
        assert row == ("fraud_embedded_check", "UTF8")
    assert not answers(service.url, POSTGRES_DEFAULT_PORT)


def test_embedded_postgres_leaves_no_folder_behind() -> None:
    server = EmbeddedPostgres().start()
    assert (server.folder / "data" / "PG_VERSION").is_file()
    server.stop()
    assert not server.folder.exists()


def test_embedded_postgres_runs_from_an_install_only_its_owner_can_reach(tmp_path: Path) -> None:
    """A checkout in a private folder (e.g. /root): as root, the server's user could not reach the
    programs, so they are copied beside its data."""
    private = tmp_path / "private"
    private.mkdir(mode=0o700)
    package = postgres_binaries().parent.parent  # site-packages/pgserver, beside it pgserver.libs
    shutil.copytree(package, private / package.name, ignore=shutil.ignore_patterns("include"))
    shutil.copytree(package.parent / f"{package.name}.libs", private / f"{package.name}.libs")
    server = EmbeddedPostgres(binaries=private / package.name / "pginstall" / "bin")
    try:
        server.start()
        with psycopg.connect(f"{server.url}/postgres") as connection:
            assert connection.execute("SELECT 1").fetchone() == (1,)
    finally:
        server.stop()


def test_postgres_service_stops_on_a_server_that_is_not_postgres(test_services: dict[str, Service]) -> None:
    redis_address = _address(test_services["redis"].url)
    with pytest.raises(ServiceError, match="PostgreSQL did not let the test run in"):
        with postgres_service(f"postgresql://postgres@{redis_address}"):
            pass
