"""Access to the Feast feature store, configured from the platform settings.

The store's configuration is `feature_store.yaml` with its variables taken from a
`Settings` object, not from the process environment, and `apply_definitions` publishes
`definitions.py` with every file source bound to that settings' data dir: two stores of
two data dirs can live in one process.
"""

from __future__ import annotations

import contextlib
import copy
import os
import string
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import ibis
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
import redis
import yaml
from feast import Entity, FeatureService, FeatureStore, FeatureView, Field, FileSource, OnDemandFeatureView
from feast.base_feature_view import BaseFeatureView
from feast.data_source import DataSource, PushMode, PushSource
from feast.errors import FeatureServiceNotFoundException, FeatureViewNotFoundException
from feast.online_response import OnlineResponse
from feast.repo_config import RepoConfig
from feast.types import Array

from contracts.settings import Settings
from feature_repo import definitions

FEATURE_REPO_DIR = Path(__file__).resolve().parent
CONFIG_FILE = FEATURE_REPO_DIR / "feature_store.yaml"
CUSTOMER_STATE_PUSH = definitions.customer_state_push.name
STORED_VIEWS: tuple[FeatureView, ...] = (
    definitions.customer_state,
    definitions.terminal_labels,
    definitions.device_profile,
)
ENTITIES = {entity.name: entity for entity in (definitions.customer, definitions.terminal, definitions.device)}
STAMPED_AHEAD = "stamped_ahead"  # a view tag: its rows are stamped ahead of the data, by how long
# The worker's read-fold-push of customer states and a batch's writes of them take turns.
CUSTOMER_STATE_LOCK = "fraud:customer-state:lock"
MATERIALIZE_LOCK_TIMEOUT_S = 3600.0
_UTC_US = pa.timestamp("us", tz="UTC")

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
    for source in _file_sources(objects):  # features/<view>/part-*.parquet
        source.file_options.uri = str(settings.offline_dir / Path(source.path).parent.name / Path(source.path).name)
    for view in objects:
        if isinstance(view, FeatureView):
            # Feast stamps a source it applies with the time; the view's own copies keep their
            # pinned stamps (definitions.DEFINED_AT), so `feast plan` finds an unchanged view unchanged.
            view.batch_source = copy.copy(view.batch_source)
            view.stream_source = copy.deepcopy(view.stream_source)
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
    """Load the latest row of every entity stamped in [start, end] into the online store."""
    store.materialize(start_date=start, end_date=end, feature_views=views)


@dataclass(frozen=True)
class Loaded:
    """What a materialisation loaded for one view: the stamps it covered, how many entities the
    offline table holds rows for in them, and how many of those the online store now serves at
    least as new as their newest such row (`online`; fewer than `entities` means a write was lost)."""

    view: str
    start: datetime
    end: datetime
    entities: int
    online: int
    table_start: datetime | None  # the first and last stamps the offline table holds
    table_end: datetime | None

    @property
    def missing(self) -> int:
        return self.entities - self.online


def materialize_views(
    store: FeatureStore, settings: Settings, end: datetime, start: datetime | None = None
) -> list[Loaded]:
    """Load every stored view's rows up to `end` into the online store, from `start`, or else from
    where the view's last load ended, or else from its table's first row (a full load); then
    check in the online store that every entity with rows in the period is served at least as
    new as its newest one.

    Feast's own `materialize_incremental` starts a view's first load at now minus its TTL,
    which loads nothing from older data: the start is chosen here instead. A view whose rows
    are stamped ahead of the data (terminal labels: when each label becomes known) is loaded
    up to `end` plus that lead: the online state then holds every label the data up to `end`
    carries, each revealed by the request-time features when it is known. The customer state
    is written under the lock the worker folds payments under, so a push never lands on a
    state this load replaced meanwhile.
    """
    last_ends = {view.name: _last_loaded(store, view.name) for view in STORED_VIEWS}
    loaded = []
    for view in STORED_VIEWS:
        table = _stamps(settings, view)
        view_end = end + _lead(view, settings)
        last_end = last_ends[view.name]
        view_start = start or last_end or (table[0] if table else view_end)
        # Rows stamped at the last load's end are in already (Feast's bounds are inclusive).
        newest = _newest_rows(settings, view, view_start, view_end, after_start=start is None and last_end is not None)
        if newest.num_rows:
            with _state_lock(settings, view):
                store.materialize(start_date=view_start, end_date=view_end, feature_views=[view.name])
        online = _served_at_least(store, view, newest)
        loaded.append(Loaded(view.name, view_start, view_end, newest.num_rows, online, *(table or (None, None))))
    return loaded


def _lead(view: FeatureView, settings: Settings) -> timedelta:
    return timedelta(days=settings.label_delay_days) if view.tags.get(STAMPED_AHEAD) == "label_delay" else timedelta(0)


class DefinitionsNotApplied(LookupError):
    """The Feast registry does not hold a view the platform needs: the message says what to run."""


def published_service(store: FeatureStore, name: str) -> FeatureService:
    """A feature service as the registry publishes it; DefinitionsNotApplied when it holds none of that name."""
    try:
        return store.get_feature_service(name)
    except FeatureServiceNotFoundException as error:
        raise DefinitionsNotApplied(
            f"feature service {name} is not in the Feast registry at {store.config.registry.path}: "
            "run `fraud features apply` first"
        ) from error


def _last_loaded(store: FeatureStore, name: str) -> datetime | None:
    """Where the registry says the view's last materialisation ended (None: never loaded)."""
    try:
        return store.get_feature_view(name).most_recent_end_time
    except FeatureViewNotFoundException as error:
        raise DefinitionsNotApplied(
            f"feature view {name} is not in the Feast registry at {store.config.registry.path}: "
            "run `fraud features apply` first"
        ) from error


def table_dir(settings: Settings, view: FeatureView) -> Path:
    """The folder of a view's offline table under this deployment's data dir (its source's glob's folder)."""
    if not isinstance(view.batch_source, FileSource):
        raise TypeError(f"feature view {view.name} has no file source; the pipeline writes parquet files")
    return settings.offline_dir / Path(view.batch_source.path).parent.name


def _dataset(settings: Settings, view: FeatureView) -> ds.Dataset | None:
    folder = table_dir(settings, view)
    return ds.dataset(str(folder), format="parquet") if folder.is_dir() and any(folder.glob("part-*.parquet")) else None


def _stamps(settings: Settings, view: FeatureView) -> tuple[datetime, datetime] | None:
    """The first and last stamps of a view's offline table (None: no table, or no row)."""
    dataset = _dataset(settings, view)
    if dataset is None:
        return None
    stamps = dataset.to_table(columns=["event_timestamp"])["event_timestamp"]
    if not len(stamps):
        return None
    bounds = pc.min_max(stamps).as_py()
    return bounds["min"], bounds["max"]


def _newest_rows(
    settings: Settings, view: FeatureView, start: datetime, end: datetime, after_start: bool = False
) -> pa.Table:
    """Per entity with a row stamped in [start, end] (or (start, end]), its newest such stamp: what a load writes."""
    dataset = _dataset(settings, view)
    key = ENTITIES[view.entities[0]].join_key
    if dataset is None:
        return pa.table({key: pa.array([], pa.int64()), "event_timestamp_max": pa.array([], _UTC_US)})
    rows = dataset.to_table(
        columns=[key, "event_timestamp"],
        filter=(
            (ds.field("event_timestamp") > pa.scalar(start, _UTC_US))
            if after_start
            else (ds.field("event_timestamp") >= pa.scalar(start, _UTC_US))
        )
        & (ds.field("event_timestamp") <= pa.scalar(end, _UTC_US)),
    )
    return rows.group_by(key).aggregate([("event_timestamp", "max")])


def _served_at_least(store: FeatureStore, view: FeatureView, newest: pa.Table, chunk: int = 10_000) -> int:
    """How many of the entities the online store serves with a row stamped no earlier than their newest."""
    key = ENTITIES[view.entities[0]].join_key
    keys, wanted = newest[key].to_pylist(), newest["event_timestamp_max"].cast(pa.int64()).to_numpy()
    served = 0
    for begin in range(0, len(keys), chunk):
        feature = view.features[0].name
        response = store.get_online_features(
            features=[f"{view.name}:{feature}"], entity_rows=[{key: k} for k in keys[begin : begin + chunk]]
        )
        stamps = online_stamps(response, feature)
        served += int((stamps // 1_000 >= wanted[begin : begin + chunk]).sum())  # ns against us
    return served


def online_stamps(response: OnlineResponse, feature: str) -> np.ndarray:
    """The stamp (ns since the epoch; 0 for none) of each entity's row behind one feature of a response.

    The stamp is only in the response's proto: `to_dict(include_event_timestamps=True)`
    keeps whole seconds, and the online store compares writes to the microsecond.
    """
    names = list(response.proto.metadata.feature_names.val)
    stamps = response.proto.results[names.index(feature)].event_timestamps
    return np.fromiter((s.seconds * 1_000_000_000 + s.nanos for s in stamps), dtype=np.int64, count=len(stamps))


@contextlib.contextmanager
def _state_lock(settings: Settings, view: FeatureView) -> Iterator[None]:
    if view.name != definitions.customer_state.name:
        yield
        return
    client = redis.Redis.from_url(settings.redis_url)
    try:
        with client.lock(CUSTOMER_STATE_LOCK, timeout=MATERIALIZE_LOCK_TIMEOUT_S, sleep=0.05):
            yield
    finally:
        client.close()


def push_customer_states(store: FeatureStore, states: pd.DataFrame) -> None:
    """Write customer states to the online store as given (rows: customer_id, event_timestamp, state).

    The caller decides what replaces what: the worker writes, under CUSTOMER_STATE_LOCK, only
    states folded onto the ones it read, stamped no earlier. Feast's own check is off for these
    writes because it skips a row stamped like the stored one, and a second payment at the
    same instant as the customer's last one yields exactly that row.
    """
    online = store.config.online_store
    checked = online.skip_dedup
    online.skip_dedup = True
    try:
        store.push(CUSTOMER_STATE_PUSH, states, to=PushMode.ONLINE)
    finally:
        online.skip_dedup = checked


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
