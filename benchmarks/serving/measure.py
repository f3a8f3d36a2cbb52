"""One server, measured alone: start it, check its first answer, load it at each concurrency, batch it."""

from __future__ import annotations

import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
import redis

from benchmarks.serving.bodies import Fallback, Payload
from benchmarks.serving.load import first_request, run_batch, run_wrk
from benchmarks.serving.meters import CpuMeter, tree_memory_mib, wait_until_quiet
from benchmarks.serving.results import LoadResult, ServerResult
from benchmarks.serving.servers import SERVER_LABELS, ServerSpec, describe_answer, log_problems, log_tail, running
from benchmarks.support.errors import SetupError
from benchmarks.support.redis_db import restore_db

REPORT_WAIT_S = 1.5  # waits for a quiet machine longer than its one-second sample are worth a line


@dataclass(frozen=True)
class LoadPlan:
    """The command line's load options."""

    concurrency: list[int]
    duration: float
    warmup: float
    wait_quiet: float
    batch_calls: int
    batch_size: int


@dataclass(frozen=True)
class OnlineStore:
    """The claimed Redis db, its post-materialisation snapshot, and the local server's pid (or None)."""

    client: redis.Redis
    snapshot: dict[bytes, bytes]
    pid: int | None

    def reset(self) -> None:
        """Back to the snapshot: the scorer pushes a customer state per payment, and a replayed
        payment grows its customer's state, so every run starts from the same online store."""
        restore_db(self.client, self.snapshot)


def benchmark_server(
    spec: ServerSpec,
    base_url: str,
    payload: Payload,
    plan: LoadPlan,
    store: OnlineStore,
    logs: Path,
    fallback: Fallback | None = None,
) -> ServerResult:
    """Everything the benchmark measures of one server; a server that fails says why in `failure`."""
    result = ServerResult(spec.name)
    log = logs / f"{spec.name}.log"
    store.reset()
    print(f"\n{SERVER_LABELS[spec.name]}: {spec.describe()}", flush=True)
    started = time.perf_counter()
    try:
        with running(spec, log, base_url) as process:
            print(f"  answering /health after {time.perf_counter() - started:.1f} s", flush=True)
            status, text = first_request(base_url, spec.path, payload.check_body)
            if status != 200 and fallback is not None:
                payload, result.note = fallback(status, text)
                print(f"  {result.note}", flush=True)
                status, text = first_request(base_url, spec.path, payload.check_body)
            if status != 200:
                result.failure = f"first POST {spec.path} answered {status}: {text[:500]}"
                return result
            result.first_answer = describe_answer(spec.name, text)
            print(f"  first answer: {result.first_answer}", flush=True)
            for concurrency in plan.concurrency:
                load = measure_load(process, f"{base_url}{spec.path}", payload.bodies, concurrency, plan, store)
                result.loads.append(load)
            result.peak_rss_mib, result.pss_mib = tree_memory_mib(process.pid)
            if plan.batch_calls > 0:
                store.reset()
                result.batch = run_batch(base_url, spec.batch_path, payload.batch, plan.batch_size, plan.batch_calls)
                result.batch_peak_rss_mib = tree_memory_mib(process.pid)[0]
                batch = result.batch
                print(
                    "  batch: "
                    + (f"{batch.tx_per_s:,.0f} tx/s" if batch.tx_per_s else "-")
                    + (f" ({batch.note})" if batch.note else ""),
                    flush=True,
                )
    except (SetupError, httpx.HTTPError) as error:
        tail = log_tail(log)
        result.failure = (f"{error}" if isinstance(error, SetupError) else f"{type(error).__name__}: {error}") + (
            f"\n--- last lines of its log ---\n{tail}" if tail else ""
        )
    finally:
        result.log_problems = log_problems(log)
    return result


def measure_load(
    process: subprocess.Popen[bytes], url: str, bodies: Path, concurrency: int, plan: LoadPlan, store: OnlineStore
) -> LoadResult:
    """One wrk run at `concurrency` after a warm-up, from a restored online store on a quiet machine."""
    store.reset()
    if plan.wait_quiet > 0:
        waited = wait_until_quiet(process.pid, store.pid, plan.wait_quiet)
        if waited > REPORT_WAIT_S:
            print(f"  waited {waited:.0f} s for other processes to leave the CPU", flush=True)
    if plan.warmup > 0:
        run_wrk(url, bodies, concurrency, plan.warmup)
    with CpuMeter(process.pid, store.pid) as cpu:
        load = run_wrk(url, bodies, concurrency, plan.duration)
    load.server_cores, load.other_cores = cpu.server_cores, cpu.other_cores
    print(
        f"  c={concurrency}: {load.rps:,.1f} req/s, p50 {load.p50_ms:.2f} ms, "
        f"p99 {load.p99_ms:.2f} ms, p99.9 {load.p999_ms:.2f} ms, errors {load.errors:,} "
        f"of {load.requests:,}; CPU: server {load.server_cores:.2f} cores, "
        f"other processes {load.other_cores:.2f}" + (f"  [{load.detail}]" if load.requests == 0 else ""),
        flush=True,
    )
    return load
