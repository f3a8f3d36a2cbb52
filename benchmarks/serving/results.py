"""What one benchmark run of a server yields: its load runs, its batch calls, its memory."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class LoadResult:
    """One wrk run at one concurrency, and the CPU it took."""

    concurrency: int
    requests: int = 0
    rps: float = 0.0
    p50_ms: float = 0.0
    p99_ms: float = 0.0
    p999_ms: float = 0.0
    errors: int = 0
    detail: str = ""  # wrk's JSON line, or why wrk failed
    server_cores: float | None = None  # CPU the server's process tree used, in cores, over the run
    other_cores: float | None = None  # CPU used by everything but the server, wrk, Redis and this script

    @property
    def mostly_errors(self) -> bool:
        return self.requests == 0 or self.errors > self.requests / 2


@dataclass
class BatchResult:
    """Sequential batch calls of one server."""

    endpoint: str
    rows_per_call: int = 0
    calls: int = 0
    tx_per_s: float | None = None
    p50_call_ms: float | None = None
    errors: int = 0
    note: str = ""

    @property
    def mostly_errors(self) -> bool:
        return bool(self.calls) and self.errors > self.calls / 2


@dataclass
class ServerResult:
    """Everything measured of one server; `failure` says why the rest is missing."""

    name: str
    failure: str = ""
    note: str = ""  # how this server's run differed from the plan (Feast's stored-views fallback)
    loads: list[LoadResult] = field(default_factory=list)
    peak_rss_mib: float | None = None
    pss_mib: float | None = None
    batch: BatchResult | None = None
    batch_peak_rss_mib: float | None = None
    first_answer: str = ""
    log_problems: str = ""

    def failures(self) -> list[str]:
        """Why this server's run counts as failed (exit code 1); empty when it does not."""
        why = [self.failure] if self.failure else []
        why += [
            f"errors for most requests at c={load.concurrency}: {load.errors:,} of {load.requests:,}"
            + (f" ({load.detail[:300]})" if load.requests == 0 else "")
            for load in self.loads
            if load.mostly_errors
        ]
        if self.batch is not None and self.batch.mostly_errors:
            why.append(f"batch: {self.batch.errors} of {self.batch.calls} calls failed: {self.batch.note}")
        return why
