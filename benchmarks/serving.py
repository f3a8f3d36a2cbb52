"""Benchmark: the scorer (`fraud serve`) against Feast's own feature server and a bare FastAPI app.

How to run
----------
    make bench-serving                     # installs wrk (apt) when missing; also part of `make bench`
    .venv/bin/python -m benchmarks.serving [--workers 1] [--duration 10] [--warmup 3]
        [--concurrency 1,8] [--bodies 500] [--batch-calls 10] [--batch-size 1000]
        [--servers ours,feast,bare] [--wait-quiet 60] [--redis-url redis://127.0.0.1:6379/7]

Needs `wrk` on the PATH (Debian: `apt-get install -y wrk`) and a Redis server; with none
answering at the URL it starts a private `redis-server` on a free port for the run.
Takes about 3-4 minutes on the 2-core reference machine: about 70 s of data preparation
(most of it `fraud train`), then 3 servers x 2 concurrencies x (3 s + 10 s), start-ups
and the batch calls.

What it does, in one run
------------------------
1. Prepares a private data dir (a temp dir) end to end as `fraud demo` does, through the
   platform's own CLI, each step a `fraud` subprocess: `fraud simulate` (the demo's size
   and seed), the last day held back as "live" payments, `fraud ingest` of the history,
   `fraud features build`, `fraud features apply`, `fraud features materialize`,
   `fraud train`, `fraud model approve`, `fraud model promote`. MLflow is the default
   SQLite store inside the temp dir (MLFLOW_TRACKING_URI unset, FRAUD_DATA_DIR there).
   Redis: db 7 by default, claimed with the key `fraud:bench-serving-lock` (a second run
   at the same time stops with a message instead of sharing it), flushed before and after. db 0 (the
   demo's) and dbs 8-15 (the test suite's) are refused.
2. Starts three servers one after the other, each with the same `--workers W` (default 1),
   each measured alone on the machine:
     ours   `fraud serve --port P --workers W`, `POST /score`: the whole scorer as it
            stands, a black box (online and on-demand features, the model, reasons,
            and whatever it does after answering: the customer-state push, the event);
     feast  Feast's own feature server, `feast serve` run in feature_repo/ with the
            environment `fraud env` prints, on the same registry and the same Redis data:
            `POST /get-online-features` for the feature service `fraud_detection_v1`
            (stored views and the two on-demand views), with the entity and request
            fields `feature_repo.transforms.entity_row` builds for the same payments
            (customer_id, terminal_id, device_id, tx_amount, tx_epoch_seconds,
            device_hash). Feature retrieval only: no model, no state push. If the
            on-demand views made Feast's server fail, the stored views of the service are
            benchmarked instead and the output says so.
     bare   `benchmarks/bare_app.py` under uvicorn (`--workers W --no-access-log`):
            validates the same body with the platform's pydantic `Transaction` model and
            returns a constant, in an `async def` route. The framework's ceiling here.
   Feast's flags, for a fair peer: `--workers W` like the others; `--no-access-log`
   because its gunicorn logs every request by default and ours and bare log none;
   `--max-requests 0` because its default (1000, with jitter 50) restarts each worker
   every ~1000 requests, which would put process starts and cold caches inside the
   measurement; the registry TTL stays at 60 s, the `cache_ttl_seconds` of
   feature_store.yaml that the scorer uses too. Feast runs gunicorn with uvicorn
   workers (its own choice on Linux): with W=1 that is a master and one worker.
3. Drives each with wrk and `benchmarks/wrk/post_bodies.lua`, which cycles through
   `--bodies` real request bodies (default 500) built from the simulated live day (the
   same payments, so the same entities, for all three), at each concurrency of
   `--concurrency` (default 1 and 8: `wrk -t1 -c1` and `wrk -t2 -c8`), for `--duration`
   seconds after `--warmup` seconds of the same load. The Lua `done()` prints one JSON
   line: requests/s, p50/p90/p99/p99.9 from wrk's histogram, non-2xx and socket errors.
   Before each warm-up the Redis db is restored to the snapshot taken right after
   materialisation: the scorer pushes a customer state per payment, and a replayed
   payment grows its customer's state, so every run starts from the same online store.
4. Peak memory: the sum of VmHWM (peak RSS) over the server's process tree (parent and
   children, from /proc), read after its single-payment runs; and the sum of PSS at that
   moment, which splits pages shared between a gunicorn master and its forked workers
   instead of counting them twice. CPU, from /proc, averaged over each measured run: the
   cores the server's tree used, and the cores every other process used (all user+system
   time minus the server, wrk, the local Redis and this script). The machine may be
   shared with other jobs: before each run the benchmark waits up to `--wait-quiet`
   seconds (default 60) for other processes to drop under 0.15 cores, and the "other
   CPU" column shows what each run actually got; above ~0.1, rerun.
5. Batch: `POST /score/batch` of ours with `{"transactions": [...]}` of `--batch-size`
   payments (default 1,000) per call, `--batch-calls` sequential calls after one warm-up
   call, in transactions/s; "not available" when the endpoint answers 404. For
   reference, the same payments as one `POST /get-online-features` call of Feast (1,000
   entity rows) and the bare app's `/score/batch` (validation only).
6. Prints markdown tables: server x concurrency with requests/s, p50, p99, p99.9 (ms),
   errors and memory; the ratios ours/Feast and ours/bare at each concurrency; the batch
   throughput; setup times and total runtime.

It measures, it does not judge: exit 0 whatever the figures, 1 when a server did not
start, failed its first request, or answered errors for most requests (the output names
it), 2 for a setup failure. wrk and the servers share the machine's cores (2 here), as a
load generator on the same host always does; the figures compare servers on the same
machine in the same run, not absolute capacity.

Everything it starts (CLI steps, servers, a private Redis) is stopped on the way out,
also on Ctrl-C, SIGTERM or an error; the temp dir is deleted and the Redis db flushed.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

REPO_ROOT = Path(__file__).resolve().parent.parent
FEATURE_REPO = REPO_ROOT / "feature_repo"
LUA_SCRIPT = Path(__file__).resolve().parent / "wrk" / "post_bodies.lua"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/7"
FORBIDDEN_DBS = {0, *range(8, 16)}  # the demo's default, and the test suite's
LOCK_KEY = "fraud:bench-serving-lock"
DEMO_SEED = 29  # serving/demo.py's: its live day holds payments of every fraud scenario
FEATURE_SERVICE = "fraud_detection_v1"
SERVER_LABELS = {"ours": "ours: fraud serve", "feast": "Feast feature server", "bare": "bare FastAPI"}
START_TIMEOUT_S = 240


class SetupError(RuntimeError):
    """The benchmark could not prepare its data or environment."""


# --- results -----------------------------------------------------------------------------

@dataclass
class LoadResult:
    concurrency: int
    requests: int = 0
    rps: float = 0.0
    p50_ms: float = 0.0
    p99_ms: float = 0.0
    p999_ms: float = 0.0
    errors: int = 0
    detail: str = ""
    server_cores: float | None = None  # CPU the server's process tree used, in cores, over the run
    other_cores: float | None = None   # CPU used by everything but the server, wrk, Redis and this script

    @property
    def mostly_errors(self) -> bool:
        return self.requests == 0 or self.errors > self.requests / 2


@dataclass
class BatchResult:
    endpoint: str
    rows_per_call: int = 0
    calls: int = 0
    tx_per_s: float | None = None
    p50_call_ms: float | None = None
    errors: int = 0
    note: str = ""


@dataclass
class ServerResult:
    name: str
    failure: str = ""
    note: str = ""
    loads: list[LoadResult] = field(default_factory=list)
    peak_rss_mib: float | None = None
    pss_mib: float | None = None
    batch: BatchResult | None = None
    batch_peak_rss_mib: float | None = None
    first_answer: str = ""
    log_problems: str = ""


# --- processes -----------------------------------------------------------------------------

def _interrupt_on_signals() -> None:
    """SIGTERM, and SIGINT even when a non-interactive shell started us ignoring it, raise
    KeyboardInterrupt, so that the clean-up below runs."""
    def handler(signum, frame):  # noqa: ARG001
        raise KeyboardInterrupt(f"signal {signum}")
    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, signal.default_int_handler)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _stop_group(process: subprocess.Popen, grace_s: float = 20) -> None:
    """SIGTERM the process group the server leads, then SIGKILL whatever is left of it."""
    if process.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=grace_s)
        except subprocess.TimeoutExpired:
            pass
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        try:
            os.killpg(process.pid, 0)  # anyone left in the group (e.g. an orphaned worker)?
        except ProcessLookupError:
            break
        time.sleep(0.2)
    else:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(timeout=5)


def _ppid_map() -> dict[int, list[int]]:
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(entry))
    return children


def _process_tree(root: int) -> list[int]:
    children, tree, todo = _ppid_map(), [], [root]
    while todo:
        pid = todo.pop()
        tree.append(pid)
        todo.extend(children.get(pid, []))
    return tree


def _status_kib(pid: int, key: str, path: str = "status") -> int:
    try:
        for line in Path(f"/proc/{pid}/{path}").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def tree_memory_mib(root: int) -> tuple[float, float]:
    """(sum of VmHWM, sum of PSS) over the process tree of `root`, in MiB."""
    pids = _process_tree(root)
    hwm = sum(_status_kib(pid, "VmHWM") for pid in pids)
    pss = sum(_status_kib(pid, "Pss", "smaps_rollup") for pid in pids)
    return hwm / 1024, pss / 1024


def _cpu_seconds(pids: list[int]) -> float:
    ticks = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        ticks += int(fields[11]) + int(fields[12])  # utime, stime
    return ticks / os.sysconf("SC_CLK_TCK")


def _machine_busy_seconds() -> float:
    """CPU time all processes spent, user and system (interrupts, mostly loopback, left out)."""
    user, nice, system = (int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:4])
    return (user + nice + system) / os.sysconf("SC_CLK_TCK")


class CpuMeter:
    """CPU the server tree used during a run, and what other processes on the machine used.

    Other = all busy CPU time - the server's tree - wrk - Redis - this script. Another job
    on the machine (a test suite, say) shows there, and makes the run's figures suspect.
    """

    def __init__(self, server_pid: int, redis_pid: int | None) -> None:
        self.server_pid, self.redis_pid = server_pid, redis_pid

    def __enter__(self) -> "CpuMeter":
        self._server_pids = _process_tree(self.server_pid)
        self._start = self._sample()
        return self

    def _sample(self) -> tuple[float, ...]:
        import resource

        children = resource.getrusage(resource.RUSAGE_CHILDREN)  # wrk, once reaped
        me = resource.getrusage(resource.RUSAGE_SELF)
        return (time.perf_counter(), _machine_busy_seconds(), _cpu_seconds(self._server_pids),
                children.ru_utime + children.ru_stime + me.ru_utime + me.ru_stime,
                _cpu_seconds([self.redis_pid]) if self.redis_pid else 0.0)

    def __exit__(self, *exc) -> None:
        end = self._sample()
        wall, busy, server, mine, redis_cpu = (b - a for a, b in zip(self._start, end))
        self.server_cores = server / wall
        self.other_cores = max(0.0, busy - server - mine - redis_cpu) / wall


def wait_until_quiet(server_pid: int, redis_pid: int | None, limit_s: float, threshold: float = 0.15) -> float:
    """Wait (up to limit_s) until other processes use under `threshold` cores over one second.

    Returns the seconds waited. The machine is shared (other jobs, a developer's tests):
    a run measured beside them measures them too. The table reports what the run got.
    """
    started = time.perf_counter()
    while True:
        with CpuMeter(server_pid, redis_pid) as cpu:
            time.sleep(1)
        waited = time.perf_counter() - started
        if cpu.other_cores < threshold or waited >= limit_s:
            return waited


# --- Redis ---------------------------------------------------------------------------------

@contextlib.contextmanager
def claimed_redis_db(url: str, workdir: Path) -> Iterator[tuple[object, str]]:
    """A flushed Redis db this run holds alone; flushed again on the way out."""
    import redis

    db = int(urlparse(url).path.strip("/") or 0)
    if db in FORBIDDEN_DBS:
        raise SetupError(f"refusing Redis db {db} in {url}: db 0 is the demo's and 8-15 the tests'; "
                         "pass --redis-url with another db (default db 7)")
    server: subprocess.Popen | None = None
    client = redis.Redis.from_url(url, socket_connect_timeout=2)
    try:
        client.ping()
    except redis.ConnectionError:
        binary = shutil.which("redis-server")
        if not binary:
            raise SetupError(f"no Redis answers at {url} and redis-server is not installed") from None
        port = _free_port()
        server = subprocess.Popen([binary, "--bind", "127.0.0.1", "--port", str(port), "--save", "",
                                   "--appendonly", "no", "--dir", str(workdir)],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        url = f"redis://127.0.0.1:{port}/{db}"
        client = redis.Redis.from_url(url, socket_connect_timeout=2)
        for _ in range(100):
            with contextlib.suppress(redis.ConnectionError):
                client.ping()
                break
            time.sleep(0.1)
        print(f"no Redis answered at the configured URL: started a private redis-server for this run ({url})")
    try:
        if not client.set(LOCK_KEY, os.getpid(), nx=True, ex=3 * 3600):
            raise SetupError(f"Redis db {db} at {url} is held by another benchmark run (key {LOCK_KEY}, "
                             f"pid {client.get(LOCK_KEY)!r}); wait for it or pass --redis-url with another db")
        client.flushdb()
        client.set(LOCK_KEY, os.getpid(), ex=3 * 3600)
        try:
            yield client, url
        finally:
            client.flushdb()  # also releases the claim
            client.close()
    finally:
        if server is not None:
            _stop_group(server)


def local_redis_pid(client) -> int | None:
    """The Redis server's pid when it runs on this machine (its CPU is part of the workload)."""
    with contextlib.suppress(Exception):
        pid = int(client.info("server")["process_id"])
        if Path(f"/proc/{pid}/stat").exists():
            return pid
    return None


def snapshot_db(client) -> dict[bytes, bytes]:
    keys = list(client.scan_iter(count=1000))
    pipe = client.pipeline(transaction=False)
    for key in keys:
        pipe.dump(key)
    return {key: value for key, value in zip(keys, pipe.execute()) if value is not None}


def restore_db(client, snapshot: dict[bytes, bytes]) -> None:
    client.flushdb()
    pipe = client.pipeline(transaction=False)
    for i, (key, value) in enumerate(snapshot.items(), 1):
        pipe.restore(key, 0, value, replace=True)
        if i % 2000 == 0:
            pipe.execute()
    pipe.set(LOCK_KEY, os.getpid(), ex=3 * 3600)
    pipe.execute()


# --- data preparation through the platform's CLI ---------------------------------------------

def platform_env(data_dir: Path, redis_url: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if k not in ("MLFLOW_TRACKING_URI", "FRAUD_FEAST_REDIS", "FRAUD_DATA_DIR", "REDIS_URL")}
    env.update({"FRAUD_DATA_DIR": str(data_dir), "REDIS_URL": redis_url, "PYTHONUNBUFFERED": "1"})
    return env


def fraud(args: list[str], env: dict[str, str], log: Path) -> str:
    """Run one `fraud` command; its output goes to the log and is returned; failure stops the run."""
    command = [sys.executable, "-m", "serving.cli", *args]
    completed = subprocess.run(command, env=env, cwd=REPO_ROOT, capture_output=True, text=True, check=False)
    with log.open("a") as handle:
        handle.write(f"$ fraud {' '.join(args)}\n{completed.stdout}{completed.stderr}\n")
    if completed.returncode != 0:
        raise SetupError(f"`fraud {' '.join(args)}` exited {completed.returncode}:\n"
                         f"{(completed.stdout + completed.stderr)[-3000:]}")
    return completed.stdout


@dataclass
class Prepared:
    live: Any  # pandas DataFrame of the held-back live day
    n_simulated: int
    n_history: int
    model_version: str
    step_seconds: dict[str, float]


def prepare(data_dir: Path, env: dict[str, str], log: Path) -> Prepared:
    import pandas as pd

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
    out = step("train", ["train"])
    found = re.search(r"registered \S+ version (\d+)", " ".join(out.split()))
    if not found:
        raise SetupError(f"could not read the registered version from `fraud train`:\n{out[-2000:]}")
    version = found.group(1)
    step("model approve", ["model", "approve", version, "--by", "benchmarks.serving",
                           "--note", "serving benchmark: gate passed on simulated data"])
    step("model promote", ["model", "promote", version, "--by", "benchmarks.serving",
                           "--reason", "serving benchmark"])
    return Prepared(live=live, n_simulated=len(transactions), n_history=len(history),
                    model_version=version, step_seconds=steps)


def feast_env(env: dict[str, str]) -> dict[str, str]:
    """`eval "$(fraud env)"`: the variables feature_store.yaml expands."""
    completed = subprocess.run([sys.executable, "-m", "serving.cli", "env"], env=env, cwd=REPO_ROOT,
                               capture_output=True, text=True, check=True)
    exported = dict(re.findall(r"^export (\w+)='(.*)'$", completed.stdout, flags=re.M))
    if "FRAUD_FEAST_REDIS" not in exported:
        raise SetupError(f"`fraud env` printed no FRAUD_FEAST_REDIS:\n{completed.stdout}")
    return {**env, **exported}


# --- request bodies ------------------------------------------------------------------------

def score_body(tx) -> dict:
    body = {
        "transaction_id": str(tx.transaction_id),
        "tx_datetime": tx.tx_datetime.isoformat(),
        "customer_id": int(tx.customer_id),
        "terminal_id": int(tx.terminal_id),
        "tx_amount": float(tx.tx_amount),
    }
    for column in ("device_id", "device_type", "device_os"):
        value = getattr(tx, column, None)
        if isinstance(value, str):
            body[column] = value
    return body


def feast_entities(rows: list) -> dict[str, list]:
    """Feast's columnar `entities` for payments, built by the platform's own `entity_row`."""
    from feature_repo.transforms import entity_row

    columns: dict[str, list] = {}
    for tx in rows:
        device = getattr(tx, "device_id", None)
        entity = entity_row(tx.customer_id, tx.terminal_id, device if isinstance(device, str) else None,
                            tx.tx_datetime, tx.tx_amount)
        for key, value in entity.items():
            columns.setdefault(key, []).append(value)
    return columns


def feast_body(rows: list, features: list[str] | None) -> dict:
    body: dict[str, object] = {"entities": feast_entities(rows)}
    if features:
        body["features"] = features
    else:
        body["feature_service"] = FEATURE_SERVICE
    return body


def write_lines(path: Path, bodies: list[dict]) -> Path:
    path.write_text("".join(json.dumps(body, separators=(",", ":")) + "\n" for body in bodies))
    return path


def stored_feature_refs(env: dict[str, str]) -> list[str]:
    """`view:feature` of the service's stored views only (the fallback when on-demand views fail)."""
    code = (
        "import json\n"
        "from data.settings import Settings\n"
        "from feature_repo.store import feature_store\n"
        "store = feature_store(Settings())\n"
        f"service = store.get_feature_service({FEATURE_SERVICE!r})\n"
        "stored = {v.name for v in store.list_feature_views()}\n"
        "print(json.dumps([f'{p.name}:{f.name}' for p in service.feature_view_projections\n"
        "                  if p.name in stored for f in p.features]))\n"
    )
    completed = subprocess.run([sys.executable, "-c", code], env=env, cwd=REPO_ROOT, capture_output=True,
                               text=True, check=True)
    return json.loads(completed.stdout.strip().splitlines()[-1])


# --- servers -------------------------------------------------------------------------------

@dataclass
class ServerSpec:
    name: str
    command: list[str]
    env: dict[str, str]
    cwd: Path
    path: str
    batch_path: str


def server_specs(args, env: dict[str, str], fenv: dict[str, str], ports: dict[str, int]) -> dict[str, ServerSpec]:
    feast = shutil.which("feast", path=str(Path(sys.executable).parent)) or shutil.which("feast")
    if not feast:
        raise SetupError("the feast command is not installed in this environment")
    workers = str(args.workers)
    return {
        "ours": ServerSpec("ours", [sys.executable, "-m", "serving.cli", "serve", "--host", "127.0.0.1",
                                    "--port", str(ports["ours"]), "--workers", workers],
                           env, REPO_ROOT, "/score", "/score/batch"),
        "feast": ServerSpec("feast", [feast, "serve", "--host", "127.0.0.1", "--port", str(ports["feast"]),
                                      "--workers", workers, "--no-access-log", "--max-requests", "0"],
                            fenv, FEATURE_REPO, "/get-online-features", "/get-online-features"),
        "bare": ServerSpec("bare", [sys.executable, "-m", "uvicorn", "benchmarks.bare_app:app",
                                    "--host", "127.0.0.1", "--port", str(ports["bare"]), "--workers", workers,
                                    "--no-access-log", "--log-level", "warning"],
                           env, REPO_ROOT, "/score", "/score/batch"),
    }


@contextlib.contextmanager
def running(spec: ServerSpec, log: Path, base_url: str) -> Iterator[subprocess.Popen]:
    import httpx

    with log.open("ab") as handle:
        process = subprocess.Popen(spec.command, env=spec.env, cwd=spec.cwd, stdout=handle,
                                   stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            if process.poll() is not None:
                raise SetupError(f"exited with code {process.returncode} before answering /health")
            with contextlib.suppress(httpx.TransportError):
                if httpx.get(f"{base_url}/health", timeout=2).status_code == 200:
                    break
            if time.monotonic() > deadline:
                raise SetupError(f"did not answer {base_url}/health within {START_TIMEOUT_S} s")
            time.sleep(0.3)
        yield process
    finally:
        _stop_group(process)


def run_wrk(url: str, bodies: Path, concurrency: int, seconds: float) -> LoadResult:
    threads = 1 if concurrency == 1 else min(2, concurrency)
    command = ["wrk", f"-t{threads}", f"-c{concurrency}", f"-d{max(1, round(seconds))}s", "--latency",
               "--timeout", "10s", "-s", str(LUA_SCRIPT), url, "--", str(bodies)]
    completed = subprocess.run(command, capture_output=True, text=True, timeout=seconds + 60, check=False)
    line = next((l for l in completed.stdout.splitlines() if l.startswith("BENCH_RESULT ")), None)
    if completed.returncode != 0 or line is None:
        return LoadResult(concurrency, detail=f"wrk failed ({completed.returncode}): "
                                              f"{(completed.stderr or completed.stdout)[-500:]}")
    data = json.loads(line.removeprefix("BENCH_RESULT "))
    errors = (data["non2xx"] + data["connect_errors"] + data["read_errors"] + data["write_errors"]
              + data["timeouts"])
    return LoadResult(concurrency, requests=data["requests"], rps=data["rps"], p50_ms=data["p50_ms"],
                      p99_ms=data["p99_ms"], p999_ms=data["p999_ms"], errors=errors,
                      detail=json.dumps(data))


def first_request(base_url: str, path: str, body: dict) -> tuple[int, str]:
    import httpx

    response = httpx.post(f"{base_url}{path}", json=body, timeout=60)
    return response.status_code, response.text


def run_batch(base_url: str, path: str, payload: bytes, rows: int, calls: int) -> BatchResult:
    import httpx

    result = BatchResult(endpoint=f"POST {path}", rows_per_call=rows)
    headers = {"content-type": "application/json"}
    with httpx.Client(base_url=base_url, timeout=300) as client:
        warm = client.post(path, content=payload, headers=headers)
        if warm.status_code == 404:
            result.note = "not available (404)"
            return result
        if warm.status_code != 200:
            result.note = f"warm-up call answered {warm.status_code}: {warm.text[:300]}"
            result.errors = 1
        durations = []  # of the calls answered 200
        for _ in range(calls):
            started = time.perf_counter()
            response = client.post(path, content=payload, headers=headers)
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


def benchmark_server(spec: ServerSpec, base_url: str, bodies: Path, check_body: dict, batch_payload: bytes,
                     batch_rows: int, args, client, snapshot, logs: Path, fallback=None,
                     redis_pid: int | None = None) -> ServerResult:
    import httpx

    result = ServerResult(spec.name)
    label = SERVER_LABELS[spec.name]
    restore_db(client, snapshot)
    print(f"\n{label}: {' '.join(Path(c).name if i == 0 else c for i, c in enumerate(spec.command))}"
          f"  (cwd {spec.cwd.relative_to(REPO_ROOT.parent)})", flush=True)
    started = time.perf_counter()
    try:
        with running(spec, logs / f"{spec.name}.log", base_url) as process:
            print(f"  answering /health after {time.perf_counter() - started:.1f} s", flush=True)
            status, text = first_request(base_url, spec.path, check_body)
            if status != 200 and fallback is not None:
                bodies, check_body, batch_payload, result.note = fallback(status, text)
                print(f"  {result.note}", flush=True)
                status, text = first_request(base_url, spec.path, check_body)
            if status != 200:
                result.failure = f"first POST {spec.path} answered {status}: {text[:500]}"
                return result
            result.first_answer = describe_answer(spec.name, text)
            print(f"  first answer: {result.first_answer}", flush=True)
            for concurrency in args.concurrency:
                restore_db(client, snapshot)
                url = f"{base_url}{spec.path}"
                if args.wait_quiet > 0:
                    waited = wait_until_quiet(process.pid, redis_pid, args.wait_quiet)
                    if waited > 1.5:
                        print(f"  waited {waited:.0f} s for other processes to leave the CPU", flush=True)
                if args.warmup > 0:
                    run_wrk(url, bodies, concurrency, args.warmup)
                with CpuMeter(process.pid, redis_pid) as cpu:
                    load = run_wrk(url, bodies, concurrency, args.duration)
                load.server_cores, load.other_cores = cpu.server_cores, cpu.other_cores
                result.loads.append(load)
                print(f"  c={concurrency}: {load.rps:,.1f} req/s, p50 {load.p50_ms:.2f} ms, "
                      f"p99 {load.p99_ms:.2f} ms, p99.9 {load.p999_ms:.2f} ms, errors {load.errors:,} "
                      f"of {load.requests:,}; CPU: server {load.server_cores:.2f} cores, "
                      f"other processes {load.other_cores:.2f}" + (f"  [{load.detail}]" if load.requests == 0 else ""), flush=True)
            result.peak_rss_mib, result.pss_mib = tree_memory_mib(process.pid)
            if args.batch_calls > 0:
                restore_db(client, snapshot)
                result.batch = run_batch(base_url, spec.batch_path, batch_payload, batch_rows, args.batch_calls)
                result.batch_peak_rss_mib = tree_memory_mib(process.pid)[0]
                b = result.batch
                print("  batch: " + (f"{b.tx_per_s:,.0f} tx/s" if b.tx_per_s else "-") +
                      (f" ({b.note})" if b.note else ""), flush=True)
    except (SetupError, httpx.HTTPError) as error:
        tail = _tail(logs / f"{spec.name}.log")
        result.failure = (f"{error}" if isinstance(error, SetupError) else f"{type(error).__name__}: {error}") \
            + (f"\n--- last lines of its log ---\n{tail}" if tail else "")
    finally:
        result.log_problems = log_problems(logs / f"{spec.name}.log")
    return result


def describe_answer(name: str, text: str) -> str:
    """One line saying what the first answer held: the servers got the same data."""
    try:
        answer = json.loads(text)
        if name == "ours":
            return (f"risk {answer['risk_score']:.3f}, {answer['decision']}, model v{answer['model_version']}, "
                    f"{len(answer['missing_features'])} features missing online")
        if name == "feast":
            statuses = [s for row in answer["results"] for s in row.get("statuses", [])]
            return (f"{len(answer['metadata']['feature_names'])} columns (entity keys included), "
                    f"{statuses.count('PRESENT')} of {len(statuses)} values PRESENT")
        return f"{answer.get('decision')} (constant)"
    except (ValueError, KeyError, TypeError) as error:
        return f"unexpected answer ({error!r}): {text[:200]}"


def log_problems(path: Path) -> str:
    """Tracebacks a server logged (e.g. in a background task, after a 200 was sent)."""
    try:
        lines = path.read_text(errors="replace").splitlines()
    except OSError:
        return ""
    starts = [i for i, line in enumerate(lines) if line.startswith("Traceback")]
    if not starts:
        return ""
    last = next((line for line in lines[starts[0] + 1:] if line and not line.startswith((" ", "Traceback"))), "")
    return f"{len(starts)} tracebacks in its log, the first ending: {last[:300]}"


def _tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


# --- report --------------------------------------------------------------------------------

def _fmt(value: float | None, digits: int = 2) -> str:
    return "-" if value is None else f"{value:,.{digits}f}"


def _ratio(a: float | None, b: float | None) -> str:
    return "-" if not a or not b else f"{a / b:.2f}x"


def markdown(headers: list[str], rows: list[list[str]], right_from: int = 1) -> str:
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(headers)]
    def line(cells):
        return "| " + " | ".join(c.rjust(w) if i >= right_from else c.ljust(w)
                                  for i, (c, w) in enumerate(zip(cells, widths))) + " |"
    rule = "|" + "|".join(("-" * (w + 1) + ":") if i >= right_from else ("-" * (w + 2))
                          for i, w in enumerate(widths)) + "|"
    return "\n".join([line(headers), rule, *(line(r) for r in rows)])


def report(results: dict[str, ServerResult], args, context: dict[str, str]) -> str:
    out = ["", "## Serving benchmark", ""]
    out += [f"- {key}: {value}" for key, value in context.items()]
    rows = []
    for name, result in results.items():
        label = SERVER_LABELS[name] + (" *" if result.note else "")
        if result.failure:
            rows.append([label, "-", "FAILED", "-", "-", "-", "-", "-", "-", "-", "-"])
            continue
        for load in result.loads:
            rows.append([label, str(load.concurrency), _fmt(load.rps, 1), _fmt(load.p50_ms), _fmt(load.p99_ms),
                         _fmt(load.p999_ms), f"{load.errors:,} / {load.requests:,}",
                         _fmt(result.peak_rss_mib, 0), _fmt(result.pss_mib, 0),
                         _fmt(load.server_cores), _fmt(load.other_cores)])
    out += ["", f"### POST one payment, {args.duration:g} s per run after {args.warmup:g} s warm-up, "
                f"--workers {args.workers}", "",
            markdown(["server", "concurrency", "req/s", "p50 ms", "p99 ms", "p99.9 ms", "errors / requests",
                      "peak RSS MiB", "PSS MiB", "server CPU", "other CPU"], rows, right_from=1)]
    notes = [f"\\* {SERVER_LABELS[n]}: {r.note}" for n, r in results.items() if r.note]
    out += ["", "Peak RSS: sum of VmHWM (peak resident memory) over the server's process tree, read after "
                "its single-payment runs; PSS: sum of proportional set sizes at that moment (pages that "
                "forked workers share with their master counted once). CPU in cores, averaged over the run: "
                "the server's process tree, and every other process but wrk, Redis and this script "
                "(above ~0.1, something else was running and the figures are suspect)."]
    out += ["", *notes] if notes else []
    out += ["", "First answers (same payment to each): " + "; ".join(
        f"{SERVER_LABELS[n]}: {r.first_answer}" for n, r in results.items() if r.first_answer)]
    problems = [f"{SERVER_LABELS[n]}: {r.log_problems}" for n, r in results.items() if r.log_problems]
    if problems:
        out += ["", "Server logs: " + "; ".join(problems)]

    ours = results.get("ours")
    ratio_rows = []
    if ours and not ours.failure:
        for load in ours.loads:
            def peer(name: str) -> LoadResult | None:
                other = results.get(name)
                if not other or other.failure:
                    return None
                return next((l for l in other.loads if l.concurrency == load.concurrency), None)
            row = [str(load.concurrency)]
            for other in (peer("feast"), peer("bare")):
                row += [_ratio(getattr(load, metric), getattr(other, metric) if other else None)
                        for metric in ("rps", "p50_ms", "p99_ms")]
            ratio_rows.append(row)
    out += ["", "### Ratios, ours / peer (req/s: above 1x is ours faster; latency: below 1x is ours faster)", "",
            markdown(["concurrency", "req/s vs Feast", "p50 vs Feast", "p99 vs Feast",
                      "req/s vs bare", "p50 vs bare", "p99 vs bare"], ratio_rows, right_from=0)
            if ratio_rows else "(no ratios: the scorer was not measured)"]

    batch_rows = []
    for name, result in results.items():
        b = result.batch
        if result.failure or b is None:
            continue
        batch_rows.append([SERVER_LABELS[name], b.endpoint, f"{b.rows_per_call:,}", str(b.calls),
                           _fmt(b.tx_per_s, 0) if b.tx_per_s else (b.note or "-"),
                           _fmt(b.p50_call_ms, 1), str(b.errors), _fmt(result.batch_peak_rss_mib, 0)])
    if batch_rows:
        ours_batch = ours.batch if ours and not ours.failure else None
        out += ["", f"### Batch: {args.batch_calls} sequential calls of {args.batch_size:,} payments "
                    "after one warm-up call", "",
                markdown(["server", "endpoint", "payments/call", "calls", "payments/s", "p50 call ms", "errors",
                          "peak RSS MiB"], batch_rows, right_from=2)]
        if ours_batch and ours_batch.tx_per_s:
            others = {n: r.batch for n, r in results.items() if n != "ours" and not r.failure and r.batch}
            out += ["", "Batch ratios, ours / peer payments/s: " + ", ".join(
                f"vs {SERVER_LABELS[n]} {_ratio(ours_batch.tx_per_s, b.tx_per_s)}" for n, b in others.items())]
        out += ["", "Feast's batch row is feature retrieval only (one /get-online-features call for the same "
                    "payments); the bare row is validation only."]
    return "\n".join(out)


# --- main ----------------------------------------------------------------------------------

def parse_args(argv: list[str] | None = None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workers", type=int, default=1, help="worker processes of every server (default 1)")
    parser.add_argument("--duration", type=float, default=10, help="seconds of each measured run (default 10)")
    parser.add_argument("--warmup", type=float, default=3, help="seconds of warm-up before each run (default 3)")
    parser.add_argument("--concurrency", default="1,8", help="connections per run, comma-separated (default 1,8)")
    parser.add_argument("--bodies", type=int, default=500, help="distinct request bodies wrk cycles through")
    parser.add_argument("--batch-calls", type=int, default=10, help="timed batch calls per server (0: skip)")
    parser.add_argument("--batch-size", type=int, default=1000, help="payments per batch call (max 1000)")
    parser.add_argument("--wait-quiet", type=float, default=60,
                        help="before each run, wait up to this many seconds for other processes to go "
                             "below 0.15 cores (default 60; 0: don't wait)")
    parser.add_argument("--servers", default="ours,feast,bare", help="which servers, comma-separated")
    parser.add_argument("--redis-url", default=os.environ.get("FRAUD_BENCH_REDIS_URL", DEFAULT_REDIS_URL),
                        help=f"Redis server and db the run claims (default {DEFAULT_REDIS_URL})")
    args = parser.parse_args(argv)
    args.concurrency = [int(c) for c in args.concurrency.split(",") if c.strip()]
    args.servers = [s.strip() for s in args.servers.split(",") if s.strip()]
    unknown = set(args.servers) - set(SERVER_LABELS)
    if unknown or not args.servers:
        parser.error(f"--servers takes some of {', '.join(SERVER_LABELS)}; got {', '.join(unknown) or 'none'}")
    if args.workers < 1 or args.duration < 1 or not args.concurrency or min(args.concurrency) < 1:
        parser.error("--workers, --duration and every --concurrency must be at least 1")
    if not 1 <= args.batch_size <= 1000:
        parser.error("--batch-size must be between 1 and 1000")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if not shutil.which("wrk"):
        print("error: wrk is not installed: apt-get install -y wrk (or run `make bench-serving`)", file=sys.stderr)
        return 2
    _interrupt_on_signals()
    run_started = time.perf_counter()
    workdir = Path(tempfile.mkdtemp(prefix="fraud-bench-serving-"))
    data_dir, logs = workdir / "data", workdir / "logs"
    data_dir.mkdir()
    logs.mkdir()
    results: dict[str, ServerResult] = {}
    try:
        with claimed_redis_db(args.redis_url, workdir) as (client, redis_url):
            print(f"serving benchmark: data in {data_dir}, Redis {redis_url}, --workers {args.workers}")
            env = platform_env(data_dir, redis_url)
            print("preparing the data dir through the platform's CLI (as `fraud demo` does):", flush=True)
            prep_started = time.perf_counter()
            prepared = prepare(data_dir, env, logs / "setup.log")
            prep_seconds = time.perf_counter() - prep_started
            fenv = feast_env(env)
            snapshot = snapshot_db(client)
            redis_pid = local_redis_pid(client)

            live = list(prepared.live.itertuples(index=False))
            if not live:
                raise SetupError("the simulated live day holds no payments")
            step = max(1, len(live) // args.bodies)
            sample = live[::step][:args.bodies]
            batch_rows = [live[i % len(live)] for i in range(args.batch_size)]
            score_bodies = [score_body(tx) for tx in sample]
            score_batch = [score_body(tx) for tx in batch_rows]
            if len(live) < args.batch_size:  # cycled payments: keep transaction ids distinct
                for i, body in enumerate(score_batch):
                    body["transaction_id"] = f"{body['transaction_id']}-{i}"
            payloads = {
                "ours": (write_lines(workdir / "score.jsonl", score_bodies), score_bodies[0],
                         json.dumps({"transactions": score_batch}).encode()),
                "bare": (workdir / "score.jsonl", score_bodies[0], json.dumps({"transactions": score_batch}).encode()),
            }
            feast_bodies = [feast_body([tx], None) for tx in sample]
            payloads["feast"] = (write_lines(workdir / "feast.jsonl", feast_bodies), feast_bodies[0],
                                 json.dumps(feast_body(batch_rows, None)).encode())

            ports = {name: _free_port() for name in SERVER_LABELS}
            specs = server_specs(args, env, fenv, ports)
            for name in args.servers:
                spec, base_url = specs[name], f"http://127.0.0.1:{ports[name]}"
                bodies, check_body, batch_payload = payloads[name]
                fallback = feast_fallback(fenv, workdir, sample, batch_rows) if name == "feast" else None
                result = benchmark_server(spec, base_url, bodies, check_body, batch_payload, args.batch_size,
                                          args, client, snapshot, logs, fallback, redis_pid)
                results[name] = result
                if result.failure:
                    print(f"  FAILED: {result.failure}", flush=True)

            context = {
                "machine": f"{os.cpu_count()} cores, {platform.processor() or platform.machine()}, "
                           f"Python {platform.python_version()}; wrk and the server share the cores",
                "data": f"`fraud simulate --seed {DEMO_SEED}` (demo size): {prepared.n_simulated:,} payments; "
                        f"{prepared.n_history:,} ingested, the last day's {len(live):,} held back as live; "
                        f"wrk cycles through {len(score_bodies)} of them",
                "model": f"fraud_detector v{prepared.model_version} (fraud train, approved, promoted to champion)",
                "load": "wrk " + ", ".join(f"-t{1 if c == 1 else min(2, c)} -c{c}" for c in args.concurrency)
                        + f", -d{args.duration:g}s, {args.warmup:g} s warm-up; Redis restored to the "
                          "post-materialisation snapshot before each run",
                "setup": f"{prep_seconds:.0f} s (" + ", ".join(f"{k} {v:.0f} s"
                                                              for k, v in prepared.step_seconds.items()) + ")",
            }
    except SetupError as error:
        print(f"\nerror: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("\ninterrupted: stopped every process the benchmark started", file=sys.stderr)
        return 130
    finally:
        shutil.rmtree(workdir, ignore_errors=True)

    context["total runtime"] = f"{time.perf_counter() - run_started:.0f} s"
    print(report(results, args, context))
    failed = {name: r for name, r in results.items()
              if r.failure or any(l.mostly_errors for l in r.loads)
              or (r.batch is not None and r.batch.calls and r.batch.errors > r.batch.calls / 2)}
    for name, result in failed.items():
        why = [result.failure] if result.failure else []
        why += [f"errors for most requests at c={l.concurrency}: {l.errors:,} of {l.requests:,}"
                + (f" ({l.detail[:300]})" if l.requests == 0 else "") for l in result.loads if l.mostly_errors]
        if result.batch is not None and result.batch.calls and result.batch.errors > result.batch.calls / 2:
            why.append(f"batch: {result.batch.errors} of {result.batch.calls} calls failed: {result.batch.note}")
        print(f"\nFAILED: {SERVER_LABELS[name]}: {'; '.join(why)}", file=sys.stderr)
    return 1 if failed else 0


def feast_fallback(fenv: dict[str, str], workdir: Path, sample: list, batch_rows: list):
    """When Feast's server fails the feature service: its stored views instead, and a note why."""
    def fallback(status: int, text: str) -> tuple[Path, dict, bytes, str]:
        refs = stored_feature_refs(fenv)
        bodies = write_lines(workdir / "feast-stored.jsonl", [feast_body([tx], refs) for tx in sample])
        note = (f"the feature service {FEATURE_SERVICE} failed in Feast's server ({status}: {text[:200]}); "
                f"benchmarked its stored views only ({len(refs)} features)")
        return bodies, feast_body(sample[:1], refs), json.dumps(feast_body(batch_rows, refs)).encode(), note
    return fallback


if __name__ == "__main__":
    sys.exit(main())
