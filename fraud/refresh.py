"""The daily job, `fraud features refresh`: new raw files -> contract check -> features -> online store.

1. every file waiting in FRAUD_DATA_DIR/inbox is checked and ingested (data/raw_store.py),
   then moved to inbox/done; a rejected file goes to inbox/rejected with its report beside
   it, and nothing of it is stored;
2. the offline tables get the new payments' rows only (feature_repo/pipeline.py:
   `extend_offline_tables`); payments older than the last build make it a full build;
3. every stored view is loaded into the online store up to the midnight after the newest
   payment (terminal labels up to a label delay later: every label the data carries).
"""

from __future__ import annotations

import shutil
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import pandas as pd

from contracts.settings import Settings
from contracts.tracing import step
from data.contract import CSV_SUFFIXES, PARQUET_SUFFIXES, ContractError, InputFileError
from data.raw_store import RawStore
from feature_repo.pipeline import BuildResult, LateData, build_offline_tables, extend_offline_tables
from feature_repo.store import Loaded, apply_definitions, feature_store, limit_offline_memory, materialize_views


@dataclass
class RefreshReport:
    """What one run of the daily job did, and how long each step took."""

    ingested: list[tuple[str, int]] = field(default_factory=list)  # file, payments
    rejected: list[tuple[str, str]] = field(default_factory=list)  # file, report
    build: BuildResult | None = None
    full_build_because: str | None = None
    loaded: list[Loaded] = field(default_factory=list)
    seconds: dict[str, float] = field(default_factory=dict)


def refresh_features(settings: Settings) -> RefreshReport:
    """Run the daily job once (see the module docstring)."""
    report = RefreshReport()
    limit_offline_memory(settings)
    started = time.perf_counter()
    with step("features.ingest"):
        new_ids = _ingest_inbox(settings, report)
    report.seconds["ingest"] = time.perf_counter() - started
    if not new_ids:
        return report
    started = time.perf_counter()
    transactions = RawStore(settings).load()
    new = transactions["transaction_id"].isin(new_ids)
    try:
        report.build = extend_offline_tables(settings, transactions, new)
    except LateData as reason:
        report.full_build_because = str(reason)
        report.build = build_offline_tables(settings, transactions)
    report.seconds["features"] = time.perf_counter() - started
    started = time.perf_counter()
    store = feature_store(settings)
    if not {view.name for view in store.list_feature_views()}:
        apply_definitions(store, settings)
    with step("features.materialize"):
        report.loaded = materialize_views(store, settings, end=_next_midnight(report.build.built_until))
    report.seconds["materialize"] = time.perf_counter() - started
    return report


def _ingest_inbox(settings: Settings, report: RefreshReport) -> set[str]:
    inbox = settings.inbox_dir
    files = sorted(p for p in inbox.glob("*") if p.is_file() and p.suffix.lower() in PARQUET_SUFFIXES + CSV_SUFFIXES)
    store, new_ids = RawStore(settings), set()
    for path in files:
        try:
            result = store.ingest_file(path)
        except (InputFileError, ContractError) as error:
            _move(path, inbox / "rejected").with_name(f"{path.name}.report.txt").write_text(f"{error}\n")
            report.rejected.append((path.name, str(error).splitlines()[0]))
            continue
        new_ids |= set(pd.read_parquet(result.path, columns=["transaction_id"])["transaction_id"])
        _move(path, inbox / "done")
        report.ingested.append((path.name, result.rows))
    return new_ids


def _move(path: Path, folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    return Path(shutil.move(path, folder / path.name))


def _next_midnight(moment: pd.Timestamp) -> datetime:
    """The midnight after the newest payment: the daily device snapshot of the next day is stamped then."""
    return (moment.floor("D") + pd.Timedelta(days=1)).to_pydatetime()
