"""Fixtures of the registry tests."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from contracts.settings import Settings


@pytest.fixture(params=["sqlite", "postgresql"])
def registry(request: pytest.FixtureRequest, tmp_path: Path, settings: Settings) -> Iterator[Settings]:
    """An empty registry on each backend: a fresh SQLite file, or the run's PostgreSQL database
    under a model name of its own."""
    module = request.module.__name__.rsplit(".", 1)[-1].removeprefix("test_")
    if request.param == "sqlite":
        yield Settings(data_dir=tmp_path, redis_url=settings.redis_url, mlflow_tracking_uri="")
    else:
        yield Settings(
            data_dir=tmp_path,
            redis_url=settings.redis_url,
            mlflow_tracking_uri=os.environ["MLFLOW_TRACKING_URI"],
            model_name=f"{module}_{request.node.name.split('[')[0][-40:]}",
        )
