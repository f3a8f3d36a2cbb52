"""`fraud monitor drift` and `fraud skew-check`: what was served, against what training saw."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated

import typer
from rich.table import Table

from contracts.settings import Settings
from contracts.transactions import as_utc
from fraud.console import console, fail

app = typer.Typer()  # skew-check: a top-level command
monitor_app = typer.Typer(help="Monitoring: drift of served features and predictions.", no_args_is_help=True)

ALERT_EXIT_CODE = 3  # distinct from 1 (the job could not run) so a scheduler can tell them apart


@app.command("skew-check")
def skew_check(
    sample: Annotated[int, typer.Option(min=1, help="How many of the latest scoring events to check.")] = 1000,
    tolerance: Annotated[float, typer.Option(min=0.0)] = 1e-6,
) -> None:
    """Compare features served online with the same payments' features offline, per feature.

    Exits 1 when any feature differs: the first thing to run when scores look wrong.
    Offline tables must include the logged payments (ingest them, `fraud features build`).
    """
    import redis

    from contracts.events import latest_events
    from feature_repo.store import DefinitionsNotApplied, feature_store, limit_offline_memory, published_service
    from monitoring.skew import skew_report

    settings = Settings()
    limit_offline_memory(settings)
    events = latest_events(redis.Redis.from_url(settings.redis_url), settings, sample)
    if not events:
        fail(f"no scoring events in the stream {settings.scoring_stream}; score some payments first")
    store = feature_store(settings)
    try:
        service = published_service(store, settings.feature_service)
    except DefinitionsNotApplied as error:
        fail(str(error))
    with console.status(f"retrieving {len(events)} payments offline"):
        report = skew_report(store, service, events, tolerance)
    table = Table(title=f"Training-serving skew over the latest {len(events)} scored payments")
    for column in ("feature", "compared", "mismatches", "mismatch share", "max abs diff"):
        table.add_column(column, justify="left" if column == "feature" else "right")
    for row in report.itertuples():
        style = "red" if row.mismatches else None
        table.add_row(
            row.feature,
            str(row.compared),
            str(row.mismatches),
            f"{row.mismatch_share:.2%}",
            f"{row.max_abs_diff:.3g}",
            style=style,
        )
    console.print(table)
    if report["mismatches"].any():
        fail(f"{int((report['mismatches'] > 0).sum())} features differ between serving and training")


@monitor_app.command("drift")
def monitor_drift(
    window: Annotated[str, typer.Option(help="Length of the window ending at --end: 90m, 24h, 7d.")] = "24h",
    start: Annotated[datetime | None, typer.Option(help="Window start (UTC); overrides --window.")] = None,
    end: Annotated[datetime | None, typer.Option(help="Window end (UTC), excluded. Default: now.")] = None,
    model_version: Annotated[
        str | None,
        typer.Option(help="Model version whose payments and reference to compare. Default: the one that served most."),
    ] = None,
) -> None:
    """Compare the features and scores served in a window with the model's training reference.

    Writes an Evidently HTML report and a JSON summary under FRAUD_DATA_DIR/monitoring/drift,
    publishes alerts on the alert stream, and exits 3 when an alert fires (1 when it cannot run).
    """
    import redis

    from monitoring.checks import Window, parse_duration
    from monitoring.drift import DriftJobError, run_drift

    end_at = as_utc(end) if end else datetime.now(UTC)
    try:
        span = Window(start=as_utc(start), end=end_at) if start else Window.ending(end_at, parse_duration(window))
    except ValueError as error:
        fail(str(error))
    if span.end - span.start <= timedelta(0):
        fail(f"--start {span.start:%Y-%m-%d %H:%M} is not before --end {span.end:%Y-%m-%d %H:%M}; swap them")
    settings = Settings()
    try:
        with console.status(
            f"comparing payments of {span.start:%Y-%m-%d %H:%M} .. {span.end:%Y-%m-%d %H:%M} UTC "
            "with the training reference"
        ):
            run = run_drift(settings, span, model_version=model_version)
    except DriftJobError as error:
        fail(str(error))
    except (redis.ConnectionError, redis.TimeoutError) as error:
        fail(f"cannot reach Redis to publish the results ({error}); start it or set REDIS_URL")
    console.print(
        f"model v{run.model_version}: {run.rows:,} served payments against {run.reference_rows:,} "
        f"reference rows, {len(run.checks)} checks in {run.seconds:.1f} s"
    )
    if run.other_version_rows:
        console.print(f"{run.other_version_rows:,} payments scored by other versions were left out")
    console.print(f"report: {run.html_path}\nsummary: {run.summary_path}")
    if not run.alerts:
        console.print("[green]no alert[/green]")
        return
    table = Table("kind", "feature", "statistic", "value", "threshold", title=f"{len(run.alerts)} alerts")
    for check in run.alerts:
        table.add_row(check.kind, check.feature, check.statistic, f"{check.value:.4f}", f"{check.threshold:.4f}")
    console.print(table)
    raise typer.Exit(ALERT_EXIT_CODE)
