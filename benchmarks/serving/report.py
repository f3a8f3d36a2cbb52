"""The printed report: markdown tables of the load runs, the ratios ours / peer, the batch calls."""

from __future__ import annotations

from collections.abc import Sequence

from tabulate import tabulate

from benchmarks.serving.measure import LoadPlan
from benchmarks.serving.results import LoadResult, ServerResult
from benchmarks.serving.servers import SERVER_LABELS

LOAD_HEADERS = [
    "server",
    "concurrency",
    "req/s",
    "p50 ms",
    "p99 ms",
    "p99.9 ms",
    "errors / requests",
    "peak RSS MiB",
    "PSS MiB",
    "server CPU",
    "other CPU",
]
RATIO_HEADERS = [
    "concurrency",
    "req/s vs Feast",
    "p50 vs Feast",
    "p99 vs Feast",
    "req/s vs bare",
    "p50 vs bare",
    "p99 vs bare",
]
BATCH_HEADERS = ["server", "endpoint", "payments/call", "calls", "payments/s", "p50 call ms", "errors", "peak RSS MiB"]
RATIO_METRICS = ("rps", "p50_ms", "p99_ms")

LOAD_NOTE = (
    "Peak RSS: sum of VmHWM (peak resident memory) over the server's process tree, read after "
    "its single-payment runs; PSS: sum of proportional set sizes at that moment (pages that "
    "forked workers share with their master counted once). CPU in cores, averaged over the run: "
    "the server's process tree, and every other process but wrk, Redis and this script "
    "(above ~0.1, something else was running and the figures are suspect)."
)
BATCH_NOTE = (
    "Feast's batch row is feature retrieval only (one /get-online-features call for the same "
    "payments); the bare row is validation only."
)


def fmt(value: float | None, digits: int = 2) -> str:
    """A figure with thousands separators, or "-" when not measured."""
    return "-" if value is None else f"{value:,.{digits}f}"


def ratio(a: float | None, b: float | None) -> str:
    """a / b as "1.23x", or "-" when either is missing or zero."""
    return "-" if not a or not b else f"{a / b:.2f}x"


def markdown(headers: Sequence[str], rows: Sequence[Sequence[str]], right_from: int = 1) -> str:
    """A markdown (pipe) table of text cells: columns from `right_from` on (the figures) right-aligned."""
    align = ["left" if i < right_from else "right" for i in range(len(headers))]
    # The cells are formatted already ("1,234.5", "-", "2 / 10"): tabulate must not parse them as numbers.
    return tabulate(rows, headers=headers, tablefmt="pipe", colalign=align, disable_numparse=True)


def report(results: dict[str, ServerResult], plan: LoadPlan, workers: int, context: dict[str, str]) -> str:
    """The whole report, from the run's context lines to the batch table."""
    out = ["", "## Serving benchmark", ""]
    out += [f"- {key}: {value}" for key, value in context.items()]
    out += [
        "",
        f"### POST one payment, {plan.duration:g} s per run after {plan.warmup:g} s warm-up, --workers {workers}",
        "",
        markdown(LOAD_HEADERS, load_rows(results), right_from=1),
    ]
    out += ["", LOAD_NOTE]
    notes = [f"\\* {SERVER_LABELS[n]}: {r.note}" for n, r in results.items() if r.note]
    out += ["", *notes] if notes else []
    out += [
        "",
        "First answers (same payment to each): "
        + "; ".join(f"{SERVER_LABELS[n]}: {r.first_answer}" for n, r in results.items() if r.first_answer),
    ]
    problems = [f"{SERVER_LABELS[n]}: {r.log_problems}" for n, r in results.items() if r.log_problems]
    if problems:
        out += ["", "Server logs: " + "; ".join(problems)]
    out += ["", "### Ratios, ours / peer (req/s: above 1x is ours faster; latency: below 1x is ours faster)", ""]
    ratios = ratio_rows(results)
    out += [markdown(RATIO_HEADERS, ratios, right_from=0) if ratios else "(no ratios: the scorer was not measured)"]
    out += batch_section(results, plan)
    return "\n".join(out)


def load_rows(results: dict[str, ServerResult]) -> list[list[str]]:
    """One row per server and concurrency; one FAILED row for a server that failed."""
    rows = []
    for name, result in results.items():
        label = SERVER_LABELS[name] + (" *" if result.note else "")
        if result.failure:
            rows.append([label, "-", "FAILED", *["-"] * (len(LOAD_HEADERS) - 3)])
            continue
        for load in result.loads:
            rows.append(
                [
                    label,
                    str(load.concurrency),
                    fmt(load.rps, 1),
                    fmt(load.p50_ms),
                    fmt(load.p99_ms),
                    fmt(load.p999_ms),
                    f"{load.errors:,} / {load.requests:,}",
                    fmt(result.peak_rss_mib, 0),
                    fmt(result.pss_mib, 0),
                    fmt(load.server_cores),
                    fmt(load.other_cores),
                ]
            )
    return rows


def _peer_load(results: dict[str, ServerResult], name: str, concurrency: int) -> LoadResult | None:
    """The run of server `name` at `concurrency`, if it was measured."""
    other = results.get(name)
    if not other or other.failure:
        return None
    return next((load for load in other.loads if load.concurrency == concurrency), None)


def ratio_rows(results: dict[str, ServerResult]) -> list[list[str]]:
    """Per concurrency, ours / Feast and ours / bare of req/s, p50 and p99 (none when ours failed)."""
    ours = results.get("ours")
    if not ours or ours.failure:
        return []
    rows = []
    for load in ours.loads:
        row = [str(load.concurrency)]
        for peer in (_peer_load(results, "feast", load.concurrency), _peer_load(results, "bare", load.concurrency)):
            row += [ratio(getattr(load, metric), getattr(peer, metric) if peer else None) for metric in RATIO_METRICS]
        rows.append(row)
    return rows


def batch_section(results: dict[str, ServerResult], plan: LoadPlan) -> list[str]:
    """The batch table, its ratios and its note; nothing when no server made batch calls."""
    rows = []
    for name, result in results.items():
        batch = result.batch
        if result.failure or batch is None:
            continue
        rows.append(
            [
                SERVER_LABELS[name],
                batch.endpoint,
                f"{batch.rows_per_call:,}",
                str(batch.calls),
                fmt(batch.tx_per_s, 0) if batch.tx_per_s else (batch.note or "-"),
                fmt(batch.p50_call_ms, 1),
                str(batch.errors),
                fmt(result.batch_peak_rss_mib, 0),
            ]
        )
    if not rows:
        return []
    out = [
        "",
        f"### Batch: {plan.batch_calls} sequential calls of {plan.batch_size:,} payments after one warm-up call",
        "",
        markdown(BATCH_HEADERS, rows, right_from=2),
    ]
    ours = results.get("ours")
    ours_batch = ours.batch if ours and not ours.failure else None
    if ours_batch and ours_batch.tx_per_s:
        others = {n: r.batch for n, r in results.items() if n != "ours" and not r.failure and r.batch}
        out += [
            "",
            "Batch ratios, ours / peer payments/s: "
            + ", ".join(f"vs {SERVER_LABELS[n]} {ratio(ours_batch.tx_per_s, b.tx_per_s)}" for n, b in others.items()),
        ]
    out += ["", BATCH_NOTE]
    return out
