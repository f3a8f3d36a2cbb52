"""Benchmark: how often the drift job's calibrated thresholds alarm on clean windows, and how often
they catch a real shift, at several window sizes.

    .venv/bin/python -m benchmarks.drift_calibration [--customers 1000] [--days 100] [--windows 50]
        [--shift 1.3] [--margins 1.0,1.25,1.5,2.0] [--no-context] [--cache FILE]

In a temporary FRAUD_DATA_DIR it simulates a world (the Handbook simulator with devices and
takeovers), builds its features through the feature store, trains XGBoost on days 31-50 and
keeps days 58-64 as the reference profile with the model's scores, after the inputs of
the training period's last 7 days (FRAUD_REFERENCE_CONTEXT_DAYS), in time order, as
`fraud train` does (`--no-context`: the holdout alone). Clean windows come from the 35
later days: for each size, `--windows` windows, each a random sample of n payments from
the fewest whole consecutive days that hold them (so a window keeps a day's mix of
customers, terminals and hours; windows shorter than a day and their time of day are
another matter). Every window is compared
with the reference by the job's own statistics and calibrated thresholds, at the shipped
settings (floors 0.1 and 0.05, report-only inputs left out): a false alarm is a window
raising any alert. The same windows with every amount times `--shift` measure detection:
the share of windows alerting on `amount`. Prints both per size and margin, and which
checks caused the false alarms.
"""

from __future__ import annotations

import argparse
import math
import shutil
import tempfile
import time
from collections import Counter
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd
import xgboost as xgb
from tabulate import tabulate

from contracts.settings import Settings
from data.raw_store import RawStore
from data.simulate import SimulationConfig, simulate_transactions
from feature_repo.pipeline import build_offline_tables
from feature_repo.store import apply_definitions, feature_store, limit_offline_memory, model_feature_names
from monitoring.calibration import Statistic, chance_levels
from monitoring.drift import reference_frame, statistics
from training.dataset import build_training_set, feature_matrix
from training.models import fit_xgboost
from training.reference import build_reference, context_rows

START = date(2025, 1, 6)
TRAIN_DAYS, REFERENCE_DAYS, CLEAN_FROM = (31, 51), (58, 65), 65
SIZES = (300, 1_000, 3_000, 10_000, 30_000)


def days_since_start(frame: pd.DataFrame) -> pd.Series:
    return (frame["tx_datetime"] - pd.Timestamp(START, tz="UTC")).dt.days


def features_of(settings: Settings, customers: int, days: int) -> tuple[pd.DataFrame, list[str]]:
    """Every payment from day 31 on, with its features as the store gives them (served = offline)."""
    frame = simulate_transactions(
        SimulationConfig(n_customers=customers, n_terminals=2 * customers, n_days=days, start_date=START, seed=11)
    )
    RawStore(settings).ingest_frame(frame, source="drift-calibration")
    transactions = RawStore(settings).load()
    build_offline_tables(settings, transactions)
    store = feature_store(settings)
    apply_definitions(store, settings)
    service = store.get_feature_service(settings.feature_service)
    kept = transactions[days_since_start(transactions) >= TRAIN_DAYS[0]]
    return build_training_set(store, service, kept), model_feature_names(store, service)


def scored_frame(
    rows: pd.DataFrame, names: list[str], booster: xgb.Booster, settings: Settings, context: pd.DataFrame | None = None
) -> pd.DataFrame:
    """Rows as the drift job sees them: the inputs, the score, the decision (after `context`'s inputs)."""
    scores = booster.inplace_predict(feature_matrix(rows, names))
    return reference_frame(build_reference(rows, names, scores, max_rows=10**9, context=context), settings)


def clean_windows(frame: pd.DataFrame, size: int, count: int, rng: np.random.Generator) -> list[np.ndarray]:
    """Row positions of `count` windows of `size` payments, each from the fewest whole consecutive days."""
    day = days_since_start(frame).to_numpy()
    first, last = int(day.min()), int(day.max())
    per_day = len(frame) / (last - first + 1)
    span = max(1, math.ceil(size / per_day))
    windows = []
    for _ in range(count):
        start = int(rng.integers(first, last - span + 2))
        candidates = np.flatnonzero((day >= start) & (day < start + span))
        windows.append(np.sort(rng.choice(candidates, size=min(size, len(candidates)), replace=False)))
    return windows


def fired(
    measured: list[Statistic], thresholds: np.ndarray, reference: pd.DataFrame, window: pd.DataFrame
) -> list[str]:
    """The alerting checks a window sets off."""
    alarms = []
    for statistic, threshold in zip(measured, thresholds):
        value = statistic.measure(reference, window)[0]
        if statistic.alerting and not math.isnan(value) and value > threshold:
            alarms.append(f"{statistic.kind}:{statistic.feature}")
    return alarms


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--customers", type=int, default=1000)
    parser.add_argument("--days", type=int, default=100)
    parser.add_argument("--windows", type=int, default=50, help="clean windows per size")
    parser.add_argument("--shift", type=float, default=1.3, help="amounts times this in the shifted windows")
    parser.add_argument("--margins", default="1.0,1.25,1.5,2.0", help="chance margins to compare")
    parser.add_argument(
        "--no-context",
        dest="context",
        action="store_false",
        help="the holdout week alone as reference (no training-period inputs before it)",
    )
    parser.add_argument("--cache", type=Path, help="keep the world's features in this parquet file, and reuse it")
    args = parser.parse_args()
    margins = [float(m) for m in args.margins.split(",")]
    started = time.perf_counter()
    settings = Settings(drift_calibration_resamples=200)
    if args.cache and args.cache.exists():
        rows = pd.read_parquet(args.cache)
        names = [
            c
            for c in rows.columns
            if c
            not in (
                "transaction_id",
                "tx_datetime",
                "customer_id",
                "terminal_id",
                "device_id",
                "event_timestamp",
                "tx_amount",
                "tx_epoch_seconds",
                "device_hash",
                "is_fraud",
                "fraud_scenario",
            )
        ]
        names = [n for n in names if not n.startswith(("recent_", "label_known", "labelled_"))]
    else:
        data_dir = Path(tempfile.mkdtemp(prefix="fraud-bench-calibration-"))
        try:
            world = Settings(data_dir=data_dir)
            limit_offline_memory(world)
            rows, names = features_of(world, args.customers, args.days)
        finally:
            shutil.rmtree(data_dir, ignore_errors=True)
        if args.cache:
            rows[["transaction_id", "tx_datetime", "customer_id", "is_fraud", *names]].to_parquet(args.cache)
    day = days_since_start(rows)
    train = rows[(day >= TRAIN_DAYS[0]) & (day < TRAIN_DAYS[1])]
    booster = fit_xgboost(feature_matrix(train, names), train["is_fraud"].to_numpy(), names)
    holdout = rows[(day >= REFERENCE_DAYS[0]) & (day < REFERENCE_DAYS[1])]
    context = context_rows(train, settings.reference_context_days) if args.context else None
    reference = scored_frame(holdout, names, booster, settings, context)
    later = rows[day >= CLEAN_FROM].reset_index(drop=True)
    clean = scored_frame(later, names, booster, settings)
    clean.index = later.index
    shifted_rows = later.assign(amount=later["amount"] * args.shift)
    shifted = scored_frame(shifted_rows, names, booster, settings)
    prepared = time.perf_counter() - started
    scored = int(reference["risk_score"].notna().sum())
    print(
        f"world: {args.customers:,} customers, {args.days} days; {len(rows):,} payments with features from day "
        f"{TRAIN_DAYS[0]}; reference {len(reference):,} rows: {scored:,} scored (days {REFERENCE_DAYS[0]}-"
        f"{REFERENCE_DAYS[1] - 1}) after the inputs of {len(reference) - scored:,} payments of the training "
        f"period's last days; clean windows from {len(later):,} payments of days {CLEAN_FROM}-{args.days - 1}; "
        f"prepared in {prepared:.0f} s\n"
    )

    measured = statistics(reference, reference, settings)
    rng = np.random.default_rng(0)
    table, causes = [], Counter()
    for size in SIZES:
        windows = clean_windows(later, size, args.windows, rng)
        levels = chance_levels(reference, measured, size, settings.drift_calibration_resamples, margin=1.0)
        floors = np.array([s.floor for s in measured])
        row = [f"{size:,}", str(len(windows))]
        for margin in margins:
            thresholds = np.maximum(floors, levels * margin)
            false_alarms = [fired(measured, thresholds, reference, clean.iloc[w]) for w in windows]
            caught = [
                any(a.endswith(":amount") for a in fired(measured, thresholds, reference, shifted.iloc[w]))
                for w in windows
            ]
            if margin == settings.drift_chance_margin:
                causes.update(a for alarms in false_alarms for a in set(alarms))
            row += [f"{np.mean([bool(a) for a in false_alarms]):.1%}", f"{np.mean(caught):.1%}"]
        table.append(row)
    headers = ["window rows", "windows"]
    for margin in margins:
        headers += [f"false alarms (margin {margin:g})", f"amount x{args.shift:g} caught (margin {margin:g})"]
    print(tabulate(table, headers=headers, tablefmt="pipe", colalign=("right",) * len(headers)))
    total = len(SIZES) * args.windows
    print(
        f"\n{total} clean windows in all; shipped margin {settings.drift_chance_margin:g}, "
        f"{settings.drift_calibration_resamples} resamples, floors {settings.drift_numeric_threshold:g} (numeric), "
        f"{settings.drift_categorical_threshold:g} (flags), {settings.missing_rate_max_increase:g} (missing), "
        f"{settings.decision_rate_max_change:g} (decisions)"
    )
    print(
        "checks behind the false alarms at the shipped margin: "
        + (", ".join(f"{name} ({n})" for name, n in causes.most_common(8)) or "none")
    )
    print(f"total runtime {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
