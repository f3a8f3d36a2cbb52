"""Access to the Feast feature store, configured from the platform settings.

The store's configuration is `feature_store.yaml` with its variables taken from a
`Settings` object, not from the process environment, and `apply_definitions` publishes
`definitions.py` with every file source bound to that settings' data dir: two stores of
two data dirs can live in one process.
"""

from __future__ import annotations

import copy
import os
import string
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import ibis
import pandas as pd
import redis
import yaml
from feast import Entity, FeatureService, FeatureStore, FeatureView, Field, FileSource, OnDemandFeatureView
from feast.base_feature_view import BaseFeatureView
from feast.data_source import DataSource, PushMode, PushSource
from feast.repo_config import RepoConfig
from feast.types import Array

from contracts.settings import Settings
from feature_repo import definitions

FEATURE_REPO_DIR = Path(__file__).resolve().parent
CONFIG_FILE = FEATURE_REPO_DIR / "feature_store.yaml"
CUSTOMER_STATE_PUSH = definitions.customer_state_push.name

_DECLARED_KINDS = (Entity, DataSource, FeatureView, OnDemandFeatureView, FeatureService)


def repo_config(settings: Settings) -> RepoConfig:
    """feature_store.yaml with its ${...} variables taken from `settings`."""
    config = RepoConfig(**_expand(yaml.safe_load(CONFIG_FILE.read_text()), settings.feast_variables()))
    config.repo_path = FEATURE_REPO_DIR
    return config


def _expand(value: object, variables: dict[str, str]) -> Any:
    if isinstance(value, str):
        return string.Template(value).substitute(variables)
    if isinstance(value, dict):
        return {key: _expand(item, variables) for key, item in value.items()}
    return value


def feature_store(settings: Settings) -> FeatureStore:
    """The FeatureStore of `feature_repo/`, with paths and Redis taken from `settings`."""
    settings.feast_dir.mkdir(parents=True, exist_ok=True)
    return FeatureStore(repo_path=str(FEATURE_REPO_DIR), config=repo_config(settings))


def limit_offline_memory(settings: Settings) -> None:
    """Give Feast's DuckDB engine a memory limit and a spill folder, for this whole process.

    Feast's DuckDB offline store runs on ibis' default connection and takes no settings of
    its own, so this is process-wide: the programs that join offline (the `fraud` commands,
    the benchmarks, the tests) call it once they know their settings; the scorer never does.
    Feast's point-in-time join keeps every state row inside the TTL before picking the
    latest; with list-valued state that peaked at 13 GB on the Handbook's data, and at
    2.7 GB once DuckDB may spill (benchmarks/handbook_evaluation.py).
    """
    spill = settings.data_dir / "duckdb-spill"
    spill.mkdir(parents=True, exist_ok=True)
    ibis.set_backend(
        ibis.duckdb.connect(
            memory_limit=settings.duckdb_memory_limit, temp_directory=str(spill), threads=os.cpu_count() or 1
        )
    )


def declared_objects(settings: Settings) -> list[Any]:
    """The Feast objects of `definitions.py`, as `feast apply` collects them, with every file source
    bound to the settings' offline tables (copies: the module's own objects are left as they are)."""
    declared = [obj for obj in vars(definitions).values() if isinstance(obj, _DECLARED_KINDS)]
    nested = [obj.batch_source for obj in declared if isinstance(obj, PushSource) and obj.batch_source]
    objects = copy.deepcopy([*declared, *(s for s in nested if not any(s is d for d in declared))])
    for source in _file_sources(objects):
        source.file_options.uri = str(settings.offline_dir / Path(source.path).name)
    return objects


def _file_sources(objects: list[Any]) -> Iterator[FileSource]:
    for obj in objects:
        if isinstance(obj, FileSource):
            yield obj
        elif isinstance(obj, FeatureView) and isinstance(obj.batch_source, FileSource):
            yield obj.batch_source


def apply_definitions(store: FeatureStore, settings: Settings) -> None:
    """Register every object of `feature_repo/definitions.py`, as `feast apply` does."""
    store.apply(declared_objects(settings))


def clear_online_store(store: FeatureStore, settings: Settings) -> int:
    """Delete every row this feature project holds in the online store; returns how many.

    Feast's Redis keys end with the project's name (feast/infra/online_stores/redis.py), and
    a materialisation skips every row not newer than the stored one: a world rebuilt from
    scratch (the demo's) must start from an empty online store, not from an earlier run's.
    """
    client = redis.Redis.from_url(settings.redis_url)
    try:
        keys = list(client.scan_iter(match=b"*" + store.config.project.encode("utf-8"), count=10_000))
        for start in range(0, len(keys), 10_000):
            client.delete(*keys[start : start + 10_000])
        return len(keys)
    finally:
        client.close()


def materialize(store: FeatureStore, start: datetime, end: datetime, views: list[str] | None = None) -> None:
    """Load the latest row of every entity stamped in (start, end] into the online store."""
    store.materialize(start_date=start, end_date=end, feature_views=views)


def push_customer_states(store: FeatureStore, states: pd.DataFrame) -> None:
    """Write new customer states to the online store (rows: customer_id, event_timestamp, state)."""
    store.push(CUSTOMER_STATE_PUSH, states, to=PushMode.ONLINE)


def _fields(store: FeatureStore, service: FeatureService) -> Iterator[tuple[str, BaseFeatureView, Field]]:
    views = {v.name: v for v in [*store.list_feature_views(), *store.list_on_demand_feature_views()]}
    for projection in service.feature_view_projections:
        for field in projection.features:
            yield projection.name, views[projection.name], field


def model_feature_names(store: FeatureStore, service: FeatureService) -> list[str]:
    """The service's scalar features in its own order: the model's inputs (state lists are not)."""
    return [field.name for _, _, field in _fields(store, service) if not isinstance(field.dtype, Array)]


def feature_descriptions(store: FeatureStore, service: FeatureService) -> dict[str, str]:
    """Feature name -> the analyst-readable description written next to its definition."""
    return {
        field.name: field.description or view.tags.get(f"description:{field.name}", field.name)
        for _, view, field in _fields(store, service)
    }
