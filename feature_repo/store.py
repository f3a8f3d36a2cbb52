"""Access to the Feast feature store, configured from the platform settings."""

from __future__ import annotations

from datetime import datetime

from feast import FeatureService, FeatureStore

from data.settings import FEATURE_REPO_DIR, Settings


def feature_store(settings: Settings) -> FeatureStore:
    """The FeatureStore of `feature_repo/`, with paths and Redis taken from `settings`."""
    settings.export_feast_env()
    settings.feast_dir.mkdir(parents=True, exist_ok=True)
    return FeatureStore(repo_path=str(FEATURE_REPO_DIR))


def apply_definitions(store: FeatureStore) -> None:
    """Register every object of `feature_repo/definitions.py`, as `feast apply` does."""
    from feast.repo_operations import parse_repo

    repo = parse_repo(FEATURE_REPO_DIR)
    objects = [*repo.entities, *repo.data_sources, *repo.feature_views,
               *repo.on_demand_feature_views, *repo.stream_feature_views, *repo.feature_services]
    store.apply(objects)


def materialize(store: FeatureStore, start: datetime, end: datetime) -> None:
    """Load the latest batch snapshot of every entity in (start, end] into the online store."""
    store.materialize(start_date=start, end_date=end)


def service_feature_names(store: FeatureStore, service: FeatureService) -> list[str]:
    """The features a service returns, in its own order (the model's input order)."""
    return [feature.name for projection in service.feature_view_projections
            for feature in projection.features]


def stored_feature_names(store: FeatureStore, service: FeatureService) -> list[str]:
    """Features of the service read from the online store (not computed on request)."""
    on_demand = {odfv.name for odfv in store.list_on_demand_feature_views()}
    return [feature.name for projection in service.feature_view_projections
            if projection.name not in on_demand for feature in projection.features]


def feature_descriptions(store: FeatureStore, service: FeatureService) -> dict[str, str]:
    """Feature name -> the analyst-readable description written next to its definition."""
    views = {v.name: v for v in [*store.list_feature_views(), *store.list_on_demand_feature_views()]}
    descriptions = {}
    for projection in service.feature_view_projections:
        view = views[projection.name]
        for field in view.features:
            descriptions[field.name] = (field.description
                                        or view.tags.get(f"description:{field.name}", field.name))
    return descriptions

