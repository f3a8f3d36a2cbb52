"""A Redis db a benchmark run holds alone: claimed, flushed before and after, released on the way out.

The claim is a key in the db itself (`LOCK_KEY`, the run's pid, with an expiry in case
a run is killed outright): a second run at the same time stops with a message instead
of sharing, and so flushing, the other's data. db 0 (the demo's) and dbs 8-15 (the test
suite's) are refused. With no Redis answering at the URL, a private `redis-server` is
started on a free port for the run and stopped with it.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, cast
from urllib.parse import urlparse

import psutil
import redis

from benchmarks.support.errors import SetupError
from benchmarks.support.processes import stop_group
from contracts.net import free_port

FORBIDDEN_DBS = {0, *range(8, 16)}  # the demo's default, and the test suite's
LOCK_KEY = "fraud:bench-serving-lock"
LOCK_TTL_S = 3 * 3600  # a run killed with SIGKILL leaves the claim; it lapses after this
PRIVATE_START_POLLS = 100  # x 0.1 s: how long a private redis-server gets to answer


@contextlib.contextmanager
def claimed_redis_db(url: str, workdir: Path) -> Iterator[tuple[redis.Redis, str]]:
    """A flushed Redis db this run holds alone, as (client, the URL in use); flushed again on the way out.

    The URL in use differs from `url` when a private redis-server had to be started
    (its data dir is `workdir`).
    """
    db = int(urlparse(url).path.strip("/") or 0)
    if db in FORBIDDEN_DBS:
        raise SetupError(
            f"refusing Redis db {db} in {url}: db 0 is the demo's and 8-15 the tests'; "
            "pass --redis-url with another db (default db 7)"
        )
    server: subprocess.Popen[bytes] | None = None
    try:  # from here on, a private server is stopped however the run ends
        client = redis.Redis.from_url(url, socket_connect_timeout=2)
        try:
            client.ping()
        except redis.ConnectionError:
            server, url = _start_private_redis(url, db, workdir)
            client = redis.Redis.from_url(url, socket_connect_timeout=2)
            _wait_for(client)
            print(f"no Redis answered at the configured URL: started a private redis-server for this run ({url})")
        if not client.set(LOCK_KEY, os.getpid(), nx=True, ex=LOCK_TTL_S):
            raise SetupError(
                f"Redis db {db} at {url} is held by another benchmark run (key {LOCK_KEY}, "
                f"pid {client.get(LOCK_KEY)!r}); wait for it or pass --redis-url with another db"
            )
        client.flushdb()
        client.set(LOCK_KEY, os.getpid(), ex=LOCK_TTL_S)  # the flush removed it
        try:
            yield client, url
        finally:
            client.flushdb()  # also releases the claim
            client.close()
    finally:
        if server is not None:
            stop_group(server)


def _start_private_redis(url: str, db: int, workdir: Path) -> tuple[subprocess.Popen[bytes], str]:
    """A redis-server on a free local port, without persistence; returns it and the URL of `db` on it."""
    binary = shutil.which("redis-server")
    if not binary:
        raise SetupError(f"no Redis answers at {url} and redis-server is not installed") from None
    port = free_port()
    server = subprocess.Popen(
        [binary, "--bind", "127.0.0.1", "--port", str(port), "--save", "", "--appendonly", "no", "--dir", str(workdir)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    return server, f"redis://127.0.0.1:{port}/{db}"


def _wait_for(client: redis.Redis) -> None:
    """Until the server answers, for at most PRIVATE_START_POLLS tenths of a second.

    A server still silent then shows up at the first real command, as an error of its own.
    """
    for _ in range(PRIVATE_START_POLLS):
        with contextlib.suppress(redis.ConnectionError):
            client.ping()
            return
        time.sleep(0.1)


def local_redis_pid(client: redis.Redis) -> int | None:
    """The Redis server's pid when it runs on this machine (its CPU is then part of the workload).

    None when the server does not say (INFO may be disabled on a managed Redis) or the pid
    is not a process here.
    """
    try:
        info = cast(dict[str, Any], client.info("server"))  # a sync client: a dict, not an awaitable
        pid = int(info["process_id"])
    except (redis.RedisError, KeyError, TypeError, ValueError):
        return None
    return pid if psutil.pid_exists(pid) else None


def snapshot_db(client: redis.Redis) -> dict[bytes, bytes]:
    """Every key of the db with its DUMP, to put the db back as it is now (`restore_db`)."""
    keys = list(client.scan_iter(count=1000))
    pipe = client.pipeline(transaction=False)
    for key in keys:
        pipe.dump(key)
    return {key: value for key, value in zip(keys, pipe.execute(), strict=True) if value is not None}


def restore_db(client: redis.Redis, snapshot: dict[bytes, bytes], batch: int = 2000) -> None:
    """Flush the db and load `snapshot` back, keeping this run's claim on it."""
    client.flushdb()
    pipe = client.pipeline(transaction=False)
    for i, (key, value) in enumerate(snapshot.items(), 1):
        pipe.restore(key, 0, value, replace=True)
        if i % batch == 0:
            pipe.execute()
    pipe.set(LOCK_KEY, os.getpid(), ex=LOCK_TTL_S)
    pipe.execute()
