"""Benchmark: the daily job (`fraud features refresh`) on the book's data, one new day at a time.

    .venv/bin/python -m benchmarks.refresh_book [--new-days 1] [--redis-url redis://127.0.0.1:6379/4]

The `--preset handbook` data (about 1.75 M payments) goes through the daily job in two
drops: every day but the last `--new-days` first (a full build, the first load of the
online store), then the last days as the day's file. Prints each run's steps (ingest,
features, materialise) and, as the baseline in the same run, a full rebuild of the offline
tables from all the data: what a daily job without the incremental build would cost.
Redis: db 4 by default, claimed and flushed like the other benchmarks'.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

import pandas as pd

from contracts.settings import Settings
from data.raw_store import RawStore
from data.simulate import SimulationConfig, simulate_transactions
from feature_repo.pipeline import build_offline_tables
from fraud.refresh import RefreshReport, refresh_features

DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/4"


def run(settings: Settings, frame: pd.DataFrame, name: str) -> tuple[RefreshReport, float]:
    settings.inbox_dir.mkdir(parents=True, exist_ok=True)
    frame.to_parquet(settings.inbox_dir / f"{name}.parquet", index=False)
    started = time.perf_counter()
    report = refresh_features(settings)
    return report, time.perf_counter() - started


def describe(label: str, report: RefreshReport, seconds: float) -> str:
    if report.build is None:
        raise SystemExit(f"error: {label}: the daily job ingested nothing ({report.rejected})")
    kind = "incremental" if report.build.incremental else "full"
    steps = ", ".join(f"{step} {s:.1f} s" for step, s in report.seconds.items())
    loaded = ", ".join(f"{v.view} {v.online:,}/{v.entities:,}" for v in report.loaded)
    return f"{label}: {kind} build, {seconds:.1f} s ({steps}); served online/with rows: {loaded}"


def main() -> None:
    from benchmarks.support.errors import SetupError
    from benchmarks.support.redis_db import claimed_redis_db

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--new-days", type=int, default=1)
    parser.add_argument("--redis-url", default=DEFAULT_REDIS_URL)
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="fraud-bench-refresh-"))
    try:
        with claimed_redis_db(args.redis_url, workdir) as (_, redis_url):
            settings = Settings(data_dir=workdir / "data", redis_url=redis_url, mlflow_tracking_uri="")
            frame = simulate_transactions(SimulationConfig.handbook())
            cut = frame["tx_datetime"].max().floor("D") - pd.Timedelta(days=args.new_days - 1)
            new = frame["tx_datetime"] >= cut
            print(f"{len(frame):,} payments; history {int((~new).sum()):,}, new {int(new.sum()):,} (from {cut})")
            print(describe("history", *run(settings, frame[~new], "history")), flush=True)
            report, seconds = run(settings, frame[new], "new")
            print(describe("new day(s)", report, seconds), flush=True)
            started = time.perf_counter()
            build_offline_tables(settings, RawStore(settings).load())
            full = time.perf_counter() - started
            features = report.seconds["features"]
            print(
                f"baseline, full rebuild of the offline tables: {full:.1f} s; incremental features step "
                f"{features:.1f} s = {features / full:.2f}x of it; whole daily job {seconds:.1f} s"
            )
    except SetupError as error:
        raise SystemExit(f"error: {error}") from error
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
