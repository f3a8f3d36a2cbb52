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
   platform's own CLI, each step a `python -m fraud` subprocess: `fraud simulate` (the
   demo's size and seed), the last day held back as "live" payments, `fraud ingest` of the
   history, `fraud features build`, `fraud features apply`, `fraud features materialize`,
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
   same payments, so the same entities, for all three; the scorer's bodies by
   `contracts.transactions.request_body`), at each concurrency of `--concurrency`
   (default 1 and 8: `wrk -t1 -c1` and `wrk -t2 -c8`), for `--duration` seconds after
   `--warmup` seconds of the same load. The Lua `done()` prints one JSON line:
   requests/s, p50/p90/p99/p99.9 from wrk's histogram, non-2xx and socket errors.
   Before each warm-up the Redis db is restored to the snapshot taken right after
   materialisation: the scorer pushes a customer state per payment, and a replayed
   payment grows its customer's state, so every run starts from the same online store.
4. Peak memory: the sum of VmHWM (peak RSS) over the server's process tree (parent and
   children, found with psutil; VmHWM read from /proc, which psutil does not expose),
   read after its single-payment runs; and the sum of PSS at that moment (psutil), which
   splits pages shared between a gunicorn master and its forked workers instead of
   counting them twice. CPU, with psutil, averaged over each measured run: the cores the
   server's tree used, and the cores every other process used (all user+system time
   minus the server, wrk, the local Redis and this script). The machine may be shared
   with other jobs: before each run the benchmark waits up to `--wait-quiet` seconds
   (default 60) for other processes to drop under 0.15 cores, and the "other CPU" column
   shows what each run actually got; above ~0.1, rerun.
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

Modules (benchmarks/serving/)
-----------------------------
  __main__   the command line and the run, from the temp dir to the exit code
  prepare    the data dir, through the `fraud` CLI
  bodies     the request bodies of each server, and Feast's stored-views fallback
  servers    how each server is started, waited for and stopped; what its answers say
  load       wrk, the first request, the batch calls
  meters     memory and CPU of a process tree, and of the machine (psutil)
  measure    one server measured end to end
  results    what a server's measurement yields
  report     the markdown tables (tabulate)
The Redis claim, the setup error and process-group clean-up, shared with
benchmarks/drift.py, are in benchmarks/support/.
"""
