"""`fraud`: the platform's one command-line entry point."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import warnings
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.table import Table

from data.settings import Settings

app = typer.Typer(help="Fraud detection platform built around a feature store.", no_args_is_help=True,
                  pretty_exceptions_enable=False)
features_app = typer.Typer(help="Build, publish and materialise features.", no_args_is_help=True)
app.add_typer(features_app, name="features")
model_app = typer.Typer(help="The model registry: list, approve, promote, roll back, audit.",
                        no_args_is_help=True)
app.add_typer(model_app, name="model")
monitor_app = typer.Typer(help="Monitoring: drift of served features and predictions.", no_args_is_help=True)
app.add_typer(monitor_app, name="monitor")
# Wide enough for the demo's table when output is not a terminal (CI logs, pipes).
console = Console(width=None if Console().is_terminal else 140)
err = Console(stderr=True)


def fail(message: str, code: int = 1) -> None:
    """Stop with one sentence saying what to fix, and a non-zero exit."""
    err.print(f"[red]error:[/red] {message}")
    raise typer.Exit(code)


@app.callback()
def main(verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Log progress.")] = False) -> None:
    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if not verbose:
        # Third-party deprecation chatter (MLflow, Feast, ibis) is not the user's to fix.
        warnings.filterwarnings("ignore", category=DeprecationWarning)
        warnings.filterwarnings("ignore", category=UserWarning)
        warnings.filterwarnings("ignore", category=RuntimeWarning, module="feast")
        # MLflow draws a progress bar for every artifact download (a reference profile is one file).
        os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")


@app.command()
def env() -> None:
    """Print the environment Feast's CLI needs: eval "$(fraud env)" before `feast apply`."""
    for key, value in Settings().export_feast_env().items():
        typer.echo(f"export {key}='{value}'")


@app.command()
def simulate(
    out: Annotated[Optional[Path], typer.Option(help="Parquet or CSV file to write.")] = None,
    preset: Annotated[Optional[str], typer.Option(help="'handbook': the book's size and dates.")] = None,
    customers: Annotated[int, typer.Option(min=1)] = 1000,
    terminals: Annotated[int, typer.Option(min=1)] = 2000,
    days: Annotated[int, typer.Option(min=1)] = 61,
    start_date: Annotated[Optional[datetime], typer.Option(formats=["%Y-%m-%d"],
                                                           help="Default: the data ends yesterday.")] = None,
    seed: int = 0,
    devices: Annotated[bool, typer.Option(help="Include device columns.")] = True,
) -> None:
    """Simulate transactions in the raw contract (Handbook simulator plus devices and takeovers)."""
    from data.simulate import SimulationConfig, simulate_transactions

    if preset not in (None, "handbook"):
        fail(f"unknown preset {preset!r}; the only preset is 'handbook'")
    config = (SimulationConfig.handbook() if preset == "handbook" else
              SimulationConfig(n_customers=customers, n_terminals=terminals, n_days=days,
                               start_date=start_date.date() if start_date else None, seed=seed))
    if not devices:
        config = SimulationConfig(**{**config.__dict__, "with_devices": False})
    out = out or Settings().incoming_dir / "transactions.parquet"
    with console.status("simulating transactions"):
        frame = simulate_transactions(config)
    _write_frame(frame, out)
    console.print(f"wrote {len(frame):,} transactions ({int(frame['is_fraud'].sum()):,} frauds) to {out}")


def _write_frame(frame, out: Path) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    if out.suffix == ".csv":
        frame.to_csv(out, index=False)
    elif out.suffix in (".parquet", ".pq"):
        frame.to_parquet(out, index=False)
    else:
        fail(f"cannot write {out.name}: use a .parquet or .csv file name")


@app.command()
def ingest(path: Annotated[Path, typer.Argument(help="Transactions file, parquet or CSV.")]) -> None:
    """Check a raw transactions file against the contract and store it, or reject it whole."""
    from data.contract import ContractError, InputFileError
    from data.raw_store import RawStore

    try:
        result = RawStore(Settings()).ingest_file(path)
    except InputFileError as error:
        fail(str(error))
    except ContractError as error:
        err.print(str(error))
        fail(f"{path} was rejected and nothing was stored; fix the rows above and ingest it again")
    console.print(f"stored {result.rows:,} transactions from {result.start} to {result.end} in {result.path}")


@features_app.command("build")
def features_build() -> None:
    """Compute the offline feature tables from the raw store."""
    from feature_repo.pipeline import build_offline_tables

    settings = Settings()
    with console.status("building offline feature tables"):
        paths = build_offline_tables(settings, _load_raw(settings))
    for name, path in paths.items():
        console.print(f"{name}: {path}")


@features_app.command("apply")
def features_apply() -> None:
    """Publish feature_repo/ definitions to the registry (what `feast apply` does)."""
    from feature_repo.store import apply_definitions, feature_store

    apply_definitions(feature_store(Settings()))
    console.print("feature definitions applied")


@features_app.command("materialize")
def features_materialize(
    end: Annotated[Optional[datetime], typer.Option(help="Materialise up to this time (UTC). Default: now.")] = None,
) -> None:
    """Load the latest feature snapshots into the online store (Redis)."""
    from feature_repo.store import feature_store

    end_time = (end or datetime.now(timezone.utc)).replace(tzinfo=timezone.utc)
    feature_store(Settings()).materialize_incremental(end_date=end_time)
    console.print(f"materialised up to {end_time.isoformat()}")


@app.command()
def train() -> None:
    """Train a candidate from the feature store, gate it, and register it in MLflow.

    Registering does not deploy: approve the version, then promote it (`fraud model`).
    """
    from feature_repo.store import feature_store
    from training.train import train_candidate
    from training.validate import GateFailed

    settings = Settings()
    try:
        with console.status("training a candidate"):
            result = train_candidate(settings, feature_store(settings), _load_raw(settings))
    except GateFailed as error:
        _print_checks(error.checks)
        fail(str(error))
    except ValueError as error:
        fail(str(error))
    _print_checks(result.checks)
    console.print(f"registered {result.model_name} version {result.version} "
                  f"(train {result.n_train:,}, holdout {result.n_test:,}). Next: "
                  f"fraud model approve {result.version} --by NAME --note TEXT; "
                  f"fraud model promote {result.version} --by NAME")


def _print_checks(checks) -> None:
    table = Table(title="Validation gate")
    for column in ("check", "result", "detail"):
        table.add_column(column)
    for check in checks:
        table.add_row(check.name, "[green]pass[/green]" if check.passed else "[red]FAIL[/red]", check.message)
    console.print(table)


@model_app.command("list")
def model_list() -> None:
    """Versions with their approval, aliases and holdout metrics."""
    from training.lifecycle import list_versions

    table = Table(title=f"Model versions of {Settings().model_name}")
    for column in ("version", "aliases", "approved by", "approved at", "AUC", "AP", "CP@100",
                   "trained on", "created"):
        table.add_column(column)
    for v in list_versions(Settings()):
        metric = lambda name: f"{v.metrics[name]:.3f}" if name in v.metrics else "-"  # noqa: E731
        table.add_row(v.version, ", ".join(v.aliases) or "-", v.approved_by or "[yellow]not approved[/yellow]",
                      v.approved_at or "-", metric("auc_roc"), metric("average_precision"),
                      metric("card_precision_at_100"), f"{(v.data_start or '-')[:10]} .. {(v.data_end or '-')[:10]}",
                      v.created_at[:19])
    console.print(table)


@contextlib.contextmanager
def _lifecycle_errors() -> Iterator[None]:
    """A refused registry move (not approved, no previous champion, ...) ends the command with its reason."""
    from training.lifecycle import LifecycleError

    try:
        yield
    except LifecycleError as error:
        fail(str(error))


@model_app.command("approve")
def model_approve(version: str, by: Annotated[str, typer.Option(help="Who approves.")],
                  note: Annotated[str, typer.Option(help="Why: what was checked.")]) -> None:
    """Record who approved a version, when and why; only approved versions can be promoted."""
    from training.lifecycle import approve

    with _lifecycle_errors():
        approved = approve(Settings(), version, by, note)
    console.print(f"version {approved.version} approved by {by}")


@model_app.command("promote")
def model_promote(version: str, by: Annotated[str, typer.Option(help="Who deploys.")],
                  reason: Annotated[str, typer.Option(help="Why.")] = "") -> None:
    """Point `champion` at an approved version (running scorers follow within seconds)."""
    from training.lifecycle import promote

    with _lifecycle_errors():
        move = promote(Settings(), version, by, reason)
    console.print(f"champion: v{move.from_version or '-'} -> v{move.to_version} ({move.by}, {move.at})")


@model_app.command("rollback")
def model_rollback(by: Annotated[str, typer.Option(help="Who rolls back.")],
                   reason: Annotated[str, typer.Option(help="Why.")] = "") -> None:
    """Move `champion` back to the previous approved champion."""
    from training.lifecycle import rollback

    with _lifecycle_errors():
        move = rollback(Settings(), by, reason)
    console.print(f"champion rolled back: v{move.from_version} -> v{move.to_version} ({move.by}, {move.at})")


@model_app.command("audit")
def model_audit() -> None:
    """Every move of the champion alias: who, when, from, to, why."""
    from training.lifecycle import audit_trail

    table = Table(title="Champion alias moves")
    for column in ("when", "kind", "by", "from", "to", "why"):
        table.add_column(column)
    for move in audit_trail(Settings()):
        table.add_row(move.at, move.kind, move.by, f"v{move.from_version}" if move.from_version else "-",
                      f"v{move.to_version}", move.reason)
    console.print(table)


@app.command()
def evaluate(
    protocol: Annotated[str, typer.Option(help="Evaluation protocol: 'handbook'.")] = "handbook",
    train_start: Annotated[datetime, typer.Option(formats=["%Y-%m-%d"], help="First training day.")] = ...,
    model: Annotated[str, typer.Option(help="xgboost, logistic or random_forest.")] = "xgboost",
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    """Evaluate a model by the Handbook protocol, every feature through the feature store."""
    import pandas as pd

    from feature_repo.pipeline import build_offline_tables
    from feature_repo.store import apply_definitions, feature_store
    from training.evaluate import evaluate_handbook

    if protocol != "handbook":
        fail(f"unknown protocol {protocol!r}; the only protocol is 'handbook'")
    if model not in ("xgboost", "logistic", "random_forest"):
        fail(f"unknown model {model!r}; choose xgboost, logistic or random_forest")
    settings = Settings()
    transactions = _load_raw(settings)
    try:
        build_offline_tables(settings, transactions)
        store = feature_store(settings)
        apply_definitions(store)
        result = evaluate_handbook(settings, store, transactions, pd.Timestamp(train_start), model)  # type: ignore[arg-type]
    except ValueError as error:
        fail(str(error))
    if as_json:
        typer.echo(json.dumps(result))
    else:
        for key, value in result.items():
            console.print(f"{key:>24}  {value}")


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

    from feature_repo.store import feature_store
    from monitoring.skew import skew_report
    from serving.events import latest_events

    settings = Settings()
    client = redis.Redis.from_url(settings.redis_url)
    events = latest_events(client, settings, sample)
    if not events:
        fail(f"no scoring events in the stream {settings.scoring_stream}; score some payments first")
    store = feature_store(settings)
    with console.status(f"retrieving {len(events)} payments offline"):
        report = skew_report(store, store.get_feature_service(settings.feature_service), events, tolerance)
    table = Table(title=f"Training-serving skew over the latest {len(events)} scored payments")
    for column in ("feature", "compared", "mismatches", "mismatch share", "max abs diff"):
        table.add_column(column, justify="left" if column == "feature" else "right")
    for row in report.itertuples():
        style = "red" if row.mismatches else None
        table.add_row(row.feature, str(row.compared), str(row.mismatches), f"{row.mismatch_share:.2%}",
                      f"{row.max_abs_diff:.3g}", style=style)
    console.print(table)
    if report["mismatches"].any():
        fail(f"{int((report['mismatches'] > 0).sum())} features differ between serving and training")


ALERT_EXIT_CODE = 3  # distinct from 1 (the job could not run) so a scheduler can tell them apart


@monitor_app.command("drift")
def monitor_drift(
    window: Annotated[str, typer.Option(help="Length of the window ending at --end: 90m, 24h, 7d.")] = "24h",
    start: Annotated[Optional[datetime], typer.Option(help="Window start (UTC); overrides --window.")] = None,
    end: Annotated[Optional[datetime], typer.Option(help="Window end (UTC), excluded. Default: now.")] = None,
    model_version: Annotated[Optional[str], typer.Option(
        help="Model version whose payments and reference to compare. Default: the one that served most.")] = None,
) -> None:
    """Compare the features and scores served in a window with the model's training reference.

    Writes an Evidently HTML report and a JSON summary under FRAUD_DATA_DIR/monitoring/drift,
    publishes alerts on the alert stream, and exits 3 when an alert fires (1 when it cannot run).
    """
    from datetime import timedelta

    import redis

    from monitoring.checks import Window, parse_duration
    from monitoring.drift import DriftJobError, run_drift

    end_at = _as_utc(end) if end else datetime.now(timezone.utc)
    try:
        span = Window(start=_as_utc(start), end=end_at) if start else Window.ending(end_at, parse_duration(window))
    except ValueError as error:
        fail(str(error))
    if span.end - span.start <= timedelta(0):
        fail(f"--start {span.start:%Y-%m-%d %H:%M} is not before --end {span.end:%Y-%m-%d %H:%M}; swap them")
    settings = Settings()
    try:
        with console.status(f"comparing payments of {span.start:%Y-%m-%d %H:%M} .. {span.end:%Y-%m-%d %H:%M} UTC "
                            "with the training reference"):
            run = run_drift(settings, span, model_version=model_version)
    except DriftJobError as error:
        fail(str(error))
    except (redis.ConnectionError, redis.TimeoutError) as error:
        fail(f"cannot reach Redis to publish the results ({error}); start it or set REDIS_URL")
    console.print(f"model v{run.model_version}: {run.rows:,} served payments against {run.reference_rows:,} "
                  f"reference rows, {len(run.checks)} checks in {run.seconds:.1f} s")
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


def _as_utc(moment: datetime) -> datetime:
    return moment.replace(tzinfo=timezone.utc) if moment.tzinfo is None else moment.astimezone(timezone.utc)


@app.command("score-file")
def score_file(
    path: Annotated[Path, typer.Argument(help="Transactions to score, parquet or CSV (the raw contract).")],
    out: Annotated[Optional[Path], typer.Option(help="Where to write the scores (parquet or CSV).")] = None,
) -> None:
    """Score a whole file through the scorer's own code (the champion, online features), in batches."""
    import asyncio

    import pandas as pd
    from rich.progress import Progress

    from data.contract import ContractError, InputFileError, read_transactions_file, validate
    from feature_repo.store import feature_store
    from serving.model import load_model
    from serving.schemas import MAX_BATCH, Transaction
    from serving.scoring import Scorer

    try:
        frame = validate(read_transactions_file(path).drop(columns=["is_fraud", "fraud_scenario"], errors="ignore"))
    except InputFileError as error:
        fail(str(error))
    except ContractError as error:
        err.print(str(error))
        fail(f"{path} breaks the contract; fix the rows above and score it again")
    settings = Settings()
    scorer = Scorer(settings, feature_store(settings), load_model(settings))
    rows: list[dict] = []

    async def score_all(progress: Progress) -> None:
        task = progress.add_task(f"scoring {len(frame):,} payments", total=len(frame))
        for start in range(0, len(frame), MAX_BATCH):
            chunk = frame.iloc[start:start + MAX_BATCH]
            payments = [Transaction.model_validate({k: v for k, v in record.items() if not pd.isna(v)})
                        for record in chunk.to_dict("records")]
            for answer in await scorer.score(payments):
                rows.append({"transaction_id": answer.transaction_id, "risk_score": answer.risk_score,
                             "decision": answer.decision, "model_version": answer.model_version,
                             "top_reason": answer.reasons[0].feature if answer.reasons else None,
                             "missing_features": ",".join(answer.missing_features)})
            progress.advance(task, len(chunk))

    with Progress(console=console) as progress:
        asyncio.run(score_all(progress))
    out = out or path.with_name(f"{path.stem}.scores.parquet")
    _write_frame(pd.DataFrame(rows), out)
    console.print(f"wrote {len(rows):,} scores to {out}")


@app.command()
def serve(host: str = "127.0.0.1", port: int = 8000,
          workers: Annotated[int, typer.Option(min=1, help="Worker processes.")] = 1) -> None:
    """Run the scorer (FastAPI) with the champion model."""
    import shutil

    import uvicorn

    from serving.metrics import MULTIPROC_ENV

    metrics_dir = None
    if workers > 1 and not os.environ.get(MULTIPROC_ENV):
        # Worker processes share their Prometheus metrics through files; a scrape sums them.
        metrics_dir = Settings().data_dir / "metrics" / f"serve-{os.getpid()}"
        shutil.rmtree(metrics_dir, ignore_errors=True)
        metrics_dir.mkdir(parents=True)
        os.environ[MULTIPROC_ENV] = str(metrics_dir)
    try:
        # An import string and a factory let uvicorn start the same app in each worker process.
        uvicorn.run("serving.app:create_app", factory=True, host=host, port=port, workers=workers,
                    log_level="warning", access_log=False)
    finally:
        if metrics_dir is not None:
            shutil.rmtree(metrics_dir, ignore_errors=True)


@app.command()
def demo() -> None:
    """Run the whole platform end to end on simulated data and score sample transactions."""
    from serving.demo import run_demo

    run_demo(Settings(), console)


def _load_raw(settings: Settings):
    from data.raw_store import RawStore, RawStoreEmpty

    try:
        return RawStore(settings).load()
    except RawStoreEmpty as error:
        fail(str(error))


@app.command()
def worker(
    batch: Annotated[int, typer.Option(min=1, help="Most events per batch.")] = 500,
    name: Annotated[Optional[str], typer.Option(help="Consumer name (default: hostname-pid).")] = None,
    once: Annotated[bool, typer.Option("--once", help="Process what the stream holds, then exit.")] = False,
    claim_idle: Annotated[float, typer.Option(min=0.0, help="Take over events other consumers left "
                                                            "unacknowledged this many seconds.")] = 60.0,
) -> None:
    """Consume scoring events: push customer states, write the prediction log, acknowledge.

    Runs until SIGTERM or Ctrl-C, finishing the current batch; one log line per batch.
    """
    import signal
    import threading

    import redis

    from serving.worker import WorkerConfig, default_consumer_name, open_worker, redis_location

    settings = Settings()
    config = WorkerConfig(consumer=name or default_consumer_name(), batch=batch, claim_idle_s=claim_idle)
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    # The per-batch line is the worker's heartbeat: shown without --verbose.
    logging.getLogger("serving.worker").setLevel(logging.INFO)
    try:
        running = open_worker(settings, config)
        total = running.run(stop=stop, once=once)
    except (redis.ConnectionError, redis.TimeoutError) as error:
        fail(f"cannot reach Redis at {redis_location(settings)} ({error}); start it or set REDIS_URL")
    console.print(f"worker {config.consumer} ({config.group} on {settings.scoring_stream}): "
                  f"{total:,} events processed")


if __name__ == "__main__":
    app()
