"""What a drift run found: its window, each check against its threshold, the alerts.

Plain data; `DriftRun.summary()` is what contracts/drift_results.py stores for the
scorer's /metrics.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

from contracts.drift_results import DriftCheckResult, DriftSummary

FEATURE_DRIFT = "feature_drift"
PREDICTION_DRIFT = "prediction_drift"
DECISION_RATE = "decision_rate"
MISSING_VALUES = "missing_values"


@dataclass(frozen=True)
class Window:
    """Payments dated start <= t < end (UTC)."""

    start: datetime
    end: datetime

    @classmethod
    def ending(cls, end: datetime, length: timedelta) -> Window:
        return cls(start=end - length, end=end)


_DURATION = re.compile(r"^(\d+)\s*([mhd])$")
_UNITS = {"m": "minutes", "h": "hours", "d": "days"}


def parse_duration(text: str) -> timedelta:
    """'90m', '24h' or '7d' as a timedelta."""
    match = _DURATION.match(text.strip().lower())
    if not match or int(match.group(1)) == 0:
        raise ValueError(f"window {text!r} is not a positive duration like 90m, 24h or 7d")
    return timedelta(**{_UNITS[match.group(2)]: int(match.group(1))})


@dataclass(frozen=True)
class DriftCheck:
    """One statistic of the window against the reference, and whether it raises an alert."""

    kind: str
    feature: str
    statistic: str
    value: float
    threshold: float
    reference_value: float | None = None
    current_value: float | None = None
    alerting: bool = True  # report-only checks are shown, never alert
    floor: float | None = None  # the configured distance: smaller changes do not matter
    chance: float | None = None  # what chance alone reaches at this window's size (calibrated)

    @property
    def fired(self) -> bool:
        return self.alerting and self.value > self.threshold

    def result(self) -> DriftCheckResult:
        """The check as the latest-results contract stores it."""
        return DriftCheckResult(
            kind=self.kind,
            feature=self.feature,
            statistic=self.statistic,
            value=self.value,
            threshold=self.threshold,
            reference_value=self.reference_value,
            current_value=self.current_value,
            alerting=self.alerting,
            floor=self.floor,
            chance=self.chance,
            fired=self.fired,
        )

    def message(self) -> str:
        shares = ""
        if self.reference_value is not None and self.current_value is not None:
            shares = f" (reference {self.reference_value:.4f}, window {self.current_value:.4f})"
        basis = ""
        if self.floor is not None and self.chance is not None:
            basis = f" [floor {self.floor:.4f}, chance at this window size {self.chance:.4f}]"
        return (
            f"{self.kind}: {self.feature} {self.statistic} = {self.value:.4f} > threshold {self.threshold:.4f}"
            f"{basis}{shares}"
        )


@dataclass
class DriftRun:
    """A finished drift run: its window, what it compared, the checks, where the report is."""

    window: Window
    model_version: str
    rows: int
    reference_rows: int
    other_version_rows: int
    checks: list[DriftCheck]
    html_path: Path | None = None
    summary_path: Path | None = None
    seconds: float = 0.0
    mlflow_run_id: str | None = None
    finished_at: datetime = field(default_factory=lambda: datetime.now(UTC))

    @property
    def alerts(self) -> list[DriftCheck]:
        return [check for check in self.checks if check.fired]

    def summary(self) -> DriftSummary:
        return {
            "window_start": self.window.start.isoformat(),
            "window_end": self.window.end.isoformat(),
            "model_version": self.model_version,
            "rows": self.rows,
            "reference_rows": self.reference_rows,
            "other_version_rows": self.other_version_rows,
            "finished_at": self.finished_at.isoformat(),
            "seconds": round(self.seconds, 3),
            "html_report": str(self.html_path) if self.html_path else None,
            "alerts": [{**asdict(check), "message": check.message()} for check in self.alerts],
            "checks": [check.result() for check in self.checks],
        }
