"""The benchmark's data, prepared through the platform's own CLI as `fraud demo` does.

Each step is a `fraud` subprocess on a private data dir: simulate (the demo's size and
seed), hold the last day back as "live" payments, ingest the history, build, apply and
materialise the features, train, approve and promote. MLflow is the default SQLite store
inside the data dir (MLFLOW_TRACKING_URI unset).
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from benchmarks.support.errors import SetupError
from contracts.settings import REPO_ROOT

DEMO_SEED = 29  # fraud/demo.py's: its live day holds payments of every fraud scenario
# Variables the run sets itself: an outer value would point the CLI at another store.
OWN_VARIABLES = ("MLFLOW_TRACKING_URI", "FRAUD_FEAST_REDIS", "FRAUD_DATA_DIR", "REDIS_URL")
BENCHMARK_USER = "benchmarks.serving"  # who approves and promotes, in the registry's audit trail


@dataclass
class Prepared:
    """The prepared data dir, as far as the benchmark needs to know it."""

    live: pd.DataFrame  # the held-back live day, in time order
    n_simulated: int
    n_history: int
    model_version: str
    step_seconds: dict[str, float]


def platform_env(data_dir: Path, redis_url: str) -> dict[str, str]:
    """This process's environment, pointed at the private data dir and the claimed Redis db."""
    env = {k: v for k, v in os.environ.items() if k not in OWN_VARIABLES}
    env.update({"FRAUD_DATA_DIR": str(data_dir), "REDIS_URL": redis_url, "PYTHONUNBUFFERED": "1"})
    return env


def fraud_command(*args: str) -> list[str]:
    """The `fraud` CLI of this checkout, run by this interpreter."""
    return [sys.executable, "-m", "fraud", *args]


def fraud(args: list[str], env: dict[str, str], log: Path) -> str:
    """Run one `fraud` command; its output goes to the log and is returned; failure stops the run."""
    completed = subprocess.run(
        fraud_command(*args), env=env, cwd=REPO_ROOT, capture_output=True, text=True, check=False
    )
    with log.open("a") as handle:
        handle.write(f"$ fraud {' '.join(args)}\n{completed.stdout}{completed.stderr}\n")
    if completed.returncode != 0:
        raise SetupError(
            f"`fraud {' '.join(args)}` exited {completed.returncode}:\n{(completed.stdout + completed.stderr)[-3000:]}"
        )
    return completed.stdout


def prepare(data_dir: Path, env: dict[str, str], log: Path) -> Prepared:
    """Run the demo's steps through the CLI; returns the live day and what each step took."""
    steps: dict[str, float] = {}

    def step(name: str, args: list[str]) -> str:
        print(f"  fraud {' '.join(args)}", flush=True)
        started = time.perf_counter()
        out = fraud(args, env, log)
        steps[name] = time.perf_counter() - started
        return out

    simulated = data_dir / "simulated.parquet"
    step("simulate", ["simulate", "--seed", str(DEMO_SEED), "--out", str(simulated)])
    transactions = pd.read_parquet(simulated)
    live_day = transactions["tx_datetime"].max().floor("D")
    history = transactions[transactions["tx_datetime"] < live_day]
    live = transactions[transactions["tx_datetime"] >= live_day].sort_values("tx_datetime")
    history_file = data_dir / "incoming" / "history.parquet"
    history_file.parent.mkdir(parents=True, exist_ok=True)
    history.to_parquet(history_file, index=False)
    step("ingest", ["ingest", str(history_file)])
    step("features build", ["features", "build"])
    step("features apply", ["features", "apply"])
    step("features materialize", ["features", "materialize"])
    version = registered_version(step("train", ["train"]))
    step(
        "model approve",
        [
            "model",
            "approve",
            version,
            "--by",
            BENCHMARK_USER,
            "--note",
            "serving benchmark: gate passed on simulated data",
        ],
    )
    step("model promote", ["model", "promote", version, "--by", BENCHMARK_USER, "--reason", "serving benchmark"])
    return Prepared(
        live=live, n_simulated=len(transactions), n_history=len(history), model_version=version, step_seconds=steps
    )


def registered_version(train_output: str) -> str:
    """The model version `fraud train` says it registered."""
    # The console may wrap the line: match on the output with its whitespace collapsed.
    found = re.search(r"registered \S+ version (\d+)", " ".join(train_output.split()))
    if not found:
        raise SetupError(f"could not read the registered version from `fraud train`:\n{train_output[-2000:]}")
    return found.group(1)


def feast_env(env: dict[str, str]) -> dict[str, str]:
    """`eval "$(fraud env)"`: `env` plus the variables feature_store.yaml expands, for Feast's own CLI."""
    completed = subprocess.run(
        fraud_command("env"), env=env, cwd=REPO_ROOT, capture_output=True, text=True, check=False
    )
    if completed.returncode != 0:
        raise SetupError(f"`fraud env` exited {completed.returncode}:\n{completed.stderr[-3000:]}")
    exported = dict(
        shlex.split(line.removeprefix("export "))[0].split("=", 1)
        for line in completed.stdout.splitlines()
        if line.startswith("export ")
    )
    if "FRAUD_FEAST_REDIS" not in exported:
        raise SetupError(f"`fraud env` printed no FRAUD_FEAST_REDIS:\n{completed.stdout}")
    return {**env, **exported}
