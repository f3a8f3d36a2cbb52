"""`fraud serve`, `fraud worker` and `fraud score-file`: the scorer, its event consumer, batch scoring."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from contracts.settings import Settings
from contracts.tracing import configure_tracing
from fraud.console import check_frame_path, console, err, fail, write_frame

if TYPE_CHECKING:
    from mlflow.entities.model_registry import ModelVersion

app = typer.Typer()
WORKER_SERVICE = "fraud-worker"  # for traces, unless OTEL_SERVICE_NAME says otherwise


@app.command()
def serve(
    host: str = "127.0.0.1",
    port: int = 8000,
    workers: Annotated[int, typer.Option(min=1, help="Worker processes.")] = 1,
) -> None:
    """Run the scorer (FastAPI) with the champion model."""
    import shutil

    import uvicorn

    from serving.metrics import MULTIPROC_ENV

    settings = Settings()
    metrics_dir = None
    if workers > 1 and not os.environ.get(MULTIPROC_ENV):
        # Worker processes share their Prometheus metrics through files; a scrape sums them.
        metrics_dir = settings.data_dir / "metrics" / f"serve-{os.getpid()}"
        shutil.rmtree(metrics_dir, ignore_errors=True)
        metrics_dir.mkdir(parents=True)
        os.environ[MULTIPROC_ENV] = str(metrics_dir)
    try:
        # Nothing to serve: one sentence here, not a failed start-up's traceback.
        servable_version(settings)
        published_features(settings)
        # An import string and a factory let uvicorn start the same app in each worker process.
        uvicorn.run(
            "serving.app:create_app",
            factory=True,
            host=host,
            port=port,
            workers=workers,
            log_level="warning",
            access_log=False,
        )
    finally:
        if metrics_dir is not None:
            shutil.rmtree(metrics_dir, ignore_errors=True)


def servable_version(settings: Settings) -> tuple[ModelVersion, str | None]:
    """The version a scorer would serve (and the one it refuses), or a failure saying what to do."""
    from contracts.registry import RegistryUnavailable
    from serving.model import NoServableModel, serving_version

    try:
        return serving_version(settings)
    except (NoServableModel, RegistryUnavailable) as error:
        fail(str(error))


def published_features(settings: Settings) -> None:
    """Fail in one sentence unless the registry publishes the model's feature service."""
    from feature_repo.store import DefinitionsNotApplied, feature_store, published_service

    try:
        published_service(feature_store(settings), settings.feature_service)
    except DefinitionsNotApplied as error:
        fail(str(error))


@app.command()
def worker(
    batch: Annotated[int, typer.Option(min=1, help="Most events per batch.")] = 500,
    name: Annotated[str | None, typer.Option(help="Consumer name (default: hostname-pid).")] = None,
    once: Annotated[bool, typer.Option("--once", help="Process what the stream holds, then exit.")] = False,
    claim_idle: Annotated[
        float, typer.Option(min=0.0, help="Take over events other consumers left unacknowledged this many seconds.")
    ] = 60.0,
) -> None:
    """Consume scoring events: push customer states, write the prediction log, acknowledge.

    Runs until SIGTERM or Ctrl-C, finishing the current batch; one log line per batch.
    """
    import signal
    import threading

    import redis

    from serving.worker import WorkerConfig, default_consumer_name, open_worker

    configure_tracing(WORKER_SERVICE)  # a span per batch when the OTEL_* variables ask for it
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
        fail(f"cannot reach Redis at {settings.redis_location} ({error}); start it or set REDIS_URL")
    console.print(f"worker {config.consumer} ({config.group} on {settings.scoring_stream}): {total:,} events processed")


@app.command("score-file")
def score_file(
    path: Annotated[Path, typer.Argument(help="Transactions to score, parquet or CSV (the raw contract).")],
    out: Annotated[Path | None, typer.Option(help="Where to write the scores (parquet or CSV).")] = None,
) -> None:
    """Score a whole file through the scorer's own code (the champion, online features), in batches."""
    import asyncio

    import pandas as pd
    from rich.progress import Progress

    from contracts.tables import request_body
    from contracts.transactions import label_columns
    from data.contract import ContractError, InputFileError, read_transactions_file, validate
    from feature_repo.store import feature_store
    from serving.model import load_version
    from serving.schemas import MAX_BATCH, Transaction
    from serving.scoring import Scorer

    out = out or path.with_name(f"{path.stem}.scores.parquet")
    check_frame_path(out)
    try:
        frame = validate(read_transactions_file(path).drop(columns=list(label_columns()), errors="ignore"))
    except InputFileError as error:
        fail(str(error))
    except ContractError as error:
        err.print(str(error))
        fail(f"{path} breaks the contract; fix the rows above and score it again")
    settings = Settings()
    version, _ = servable_version(settings)
    scorer = Scorer(settings, feature_store(settings), load_version(settings, version))
    rows: list[dict[str, Any]] = []

    async def score_all(progress: Progress) -> None:
        task = progress.add_task(f"scoring {len(frame):,} payments", total=len(frame))
        for start in range(0, len(frame), MAX_BATCH):
            chunk = frame.iloc[start : start + MAX_BATCH]
            payments = [Transaction.model_validate(request_body(record)) for record in chunk.to_dict("records")]
            for answer in await scorer.score(payments):
                rows.append(
                    {
                        "transaction_id": answer.transaction_id,
                        "risk_score": answer.risk_score,
                        "decision": answer.decision,
                        "model_version": answer.model_version,
                        "top_reason": answer.reasons[0].feature if answer.reasons else None,
                        "missing_features": ",".join(answer.missing_features),
                    }
                )
            progress.advance(task, len(chunk))

    with Progress(console=console) as progress:
        asyncio.run(score_all(progress))
    write_frame(pd.DataFrame(rows), out)
    console.print(f"wrote {len(rows):,} scores to {out}")
