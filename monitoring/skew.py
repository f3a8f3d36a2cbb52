"""Training-serving skew: features the scorer served against the same payments retrieved offline."""

from __future__ import annotations

import numpy as np
import pandas as pd
from feast import FeatureService, FeatureStore

from contracts.events import ScoringEvent
from training.dataset import build_training_set

TOLERANCE = 1e-6


def events_to_transactions(events: list[ScoringEvent]) -> pd.DataFrame:
    """The payments of logged scoring events, as raw-contract rows."""
    frame = pd.DataFrame([event.transaction for event in events])
    frame["transaction_id"] = frame["transaction_id"].astype(str)
    frame["tx_datetime"] = pd.to_datetime(frame["tx_datetime"], utc=True)
    return frame


def skew_report(
    store: FeatureStore, service: FeatureService, events: list[ScoringEvent], tolerance: float = TOLERANCE
) -> pd.DataFrame:
    """Per feature: how many logged values differ from the offline value for the same payment.

    Both missing counts as equal; one missing and the other not is a mismatch.
    Columns: feature, compared, mismatches, mismatch_share, max_abs_diff.
    """
    if not events:
        raise ValueError("no scoring events to check; score some payments first")
    offline = build_training_set(store, service, events_to_transactions(events))
    served = pd.DataFrame([event.features for event in events])
    rows = []
    for feature in served.columns:
        online_values = pd.to_numeric(served[feature], errors="coerce").to_numpy(np.float64)
        offline_values = pd.to_numeric(offline[feature], errors="coerce").to_numpy(np.float64)
        both_missing = np.isnan(online_values) & np.isnan(offline_values)
        diff = np.abs(online_values - offline_values)
        mismatch = ~both_missing & ~(diff <= tolerance)
        rows.append(
            {
                "feature": feature,
                "compared": len(online_values),
                "mismatches": int(mismatch.sum()),
                "mismatch_share": float(mismatch.mean()),
                "max_abs_diff": float(np.nanmax(diff)) if (~np.isnan(diff)).any() else 0.0,
            }
        )
    return pd.DataFrame(rows)
