"""Operated day after day: do served features stay equal to training's, and does drift stay quiet?

    .venv/bin/python -m benchmarks.daily_replay [--customers 1000] [--terminals 2000]
        [--history-days 61] [--live-days 14] [--shift-last 1.5] [--redis-url redis://127.0.0.1:6379/4]

A world of simulated payments, as an operator runs it with the platform's own pieces (the
test tests/test_daily_operation.py runs the same on a small world):

1. the first `--history-days` days go through the daily job (`fraud features refresh`:
   inbox -> contract check -> features -> online store), then `fraud train`, approve, promote;
2. each live day: its payments are scored over HTTP by `fraud serve` (POST /score/batch,
   wave k holding every customer's k-th payment, `fraud worker` folding each wave into the
   customer states before the next); at the day's end its file goes through the daily job;
   then `fraud skew-check` (served features against the offline ones of the same
   payments) and the drift job at the shipped settings, over the day and over its
   10:00-16:00 (a window shorter than a day);
3. the last live day's amounts are multiplied by `--shift-last` (in the scored payments and
   in the day's file alike): drift should say so, skew should not.

Prints one row per live day: payments, features that differ between serving and training
(and the worst one's share of payments), per drift window its alerts and the largest
distance against its threshold, and the daily job's time. Redis: db 4 by default, claimed and flushed like the
other benchmarks'; everything else in a temporary FRAUD_DATA_DIR.
"""

from __future__ import annotations

import argparse
import math
import shutil
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import httpx
import pandas as pd
import redis
from feast import FeatureStore
from tabulate import tabulate

from contracts.events import latest_events
from contracts.settings import Settings
from data.raw_store import RawStore
from data.simulate import SimulationConfig, simulate_transactions
from feature_repo.store import feature_store
from fraud.refresh import refresh_features
from fraud.scorer_process import scorer_process
from monitoring.checks import FEATURE_DRIFT, PREDICTION_DRIFT, Window
from monitoring.drift import DriftJobError, run_drift
from monitoring.skew import skew_report
from serving.replay import payment_bodies, replay
from serving.worker import WorkerConfig, open_worker
from training.lifecycle import approve, promote
from training.train import train_candidate

DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/4"
START = date(2025, 1, 1)
DAYTIME = (pd.Timedelta(hours=10), pd.Timedelta(hours=16))


@dataclass(frozen=True)
class DayReport:
    day: date
    payments: int
    features_differing: int
    worst_feature: str
    worst_share: float
    alerts: list[str]  # the drift job over the whole day
    largest: str  # its alerting check nearest its threshold (report-only inputs left out)
    daytime_alerts: list[str]  # the same over the day's DAYTIME hours: a window shorter than a day
    daytime_largest: str
    refresh_seconds: float


def operate(
    settings: Settings, transactions: pd.DataFrame, history_days: int, shift_last: float = 1.0
) -> Iterator[DayReport]:
    """Build the world from its history, then operate it day by day (see the module docstring)."""
    start = transactions["tx_datetime"].min().floor("D")
    live_start = start + pd.Timedelta(days=history_days)
    days = sorted({d for d in transactions["tx_datetime"].dt.floor("D") if d >= live_start})
    drop_in_inbox(settings, transactions[transactions["tx_datetime"] < live_start], "history")
    refresh_features(settings)
    store = feature_store(settings)
    trained = train_candidate(settings, store, RawStore(settings).load())
    approve(settings, trained.version, by="daily replay", note="gate passed on simulated history")
    promote(settings, trained.version, by="daily replay", reason="daily replay")
    worker = open_worker(settings, WorkerConfig(consumer="daily-replay"))
    client = redis.Redis.from_url(settings.redis_url)
    with scorer_process(settings) as base_url, httpx.Client(base_url=base_url, timeout=120) as http:
        for index, day in enumerate(days):
            payments = transactions[transactions["tx_datetime"].dt.floor("D") == day].copy()
            if index == len(days) - 1 and shift_last != 1.0:
                payments["tx_amount"] = (payments["tx_amount"] * shift_last).round(2)
            answered = list(replay(http, worker, payment_bodies(payments)))
            drop_in_inbox(settings, payments, day.strftime("%Y-%m-%d"))
            started = time.perf_counter()
            refresh_features(settings)
            refreshed = time.perf_counter() - started
            yield day_report(settings, store, client, day, len(answered), refreshed)
    client.close()


def day_report(
    settings: Settings,
    store: FeatureStore,
    client: redis.Redis,
    day: pd.Timestamp,
    payments: int,
    refresh_seconds: float,
) -> DayReport:
    """The skew check over one operated day, and the drift job over the day and its daytime hours."""
    events = latest_events(client, settings, payments)
    skew = skew_report(store, store.get_feature_service(settings.feature_service), events)
    worst = skew.sort_values("mismatch_share", ascending=False).iloc[0]
    alerts, largest = drift_verdict(settings, Window(day.to_pydatetime(), (day + pd.Timedelta(days=1)).to_pydatetime()))
    daytime = Window((day + DAYTIME[0]).to_pydatetime(), (day + DAYTIME[1]).to_pydatetime())
    daytime_alerts, daytime_largest = drift_verdict(settings, daytime)
    return DayReport(
        day=day.date(),
        payments=payments,
        features_differing=int((skew["mismatches"] > 0).sum()),
        worst_feature=str(worst["feature"]),
        worst_share=float(worst["mismatch_share"]),
        alerts=alerts,
        largest=largest,
        daytime_alerts=daytime_alerts,
        daytime_largest=daytime_largest,
        refresh_seconds=refresh_seconds,
    )


def drift_verdict(settings: Settings, window: Window) -> tuple[list[str], str]:
    """The drift job's alerts over a window, and its alerting check nearest its threshold."""
    try:
        run = run_drift(settings, window, record=False)
    except DriftJobError as error:
        return [], f"no verdict ({error})"
    drift = [
        c for c in run.checks if c.kind in (FEATURE_DRIFT, PREDICTION_DRIFT) and c.alerting and not math.isnan(c.value)
    ]
    top = max(drift, key=lambda c: c.value / c.threshold)
    return [f"{c.kind}:{c.feature}" for c in run.alerts], f"{top.feature} {top.value:.3f} / {top.threshold:.3f}"


def drop_in_inbox(settings: Settings, payments: pd.DataFrame, name: str) -> Path:
    """A day's file as it arrives: the raw contract, labels included (the simulator's ground truth)."""
    settings.inbox_dir.mkdir(parents=True, exist_ok=True)
    path = settings.inbox_dir / f"{name}.parquet"
    payments.to_parquet(path, index=False)
    return path


def simulated_world(customers: int, terminals: int, days: int, seed: int = 5) -> pd.DataFrame:
    return simulate_transactions(
        SimulationConfig(n_customers=customers, n_terminals=terminals, n_days=days, start_date=START, seed=seed)
    )


def main() -> None:
    from benchmarks.support.errors import SetupError
    from benchmarks.support.redis_db import claimed_redis_db

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--customers", type=int, default=1000)
    parser.add_argument("--terminals", type=int, default=2000)
    parser.add_argument("--history-days", type=int, default=61)
    parser.add_argument("--live-days", type=int, default=14)
    parser.add_argument("--shift-last", type=float, default=1.5, help="amounts of the last live day times this")
    parser.add_argument("--redis-url", default=DEFAULT_REDIS_URL)
    args = parser.parse_args()
    started = time.perf_counter()
    workdir = Path(tempfile.mkdtemp(prefix="fraud-bench-daily-"))
    rows = []
    try:
        with claimed_redis_db(args.redis_url, workdir) as (_, redis_url):
            settings = Settings(
                data_dir=workdir / "data",
                redis_url=redis_url,
                mlflow_tracking_uri="",
                scoring_stream="fraud:bench-daily:events",
            )
            world = simulated_world(args.customers, args.terminals, args.history_days + args.live_days)
            for report in operate(settings, world, args.history_days, args.shift_last):
                rows.append(
                    [
                        str(report.day),
                        f"{report.payments:,}",
                        f"{report.features_differing} of 21",
                        f"{report.worst_feature} {report.worst_share:.1%}" if report.features_differing else "-",
                        ", ".join(report.alerts) or "none",
                        report.largest,
                        ", ".join(report.daytime_alerts) or "none",
                        report.daytime_largest,
                        f"{report.refresh_seconds:.1f}",
                    ]
                )
                print(" | ".join(rows[-1]), flush=True)
    except SetupError as error:
        raise SystemExit(f"error: {error}") from error
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    print()
    print(
        tabulate(
            rows,
            headers=[
                "day",
                "payments",
                "features differing",
                "worst (share of payments)",
                "drift alerts (day)",
                "largest distance / threshold (day)",
                "drift alerts (10-16 h)",
                "largest (10-16 h)",
                "daily job s",
            ],
            tablefmt="pipe",
        )
    )
    print(
        f"\ntotal runtime {time.perf_counter() - started:.0f} s "
        f"({args.customers:,} customers, {args.history_days} days of history, {args.live_days} live days, "
        f"last day's amounts x{args.shift_last:g})"
    )


if __name__ == "__main__":
    main()
