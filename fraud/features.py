"""`fraud features build | apply | materialize`: the offline tables, the registry, the online store."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

import typer

from contracts.settings import Settings
from contracts.transactions import as_utc
from fraud.console import console, load_raw

app = typer.Typer(help="Build, publish and materialise features.", no_args_is_help=True)


@app.command("build")
def features_build() -> None:
    """Compute the offline feature tables from the raw store."""
    from feature_repo.pipeline import build_offline_tables

    settings = Settings()
    transactions = load_raw(settings)
    with console.status("building offline feature tables"):
        paths = build_offline_tables(settings, transactions)
    for name, path in paths.items():
        console.print(f"{name}: {path}")


@app.command("apply")
def features_apply() -> None:
    """Publish feature_repo/ definitions to the registry (what `feast apply` does)."""
    from feature_repo.store import apply_definitions, feature_store

    settings = Settings()
    apply_definitions(feature_store(settings), settings)
    console.print("feature definitions applied")


@app.command("materialize")
def features_materialize(
    end: Annotated[datetime | None, typer.Option(help="Materialise up to this time (UTC). Default: now.")] = None,
) -> None:
    """Load the latest feature snapshots into the online store (Redis)."""
    from feature_repo.store import feature_store, limit_offline_memory

    settings = Settings()
    limit_offline_memory(settings)
    end_time = as_utc(end) if end else datetime.now(UTC)
    feature_store(settings).materialize_incremental(end_date=end_time)
    console.print(f"materialised up to {end_time.isoformat()}")
