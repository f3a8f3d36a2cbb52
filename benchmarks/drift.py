"""Benchmark: the drift job over 1 million logged requests (80 minutes at about 200 requests/s).

    .venv/bin/python -m benchmarks.drift [--rows 1000000] [--reference-rows 60000]
        [--redis-url redis://127.0.0.1:6379/6] [--keep]

In a temporary FRAUD_DATA_DIR it writes a prediction log the way `fraud worker` does
(files of 500 rows, the worker's default batch, under predictions/date=.../), with one
float column per input of the fraud_detection_v1 feature service, and a reference
profile of those inputs registered with a model version in a SQLite MLflow store there.
The window's traffic differs from the reference in two known ways, so the run has
something to find: `amount` is 30 % higher, and `device_age_days` is missing in 28 % of
requests. Then it times, in this process:

  baseline  reading the window's prediction log (monitoring.prediction_log), the floor
            any drift job over these files pays;
  drift     `run_drift` end to end as `fraud monitor drift` runs it: read the log, load
            the reference from the registry, Evidently's statistics for every input,
            the score and the decisions, the HTML report and JSON summary, the MLflow
            run, the alerts and latest results published to Redis.

Prints both times, the ratio drift / baseline, the peak memory, and what the run flagged.
Redis: db 6 by default, claimed and flushed like the serving benchmark's (db 0 and 8-15 refused).
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
from tabulate import tabulate

from benchmarks.support.errors import SetupError
from benchmarks.support.redis_db import claimed_redis_db
from contracts.settings import Settings

DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/6"
LOG_FILE_ROWS = 500  # `fraud worker --batch` default
START = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
REQUESTS_PER_SECOND = 200
SHIFTED, MISSING = "amount", "device_age_days"


def synthetic_inputs(rng: np.random.Generator, rows: int, shifted: bool) -> pd.DataFrame:
    """Plausible values for every model input: counts, amounts, ratios, flags, ages."""
    frame = pd.DataFrame(
        {
            "amount": rng.gamma(2.0, 27.0, rows) * (1.3 if shifted else 1.0),
            "tx_during_weekend": (rng.random(rows) < 2 / 7).astype(float),
            "tx_during_night": (rng.random(rows) < 0.08).astype(float),
            "amount_over_customer_avg_30day": rng.lognormal(0.0, 0.5, rows),
            "seconds_since_previous_tx": rng.exponential(40_000, rows).round(),
            "hour_gap_from_customer_usual": np.abs(rng.normal(0, 3, rows)),
            "device_used_by_customer_30day": (rng.random(rows) < 0.95).astype(float),
            "device_nb_customers": rng.poisson(0.2, rows) + 1.0,
            "device_age_days": rng.integers(0, 400, rows).astype(float),
        }
    )
    for window, scale in ((1, 1), (7, 7), (30, 30)):
        frame[f"customer_id_nb_tx_{window}day_window"] = rng.poisson(2.0 * scale, rows) + 1.0
        frame[f"customer_id_avg_amount_{window}day_window"] = rng.gamma(4.0, 13.0, rows)
        frame[f"terminal_id_nb_tx_{window}day_window"] = rng.poisson(1.8 * scale, rows).astype(float)
        frame[f"terminal_id_risk_{window}day_window"] = np.where(rng.random(rows) < 0.03, rng.random(rows), 0.0)
    if shifted:
        frame.loc[rng.random(rows) < 0.28, MISSING] = np.nan
    return frame


def risk_scores(rng: np.random.Generator, rows: int) -> np.ndarray:
    """Scores shaped like a fraud model's: most near 0, about 1 % near 1."""
    return np.clip(rng.beta(0.4, 25.0, rows) + (rng.random(rows) < 0.01) * 0.9, 0.0, 1.0)


def write_log(settings: Settings, inputs: pd.DataFrame, scores: np.ndarray) -> int:
    """The prediction log as the worker writes it; returns the number of files."""
    from contracts.decision import decide
    from contracts.files import write_parquet_atomically
    from contracts.prediction_log import BASE_SCHEMA, log_dir, plan_batch
    from contracts.transactions import Transaction, contract_columns

    rows = len(inputs)
    stamps = pd.date_range(START, periods=rows, freq=pd.Timedelta(seconds=1 / REQUESTS_PER_SECOND))
    decisions = [decide(score, settings) for score in scores.tolist()]
    base = {
        "transaction_id": [f"b-{i}" for i in range(rows)],
        "tx_datetime": stamps,
        "customer_id": np.arange(rows) % 50_000,
        "terminal_id": np.arange(rows) % 100_000,
        "tx_amount": inputs["amount"].to_numpy(),
        "device_id": [None] * rows,
        "risk_score": scores,
        "decision": decisions,
        "model_version": ["1"] * rows,
        "latency_ms": np.full(rows, 1.0),
        "scored_at": stamps,
        "stream_id": [f"{i + 1}-0" for i in range(rows)],
        "trace_id": [None] * rows,
        "shadow_version": [None] * rows,
        "shadow_score": [None] * rows,
    }
    for column in contract_columns(Transaction):  # the device's other details: the drift job reads none
        if column.nullable:
            base.setdefault(column.name, [None] * rows)
    table = pa.Table.from_pydict(base, schema=BASE_SCHEMA)
    for name in inputs.columns:
        table = table.append_column(name, pa.array(inputs[name].to_numpy(), pa.float64()))
    files = 0
    for start in range(0, rows, LOG_FILE_ROWS):
        for log_file in plan_batch(table.slice(start, LOG_FILE_ROWS)):
            write_parquet_atomically(log_dir(settings) / log_file.relative_path, log_file.table)
            files += 1
    return files


def register_reference(settings: Settings, reference: pd.DataFrame) -> str:
    """A model version whose run holds the reference profile, as `fraud train` leaves it."""
    import mlflow

    from contracts.registry import TRAINING_EXPERIMENT, experiment_id, fluent_tracking, registry_client
    from training.reference import log_reference

    client = registry_client(settings)
    experiment = experiment_id(client, settings, TRAINING_EXPERIMENT)
    with fluent_tracking(settings), mlflow.start_run(experiment_id=experiment) as run:
        log_reference(reference)
    client.create_registered_model(settings.model_name)
    version = client.create_model_version(
        settings.model_name, source=f"runs:/{run.info.run_id}/reference", run_id=run.info.run_id
    )
    return str(version.version)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=1_000_000, help="logged requests in the window")
    parser.add_argument("--reference-rows", type=int, default=60_000, help="rows of the reference profile")
    parser.add_argument("--redis-url", default=DEFAULT_REDIS_URL)
    parser.add_argument("--keep", action="store_true", help="keep the temporary data dir (report, summary)")
    args = parser.parse_args(argv)
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")

    from monitoring.checks import Window
    from monitoring.drift import run_drift
    from monitoring.prediction_log import read_prediction_log
    from monitoring.reference import SCORE_COLUMN

    workdir = Path(tempfile.mkdtemp(prefix="fraud-bench-drift-"))
    try:
        with claimed_redis_db(args.redis_url, workdir) as (_, redis_url):
            settings = Settings(data_dir=workdir / "data", redis_url=redis_url, mlflow_tracking_uri="")
            rng = np.random.default_rng(0)
            prepared = time.perf_counter()
            reference = synthetic_inputs(rng, args.reference_rows, shifted=False)
            reference[SCORE_COLUMN] = risk_scores(rng, args.reference_rows)
            version = register_reference(settings, reference)
            files = write_log(settings, synthetic_inputs(rng, args.rows, shifted=True), risk_scores(rng, args.rows))
            print(
                f"prepared {args.rows:,} logged requests in {files:,} files and a {args.reference_rows:,}-row "
                f"reference (v{version}) in {time.perf_counter() - prepared:.1f} s"
            )
            window = Window(START, START + timedelta(seconds=args.rows / REQUESTS_PER_SECOND + 1))

            started = time.perf_counter()
            read_rows = len(read_prediction_log(settings, window.start, window.end))
            baseline_s = time.perf_counter() - started
            started = time.perf_counter()
            run = run_drift(settings, window)
            drift_s = time.perf_counter() - started
    except SetupError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    finally:
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)

    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(
        "\n"
        + tabulate(
            [
                ["baseline: read the log", f"{read_rows:,}", f"{baseline_s:.1f}"],
                ["drift job (run_drift)", f"{run.rows:,}", f"{drift_s:.1f}"],
            ],
            headers=["step", "rows", "seconds"],
            tablefmt="pipe",
            colalign=("left", "right", "right"),
            disable_numparse=True,
        )
    )
    print(
        f"\nratio drift / baseline: {drift_s / baseline_s:.1f}x; target under 120 s: "
        f"{'met' if drift_s < 120 else 'MISSED'}; peak memory {peak_mib:,.0f} MiB"
    )
    print(f"\n{len(run.alerts)} alerts (expected: feature_drift on {SHIFTED}, missing_values on {MISSING}):")
    for check in run.alerts:
        print(f"  {check.kind:<16} {check.feature:<34} {check.statistic:<26} {check.value:.4f} > {check.threshold}")
    if args.keep:
        print(f"\nreport: {run.html_path}\nsummary: {run.summary_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
