"""`fraud features build | apply | materialize | refresh`: the offline tables, the registry, the online store."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from contracts.settings import Settings
from contracts.tracing import step
from contracts.transactions import as_utc
from fraud.console import console, err, fail, load_raw

if TYPE_CHECKING:
    from feature_repo.store import Loaded

app = typer.Typer(help="Build, publish and materialise features.", no_args_is_help=True)


@app.command("build")
def features_build() -> None:
    """Compute the offline feature tables from the whole raw store (a full build)."""
    from feature_repo.pipeline import build_offline_tables

    settings = Settings()
    transactions = load_raw(settings)
    with console.status("building offline feature tables"):
        result = build_offline_tables(settings, transactions)
    for name, path in result.parts.items():
        console.print(f"{name}: {result.rows[name]:,} rows in {path.parent}")


@app.command("apply")
def features_apply() -> None:
    """Publish feature_repo/ definitions to the registry (what `feast apply` does)."""
    from feature_repo.store import apply_definitions, feature_store

    settings = Settings()
    apply_definitions(feature_store(settings), settings)
    console.print("feature definitions applied")


@app.command("materialize")
def features_materialize(
    end: Annotated[datetime | None, typer.Option(help="Load rows up to this time (UTC). Default: now.")] = None,
    start: Annotated[
        datetime | None,
        typer.Option(help="Load rows from this time (UTC). Default: where the last load ended, or the first row."),
    ] = None,
) -> None:
    """Load the offline tables' latest rows into the online store (Redis), and say what was loaded."""
    from feature_repo.pipeline import built_until
    from feature_repo.store import DefinitionsNotApplied, feature_store, limit_offline_memory, materialize_views

    settings = Settings()
    limit_offline_memory(settings)
    end_time = as_utc(end) if end else datetime.now(UTC)
    start_time = as_utc(start) if start else None
    if start_time is not None and start_time >= end_time:
        fail(f"--start {start_time.isoformat()} is not before --end {end_time.isoformat()}; swap them")
    if built_until(settings) is None:
        fail("the offline tables hold no rows: run `fraud features build` first")
    with console.status("materialising the stored views"), step("features.materialize"):
        try:
            loaded = materialize_views(feature_store(settings), settings, end=end_time, start=start_time)
        except DefinitionsNotApplied as error:
            fail(str(error))
    print_loaded(loaded)
    check_loaded(loaded, settings)
    if not any(view.entities for view in loaded):
        first = min(v.table_start for v in loaded if v.table_start is not None)
        if first > end_time:
            fail(
                f"the offline tables start at {first.isoformat()}, after --end {end_time.isoformat()}; "
                "pass a later --end"
            )
        console.print("the online store was already up to date")


@app.command("refresh")
def features_refresh() -> None:
    """The daily job: ingest the files waiting in FRAUD_DATA_DIR/inbox, add their features, load them."""
    from fraud.refresh import refresh_features

    settings = Settings()
    with console.status(f"refreshing features from {settings.inbox_dir}"):
        report = refresh_features(settings)
    for name, rows in report.ingested:
        console.print(f"ingested {name}: {rows:,} payments")
    for name, problem in report.rejected:
        err.print(f"rejected {name} ({problem}); its report is in {settings.inbox_dir / 'rejected'}")
    if report.build is None:
        console.print(f"nothing new in {settings.inbox_dir}")
    else:
        kind = "incremental" if report.build.incremental else f"full ({report.full_build_because})"
        console.print(
            f"{kind} build up to {report.build.built_until}: "
            + ", ".join(f"{name} {rows:,} rows" for name, rows in report.build.rows.items())
        )
        print_loaded(report.loaded)
        check_loaded(report.loaded, settings)
    console.print("took " + ", ".join(f"{step} {seconds:.1f} s" for step, seconds in report.seconds.items()))
    if report.rejected:
        raise typer.Exit(1)


def print_loaded(loaded: Sequence[Loaded]) -> None:
    table = Table(title="Loaded into the online store")
    for column in ("view", "from", "to", "entities with rows", "served online"):
        table.add_column(column, justify="left" if column in ("view", "from", "to") else "right")
    for view in loaded:
        table.add_row(view.view, view.start.isoformat(), view.end.isoformat(), f"{view.entities:,}", f"{view.online:,}")
    console.print(table)


def check_loaded(loaded: Sequence[Loaded], settings: Settings) -> None:
    """Fail in one sentence when the online store does not serve what the load wrote."""
    for view in loaded:
        if view.missing:
            fail(
                f"{view.view}: only {view.online:,} of the {view.entities:,} entities with rows from "
                f"{view.start.isoformat()} to {view.end.isoformat()} are served online after the load; "
                f"check that {settings.redis_url} is this store's Redis and that nothing else writes there"
            )
