"""Access to the Feast feature store, configured from the platform settings."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from datetime import datetime

import pandas as pd
from feast import FeatureService, FeatureStore
from feast.data_source import PushMode
from feast.types import Array

from data.settings import FEATURE_REPO_DIR, Settings

CUSTOMER_STATE_PUSH = "customer_state_push"


def feature_store(settings: Settings) -> FeatureStore:
    """The FeatureStore of `feature_repo/`, with paths and Redis taken from `settings`."""
    settings.export_feast_env()
    settings.feast_dir.mkdir(parents=True, exist_ok=True)
    _bound_offline_memory(settings)
    return FeatureStore(repo_path=str(FEATURE_REPO_DIR))


def _bound_offline_memory(settings: Settings) -> None:
    """Give Feast's DuckDB engine (ibis' default connection) a memory limit and a spill folder.

    Feast's point-in-time join keeps every state row inside the TTL before picking the
    latest; with list-valued state that peaked at 13 GB on the Handbook's data, and at
    2.7 GB once DuckDB may spill (benchmarks/handbook_evaluation.py).
    """
    import ibis

    spill = settings.data_dir / "duckdb-spill"
    spill.mkdir(parents=True, exist_ok=True)
    ibis.set_backend(ibis.duckdb.connect(memory_limit=settings.duckdb_memory_limit,
                                         temp_directory=str(spill), threads=os.cpu_count() or 1))


def apply_definitions(store: FeatureStore) -> None:
    """Register every object of `feature_repo/definitions.py`, as `feast apply` does."""
    from feast.repo_operations import parse_repo

    # parse_repo imports definitions.py (named after the working directory); drop a copy
    # imported earlier in this process, whose source paths may be another FRAUD_DATA_DIR's.
    definitions = FEATURE_REPO_DIR / "definitions.py"
    for name, module in list(sys.modules.items()):
        if getattr(module, "__file__", None) and Path(module.__file__) == definitions:
            del sys.modules[name]
    repo = parse_repo(FEATURE_REPO_DIR)
    store.apply([*repo.entities, *repo.data_sources, *repo.feature_views, *repo.on_demand_feature_views,
                 *repo.stream_feature_views, *repo.feature_services])


def materialize(store: FeatureStore, start: datetime, end: datetime, views: list[str] | None = None) -> None:
    """Load the latest row of every entity stamped in (start, end] into the online store."""
    store.materialize(start_date=start, end_date=end, feature_views=views)


def push_customer_states(store: FeatureStore, states: pd.DataFrame) -> None:
    """Write new customer states to the online store (rows: customer_id, event_timestamp, state)."""
    store.push(CUSTOMER_STATE_PUSH, states, to=PushMode.ONLINE)


def _fields(store: FeatureStore, service: FeatureService):
    views = {v.name: v for v in [*store.list_feature_views(), *store.list_on_demand_feature_views()]}
    for projection in service.feature_view_projections:
        for field in projection.features:
            yield projection.name, views[projection.name], field


def model_feature_names(store: FeatureStore, service: FeatureService) -> list[str]:
    """The service's scalar features in its own order: the model's inputs (state lists are not)."""
    return [field.name for _, _, field in _fields(store, service) if not isinstance(field.dtype, Array)]


def stored_feature_names(store: FeatureStore, service: FeatureService) -> list[str]:
    """Features of the service read from the online store (not computed on request)."""
    on_demand = {odfv.name for odfv in store.list_on_demand_feature_views()}
    return [field.name for view_name, _, field in _fields(store, service) if view_name not in on_demand]


def feature_descriptions(store: FeatureStore, service: FeatureService) -> dict[str, str]:
    """Feature name -> the analyst-readable description written next to its definition."""
    return {field.name: field.description or view.tags.get(f"description:{field.name}", field.name)
            for _, view, field in _fields(store, service)}
