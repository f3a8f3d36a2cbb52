"""`python -m benchmarks.serving`: the command line, and one run from the temp dir to the exit code.

What the benchmark does and how to run it: benchmarks/serving/__init__.py (also `--help`).
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path

from benchmarks import serving
from benchmarks.serving.bodies import feast_fallback, payloads
from benchmarks.serving.load import wrk_threads
from benchmarks.serving.measure import LoadPlan, OnlineStore, benchmark_server
from benchmarks.serving.prepare import DEMO_SEED, Prepared, feast_env, platform_env, prepare
from benchmarks.serving.report import report
from benchmarks.serving.results import ServerResult
from benchmarks.serving.servers import SERVER_LABELS, server_specs
from benchmarks.support.errors import SetupError
from benchmarks.support.processes import interrupt_on_signals
from benchmarks.support.redis_db import claimed_redis_db, local_redis_pid, snapshot_db
from contracts.net import free_port

DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/7"
MAX_BATCH = 1000  # the scorer's /score/batch limit
EXIT_SERVER_FAILED, EXIT_SETUP_FAILED, EXIT_INTERRUPTED = 1, 2, 130


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The options, checked; `concurrency` and `servers` come back as lists."""
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.serving",
        description=serving.__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--workers", type=int, default=1, help="worker processes of every server (default 1)")
    parser.add_argument("--duration", type=float, default=10, help="seconds of each measured run (default 10)")
    parser.add_argument("--warmup", type=float, default=3, help="seconds of warm-up before each run (default 3)")
    parser.add_argument("--concurrency", default="1,8", help="connections per run, comma-separated (default 1,8)")
    parser.add_argument("--bodies", type=int, default=500, help="distinct request bodies wrk cycles through")
    parser.add_argument("--batch-calls", type=int, default=10, help="timed batch calls per server (0: skip)")
    parser.add_argument("--batch-size", type=int, default=1000, help="payments per batch call (max 1000)")
    parser.add_argument(
        "--wait-quiet",
        type=float,
        default=60,
        help="before each run, wait up to this many seconds for other processes to go "
        "below 0.15 cores (default 60; 0: don't wait)",
    )
    parser.add_argument("--servers", default="ours,feast,bare", help="which servers, comma-separated")
    parser.add_argument(
        "--redis-url",
        default=os.environ.get("FRAUD_BENCH_REDIS_URL", DEFAULT_REDIS_URL),
        help=f"Redis server and db the run claims (default {DEFAULT_REDIS_URL})",
    )
    args = parser.parse_args(argv)
    args.concurrency = [int(c) for c in args.concurrency.split(",") if c.strip()]
    args.servers = [s.strip() for s in args.servers.split(",") if s.strip()]
    unknown = set(args.servers) - set(SERVER_LABELS)
    if unknown or not args.servers:
        parser.error(f"--servers takes some of {', '.join(SERVER_LABELS)}; got {', '.join(unknown) or 'none'}")
    if args.workers < 1 or args.duration < 1 or not args.concurrency or min(args.concurrency) < 1:
        parser.error("--workers, --duration and every --concurrency must be at least 1")
    if not 1 <= args.batch_size <= MAX_BATCH:
        parser.error(f"--batch-size must be between 1 and {MAX_BATCH}")
    return args


def load_plan(args: argparse.Namespace) -> LoadPlan:
    return LoadPlan(
        concurrency=args.concurrency,
        duration=args.duration,
        warmup=args.warmup,
        wait_quiet=args.wait_quiet,
        batch_calls=args.batch_calls,
        batch_size=args.batch_size,
    )


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print its report; the exit code says whether every server did its job."""
    args = parse_args(argv)
    if not shutil.which("wrk"):
        print("error: wrk is not installed: apt-get install -y wrk (or run `make bench-serving`)", file=sys.stderr)
        return EXIT_SETUP_FAILED
    interrupt_on_signals()
    run_started = time.perf_counter()
    workdir = Path(tempfile.mkdtemp(prefix="fraud-bench-serving-"))
    try:
        results, context = run(args, workdir)
    except SetupError as error:
        print(f"\nerror: {error}", file=sys.stderr)
        return EXIT_SETUP_FAILED
    except KeyboardInterrupt:
        print("\ninterrupted: stopped every process the benchmark started", file=sys.stderr)
        return EXIT_INTERRUPTED
    finally:
        shutil.rmtree(workdir, ignore_errors=True)

    context["total runtime"] = f"{time.perf_counter() - run_started:.0f} s"
    print(report(results, load_plan(args), args.workers, context))
    failed = {name: result.failures() for name, result in results.items() if result.failures()}
    for name, why in failed.items():
        print(f"\nFAILED: {SERVER_LABELS[name]}: {'; '.join(why)}", file=sys.stderr)
    return EXIT_SERVER_FAILED if failed else 0


def run(args: argparse.Namespace, workdir: Path) -> tuple[dict[str, ServerResult], dict[str, str]]:
    """Prepare the data in `workdir`, measure each server on the claimed Redis db; (results, context lines)."""
    data_dir, logs = workdir / "data", workdir / "logs"
    data_dir.mkdir()
    logs.mkdir()
    results: dict[str, ServerResult] = {}
    with claimed_redis_db(args.redis_url, workdir) as (client, redis_url):
        print(f"serving benchmark: data in {data_dir}, Redis {redis_url}, --workers {args.workers}")
        env = platform_env(data_dir, redis_url)
        print("preparing the data dir through the platform's CLI (as `fraud demo` does):", flush=True)
        prep_started = time.perf_counter()
        prepared = prepare(data_dir, env, logs / "setup.log")
        prep_seconds = time.perf_counter() - prep_started
        fenv = feast_env(env)
        store = OnlineStore(client, snapshot_db(client), local_redis_pid(client))

        live = list(prepared.live.itertuples(index=False))
        if not live:
            raise SetupError("the simulated live day holds no payments")
        step = max(1, len(live) // args.bodies)
        sample = live[::step][: args.bodies]
        batch_rows = [live[i % len(live)] for i in range(args.batch_size)]
        payload = payloads(workdir, sample, batch_rows)

        ports = {name: free_port() for name in SERVER_LABELS}
        specs = server_specs(args.workers, env, fenv, ports)
        plan = load_plan(args)
        for name in args.servers:
            fallback = feast_fallback(fenv, workdir, sample, batch_rows) if name == "feast" else None
            result = benchmark_server(
                specs[name], f"http://127.0.0.1:{ports[name]}", payload[name], plan, store, logs, fallback
            )
            results[name] = result
            if result.failure:
                print(f"  FAILED: {result.failure}", flush=True)
    context = run_context(args, prepared, len(live), len(sample), prep_seconds)
    return results, context


def run_context(
    args: argparse.Namespace, prepared: Prepared, n_live: int, n_bodies: int, prep_seconds: float
) -> dict[str, str]:
    """The report's opening lines: the machine, the data, the model, the load, the setup times."""
    return {
        "machine": f"{os.cpu_count()} cores, {platform.processor() or platform.machine()}, "
        f"Python {platform.python_version()}; wrk and the server share the cores",
        "data": f"`fraud simulate --seed {DEMO_SEED}` (demo size): {prepared.n_simulated:,} payments; "
        f"{prepared.n_history:,} ingested, the last day's {n_live:,} held back as live; "
        f"wrk cycles through {n_bodies} of them",
        "model": f"fraud_detector v{prepared.model_version} (fraud train, approved, promoted to champion)",
        "load": "wrk "
        + ", ".join(f"-t{wrk_threads(c)} -c{c}" for c in args.concurrency)
        + f", -d{args.duration:g}s, {args.warmup:g} s warm-up; Redis restored to the "
        "post-materialisation snapshot before each run",
        "setup": f"{prep_seconds:.0f} s ("
        + ", ".join(f"{k} {v:.0f} s" for k, v in prepared.step_seconds.items())
        + ")",
    }


if __name__ == "__main__":
    sys.exit(main())
