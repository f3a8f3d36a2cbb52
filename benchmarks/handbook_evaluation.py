"""Benchmark: features and the Handbook evaluation on the book's full data (about 1.75 M payments).

Measures, each in its own process, wall time and peak memory (max RSS) of:
  1. simulating and ingesting the `--preset handbook` data,
  2. `fraud features build` + `fraud evaluate --protocol handbook --train-start 2018-07-25`
     as the platform runs it (DuckDB may spill past FRAUD_DUCKDB_MEMORY_LIMIT),
  3. the same evaluation with DuckDB's memory unbounded: the baseline.
Prints the figures, the evaluation metrics, and the ratios ours / baseline.

    .venv/bin/python -m benchmarks.handbook_evaluation [--model xgboost] [--keep]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, cast

if TYPE_CHECKING:
    from training.models import ModelKind

BOOK = {"xgboost": (0.862, 0.639, 0.273), "logistic": (0.871, 0.606, 0.291), "random_forest": (0.867, 0.658, 0.287)}


def child(phase: str, model: str) -> None:
    """Run one phase in this process and print its wall time, peak memory and result as JSON."""
    import pandas as pd

    from contracts.settings import Settings
    from data.raw_store import RawStore

    started = time.perf_counter()
    settings = Settings()
    result: Mapping[str, object] = {}
    if phase == "data":
        from data.simulate import SimulationConfig, simulate_transactions

        stored = RawStore(settings).ingest_frame(simulate_transactions(SimulationConfig.handbook()), "benchmark")
        result = {"rows": stored.rows, "frauds": stored.frauds}
    else:
        from feature_repo.pipeline import build_offline_tables
        from feature_repo.store import apply_definitions, feature_store, limit_offline_memory
        from training.evaluate import evaluate_handbook

        # The phase measured: DuckDB's memory limit (FRAUD_DUCKDB_MEMORY_LIMIT) is the
        # difference between the platform's run and the baseline.
        limit_offline_memory(settings)
        transactions = RawStore(settings).load()
        build_offline_tables(settings, transactions)
        store = feature_store(settings)
        apply_definitions(store, settings)
        result = evaluate_handbook(
            settings, store, transactions, pd.Timestamp("2018-07-25"), cast("ModelKind", model)
        )  # argparse allowed only these
    peak_gb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2
    print(json.dumps({"seconds": time.perf_counter() - started, "peak_gb": peak_gb, **result}))


def measure(phase: str, model: str, env: dict[str, str]) -> dict:
    """Run one phase in a child process (its peak memory is its own) and return what it printed."""
    completed = subprocess.run(
        [sys.executable, "-m", "benchmarks.handbook_evaluation", "--child", phase, "--model", model],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    if completed.returncode != 0:
        raise SystemExit(f"phase {phase} failed:\n{completed.stderr[-3000:]}")
    return json.loads(completed.stdout.strip().splitlines()[-1])


def main() -> None:
    """Measure the phases, ours and the baseline, and print the comparison."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--child", choices=["data", "evaluate"])
    parser.add_argument("--model", default="xgboost", choices=sorted(BOOK))
    parser.add_argument("--keep", action="store_true", help="keep the benchmark's data folder")
    args = parser.parse_args()
    if args.child:
        child(args.child, args.model)
        return

    data_dir = Path(tempfile.mkdtemp(prefix="fraud-bench-"))
    env = {**os.environ, "FRAUD_DATA_DIR": str(data_dir)}
    try:
        data = measure("data", args.model, env)
        ours = measure("evaluate", args.model, {**env, "FRAUD_DUCKDB_MEMORY_LIMIT": "3GB"})
        baseline = measure("evaluate", args.model, {**env, "FRAUD_DUCKDB_MEMORY_LIMIT": "20GB"})
    finally:
        if not args.keep:
            shutil.rmtree(data_dir, ignore_errors=True)

    print(
        f"\nHandbook data: {data['rows']:,} payments, {data['frauds']:,} frauds "
        f"(simulate + contract check + ingest: {data['seconds']:.1f} s, peak {data['peak_gb']:.2f} GB)\n"
    )
    print(f"{'features + evaluation':<34}{'wall s':>10}{'peak GB':>10}")
    for name, run in (("platform (DuckDB limit 3 GB)", ours), ("baseline (DuckDB unbounded)", baseline)):
        print(f"{name:<34}{run['seconds']:>10.1f}{run['peak_gb']:>10.2f}")
    print(
        f"{'ratio platform / baseline':<34}{ours['seconds'] / baseline['seconds']:>10.2f}"
        f"{ours['peak_gb'] / baseline['peak_gb']:>10.2f}\n"
    )
    book = BOOK[args.model]
    print(f"{args.model:<14}{'AUC ROC':>10}{'AP':>10}{'CP@100':>10}{'n_train':>10}{'n_test':>10}")
    print(
        f"{'platform':<14}{ours['auc_roc']:>10.3f}{ours['average_precision']:>10.3f}"
        f"{ours['card_precision_at_100']:>10.3f}{ours['n_train']:>10,}{ours['n_test']:>10,}"
    )
    print(f"{'book':<14}{book[0]:>10.3f}{book[1]:>10.3f}{book[2]:>10.3f}{67240:>10,}{58264:>10,}")


if __name__ == "__main__":
    main()
