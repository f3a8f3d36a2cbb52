"""Benchmark: the cost of the reasons (per-feature contributions) on the scoring path.

Trains a model of the platform's shape (XGBOOST_PARAMS, 21 inputs, 100 rounds) on random
data, then times, for 1 row and for 1,000 rows:
  - serving.explain.Contributions (what the scorer uses),
  - XGBoost's approximate contributions (`pred_contribs=True, approx_contribs=True`), the same numbers,
  - XGBoost's exact TreeSHAP (`pred_contribs=True`),
  - and the prediction itself (`inplace_predict`), for scale.
Prints microseconds per call and the ratios against XGBoost. The scorer walks the trees
for any number of rows: faster than XGBoost's approx_contribs for 1 row and for 1,000.

    .venv/bin/python -m benchmarks.reasons
"""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np
import xgboost as xgb

from serving.explain import Contributions
from training.models import XGBOOST_PARAMS, XGBOOST_ROUNDS


def per_call_us(fn: Callable[[], object], seconds: float = 1.0) -> float:
    """Microseconds per call of `fn`, over about `seconds` of calls after one warm-up call."""
    fn()
    calls, started = 0, time.perf_counter()
    while time.perf_counter() - started < seconds:
        fn()
        calls += 1
    return (time.perf_counter() - started) / calls * 1e6


def main() -> None:
    """Train the model, time each way to the contributions at 1 and 1,000 rows, print the ratios."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(20_000, 21))
    y = (x[:, 0] + x[:, 1] * x[:, 2] + rng.normal(scale=0.5, size=len(x)) > 1.5).astype(int)
    booster = xgb.train({**XGBOOST_PARAMS, "nthread": 2}, xgb.DMatrix(x, label=y), XGBOOST_ROUNDS)
    booster.set_param({"nthread": 1})
    ours = Contributions(booster)
    print(f"model: {XGBOOST_ROUNDS} trees, depth <= {XGBOOST_PARAMS['max_depth']}, 21 inputs, 1 thread\n")
    print(f"{'':36}{'1 row (us)':>14}{'1,000 rows (us)':>18}")
    rows = {1: rng.normal(size=(1, 21)), 1000: rng.normal(size=(1000, 21))}
    results = {}
    for name, make in (
        ("platform: serving.explain (walk)", lambda m: lambda: ours(m)),
        (
            "xgboost approx_contribs",
            lambda m: lambda: booster.predict(xgb.DMatrix(m), pred_contribs=True, approx_contribs=True),
        ),
        ("xgboost exact TreeSHAP", lambda m: lambda: booster.predict(xgb.DMatrix(m), pred_contribs=True)),
        ("prediction (inplace_predict)", lambda m: lambda: booster.inplace_predict(m)),
    ):
        results[name] = {n: per_call_us(make(m)) for n, m in rows.items()}
        print(f"{name:36}{results[name][1]:>14,.1f}{results[name][1000]:>18,.1f}")
    mine = results["platform: serving.explain (walk)"]
    for baseline in ("xgboost approx_contribs", "xgboost exact TreeSHAP"):
        print(
            f"ratio platform / {baseline:26}{mine[1] / results[baseline][1]:>8.2f}"
            f"{mine[1000] / results[baseline][1000]:>18.2f}"
        )
    same = np.abs(
        ours(rows[1000]) - booster.predict(xgb.DMatrix(rows[1000]), pred_contribs=True, approx_contribs=True)[:, :-1]
    ).max()
    print(f"\nlargest difference from XGBoost's approx_contribs over 1,000 rows: {same:.2e}")


if __name__ == "__main__":
    main()
