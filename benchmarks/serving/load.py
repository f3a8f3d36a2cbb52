"""The load: wrk at a fixed concurrency, one first request, sequential batch calls."""

from __future__ import annotations

import json
import statistics
import subprocess
import time
from pathlib import Path
from typing import Any

import httpx

from benchmarks.serving.results import BatchResult, LoadResult

LUA_SCRIPT = Path(__file__).resolve().parent.parent / "wrk" / "post_bodies.lua"
RESULT_PREFIX = "BENCH_RESULT "  # the line the Lua script's done() prints
WRK_TIMEOUT_MARGIN_S = 60  # beyond the run's own duration, before wrk counts as hung
JSON_HEADERS = {"content-type": "application/json"}


def wrk_threads(concurrency: int) -> int:
    """wrk's threads for a concurrency: one per connection up to 2 (the reference machine's cores)."""
    return 1 if concurrency == 1 else min(2, concurrency)


def run_wrk(url: str, bodies: Path, concurrency: int, seconds: float) -> LoadResult:
    """POST the bodies of the file (cycling) to `url` over `concurrency` connections for `seconds`."""
    command = [
        "wrk",
        f"-t{wrk_threads(concurrency)}",
        f"-c{concurrency}",
        f"-d{max(1, round(seconds))}s",
        "--latency",
        "--timeout",
        "10s",
        "-s",
        str(LUA_SCRIPT),
        url,
        "--",
        str(bodies),
    ]
    completed = subprocess.run(
        command, capture_output=True, text=True, timeout=seconds + WRK_TIMEOUT_MARGIN_S, check=False
    )
    line = next((line for line in completed.stdout.splitlines() if line.startswith(RESULT_PREFIX)), None)
    if completed.returncode != 0 or line is None:
        return LoadResult(
            concurrency, detail=f"wrk failed ({completed.returncode}): {(completed.stderr or completed.stdout)[-500:]}"
        )
    data = json.loads(line.removeprefix(RESULT_PREFIX))
    errors = data["non2xx"] + data["connect_errors"] + data["read_errors"] + data["write_errors"] + data["timeouts"]
    return LoadResult(
        concurrency,
        requests=data["requests"],
        rps=data["rps"],
        p50_ms=data["p50_ms"],
        p99_ms=data["p99_ms"],
        p999_ms=data["p999_ms"],
        errors=errors,
        detail=json.dumps(data),
    )


def first_request(base_url: str, path: str, body: dict[str, Any]) -> tuple[int, str]:
    """(status, text) of one POST: whether the server does the job before it is loaded."""
    response = httpx.post(f"{base_url}{path}", json=body, timeout=60)
    return response.status_code, response.text


def run_batch(base_url: str, path: str, payload: bytes, rows: int, calls: int) -> BatchResult:
    """`calls` sequential POSTs of a `rows`-payment payload after one warm-up call, timed one by one.

    Payments per second count the calls answered 200 only; a 404 to the warm-up call means
    the server has no such endpoint, and nothing more is sent.
    """
    result = BatchResult(endpoint=f"POST {path}", rows_per_call=rows)
    durations = []  # of the calls answered 200
    with httpx.Client(base_url=base_url, timeout=300) as client:
        warm = client.post(path, content=payload, headers=JSON_HEADERS)
        if warm.status_code == 404:
            result.note = "not available (404)"
            return result
        if warm.status_code != 200:
            result.note = f"warm-up call answered {warm.status_code}: {warm.text[:300]}"
            result.errors = 1
        for _ in range(calls):
            started = time.perf_counter()
            response = client.post(path, content=payload, headers=JSON_HEADERS)
            if response.status_code == 200:
                durations.append(time.perf_counter() - started)
            else:
                result.errors += 1
                result.note = result.note or f"answered {response.status_code}: {response.text[:300]}"
    result.calls = calls
    if durations:
        result.tx_per_s = rows * len(durations) / sum(durations)
        result.p50_call_ms = statistics.median(durations) * 1000
    return result
