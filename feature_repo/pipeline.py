"""The feature pipeline: raw store -> offline feature tables (parquet with event timestamps)."""

from __future__ import annotations

import logging
import os
import tempfile
from pathlib import Path

import pandas as pd

from data.settings import Settings
from feature_repo.transforms import customer_spending_table, device_profile_table, terminal_risk_table

log = logging.getLogger(__name__)

TABLES = ("customer_spending", "terminal_risk", "device_profile")


def build_offline_tables(settings: Settings, transactions: pd.DataFrame) -> dict[str, Path]:
    """Compute every offline feature table from raw transactions and write them atomically."""
    tables = {
        "customer_spending": customer_spending_table(transactions),
        "terminal_risk": terminal_risk_table(transactions, settings.label_delay_days),
        "device_profile": device_profile_table(transactions),
    }
    settings.offline_dir.mkdir(parents=True, exist_ok=True)
    paths = {}
    for name, table in tables.items():
        paths[name] = _write_atomically(table, settings.offline_dir / f"{name}.parquet")
        log.info("wrote %s: %d rows", name, len(table))
    return paths


def _write_atomically(table: pd.DataFrame, path: Path) -> Path:
    # Readers (Feast, a running materialisation) never see a half-written table.
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".parquet.tmp")
    os.close(fd)
    try:
        table.to_parquet(tmp, index=False)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    return path
