"""The test registry reached through a relay a test can cut: a registry outage on demand."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from urllib.parse import urlparse

from contracts.settings import Settings
from tests.support.tcp_proxy import TcpProxy


@contextmanager
def relayed_registry(settings: Settings, **changes: object) -> Iterator[tuple[Settings, TcpProxy]]:
    """`settings` (with `changes`) whose MLflow URI goes through a relay to the run's PostgreSQL registry."""
    url = urlparse(os.environ["MLFLOW_TRACKING_URI"])
    proxy = TcpProxy(url.hostname or "127.0.0.1", url.port or 5432).start()
    relayed_uri = url._replace(netloc=f"{url.username}@127.0.0.1:{proxy.port}").geturl()
    try:
        yield Settings(**{**settings.model_dump(), **changes, "mlflow_tracking_uri": relayed_uri}), proxy
    finally:
        proxy.cut()
