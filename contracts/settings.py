"""One typed settings object for the whole platform, read from the environment.

Every default makes `make demo` work on a fresh clone; production overrides them
through environment variables (REDIS_URL, MLFLOW_TRACKING_URI, FRAUD_DATA_DIR, ...).
"""

from __future__ import annotations

import os
from pathlib import Path
from urllib.parse import unquote, urlparse

from pydantic import AliasChoices, Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

REPO_ROOT = Path(__file__).resolve().parent.parent


def default_data_dir() -> Path:
    """`.fraud-data` in a source checkout (what `make demo` uses); for an installed package, the
    user's data folder, never the site-packages it was installed in."""
    if (REPO_ROOT / "pyproject.toml").is_file():
        return REPO_ROOT / ".fraud-data"
    return Path(os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share") / "fraud-platform"


class Settings(BaseSettings):
    """Platform configuration. Field names map to FRAUD_* variables unless an alias says otherwise."""

    model_config = SettingsConfigDict(env_prefix="FRAUD_", extra="ignore", populate_by_name=True)

    data_dir: Path = Field(default_factory=default_data_dir)
    redis_url: str = Field(
        default="redis://127.0.0.1:6379/0",
        validation_alias=AliasChoices("REDIS_URL", "redis_url"),
    )
    mlflow_tracking_uri: str = Field(
        default="",
        validation_alias=AliasChoices("MLFLOW_TRACKING_URI", "mlflow_tracking_uri"),
        description="Empty means a SQLite store under data_dir.",
    )
    model_name: str = "fraud_detector"
    feature_service: str = "fraud_detection_v1"
    label_delay_days: int = Field(default=7, ge=0)
    review_threshold: float = Field(default=0.3, ge=0.0, le=1.0)
    block_threshold: float = Field(default=0.8, ge=0.0, le=1.0)
    # The validation gate (training/validate.py): a candidate failing any is not registered.
    gate_min_average_precision: float = Field(default=0.3, ge=0.0, le=1.0)
    gate_min_recall_at_review: float = Field(default=0.3, ge=0.0, le=1.0)
    gate_max_regression: float = Field(default=0.01, ge=0.0, le=1.0)
    gate_min_training_frauds: int = Field(default=20, ge=1)
    # How often a running scorer checks where `champion` points.
    model_poll_seconds: float = Field(default=5.0, gt=0.0)
    duckdb_memory_limit: str = Field(default="3GB", description="DuckDB spills to disk past this")
    scoring_stream: str = "fraud:scoring-events"
    scoring_stream_maxlen: int = Field(default=2_000_000, ge=1000)
    # Monitoring (monitoring/drift.py): a statistic past its threshold raises an alert.
    drift_numeric_threshold: float = Field(
        default=0.1, gt=0.0, description="Wasserstein distance in reference standard deviations"
    )
    drift_categorical_threshold: float = Field(
        default=0.1, gt=0.0, le=1.0, description="Jensen-Shannon distance, for flags and few-valued features"
    )
    # Shown in the report, never alerting, because they move with the calendar: a 24-hour
    # window is all weekend or none of it, and while a history is young (every device is
    # new when the data starts) every device's age grows by a day each day.
    drift_report_only: list[str] = Field(default=["tx_during_weekend", "device_age_days"])
    prediction_drift_threshold: float = Field(default=0.1, gt=0.0, description="as drift_numeric_threshold")
    decision_rate_max_change: float = Field(
        default=0.05, gt=0.0, le=1.0, description="largest change in any decision's share of payments"
    )
    missing_rate_max_increase: float = Field(
        default=0.05, gt=0.0, le=1.0, description="largest rise in a feature's share of missing values"
    )
    drift_min_rows: int = Field(default=200, ge=1, description="fewer served payments give no verdict")
    # The chance level of each drift check (monitoring/calibration.py): clean windows of the
    # window's size drawn from the reference; 0 resamples: the configured floors alone.
    drift_calibration_resamples: int = Field(default=200, ge=0)
    drift_chance_margin: float = Field(default=1.5, gt=0.0, description="times the largest clean resample's statistic")
    reference_max_rows: int = Field(default=100_000, ge=1000)
    # Days of the training period whose inputs (without scores) the reference adds before the
    # holdout: how much one week's inputs differ from another's (monitoring/calibration.py).
    reference_context_days: int = Field(default=7, ge=0)
    # Rollout analysis (monitoring/rollout.py): a challenger against the champion, per interval.
    rollout_min_rows: int = Field(default=200, ge=1, description="fewer payments per version give no verdict")
    rollout_max_score_distance: float = Field(
        default=0.1, gt=0.0, description="Wasserstein distance of the two versions' risk scores (scores in [0, 1])"
    )
    rollout_min_decision_agreement: float = Field(
        default=0.9, ge=0.0, le=1.0, description="shadow: share of payments both versions decide alike"
    )
    rollout_max_block_rate_ratio: float = Field(
        default=2.0, gt=1.0, description="challenger's block rate over the champion's"
    )
    rollout_max_p99_latency_ratio: float = Field(
        default=1.5, gt=1.0, description="canary: challenger's p99 latency over the champion's"
    )
    # The watcher (monitoring/rollout_watch.py): what it does with the verdicts, interval by interval.
    rollout_watch_seconds: float = Field(default=300.0, gt=0.0, description="`fraud rollout watch`'s interval")
    rollout_breach_intervals: int = Field(
        default=3, ge=1, description="breached intervals in a row that stop a rollout (or roll back a bake)"
    )
    rollout_promote_after_intervals: int = Field(
        default=0, ge=0, description="healthy intervals in a row that promote the challenger; 0: a person promotes"
    )
    rollout_bake_seconds: float = Field(
        default=3600.0, ge=0.0, description="after a promotion, how long the new champion is watched against the old"
    )
    alert_stream: str = "fraud:alerts"
    alert_stream_maxlen: int = Field(default=100_000, ge=100)
    drift_results_key: str = "fraud:monitoring:latest-drift"

    @model_validator(mode="after")
    def _resolve(self) -> Settings:
        self.data_dir = self.data_dir.expanduser().resolve()
        if not self.mlflow_tracking_uri:
            self.mlflow_tracking_uri = f"sqlite:///{self.data_dir / 'mlflow.db'}"
        if self.review_threshold > self.block_threshold:
            raise ValueError("FRAUD_REVIEW_THRESHOLD must not exceed FRAUD_BLOCK_THRESHOLD")
        return self

    # Where each stage keeps its files; everything lives under data_dir.
    @property
    def raw_dir(self) -> Path:
        return self.data_dir / "raw" / "transactions"

    @property
    def incoming_dir(self) -> Path:
        return self.data_dir / "incoming"

    @property
    def inbox_dir(self) -> Path:
        """Where raw files wait for the daily job (`fraud features refresh`)."""
        return self.data_dir / "inbox"

    @property
    def offline_dir(self) -> Path:
        return self.data_dir / "features"

    @property
    def feast_dir(self) -> Path:
        return self.data_dir / "feast"

    @property
    def mlflow_artifacts_dir(self) -> Path:
        return self.data_dir / "mlartifacts"

    @property
    def monitoring_dir(self) -> Path:
        return self.data_dir / "monitoring"

    @property
    def redis_db(self) -> int:
        path = urlparse(self.redis_url).path.strip("/")
        return int(path) if path else 0

    @property
    def feast_redis_connection(self) -> str:
        """REDIS_URL in the `host:port,db=N,password=...` form Feast's Redis store expects."""
        url = urlparse(self.redis_url)
        parts = [f"{url.hostname or '127.0.0.1'}:{url.port or 6379}", f"db={self.redis_db}"]
        if url.password:
            parts.append(f"password={unquote(url.password)}")
        if url.scheme == "rediss":
            parts.append("ssl=true")
        return ",".join(parts)

    @property
    def registry_location(self) -> str:
        """MLFLOW_TRACKING_URI without its password (for messages)."""
        url = urlparse(self.mlflow_tracking_uri)
        if not url.password:
            return self.mlflow_tracking_uri
        return url._replace(netloc=url.netloc.replace(f":{url.password}@", ":***@")).geturl()

    @property
    def local_registry_file(self) -> Path | None:
        """The SQLite file of a local registry (None for a server or another database).

        Readers check it exists before connecting: MLflow would create an empty one.
        """
        prefix = "sqlite:///"  # then the path as SQLAlchemy reads it: absolute after four slashes
        if not self.mlflow_tracking_uri.startswith(prefix):
            return None
        return Path(unquote(self.mlflow_tracking_uri.removeprefix(prefix).split("?", 1)[0]))

    @property
    def redis_location(self) -> str:
        """host:port/db of the Redis in use, without credentials (for messages)."""
        url = urlparse(self.redis_url)
        return f"{url.hostname or '127.0.0.1'}:{url.port or 6379}/{self.redis_db}"

    def environment(self) -> dict[str, str]:
        """The variables that point another process (a command, `mlflow ui`, `feast ui`) at this
        deployment: its data dir, Redis and registry, and what feature_store.yaml expands."""
        return {
            "FRAUD_DATA_DIR": str(self.data_dir),
            "REDIS_URL": self.redis_url,
            "MLFLOW_TRACKING_URI": self.mlflow_tracking_uri,
            **self.feast_variables(),
        }

    def feast_variables(self) -> dict[str, str]:
        """The variables feature_repo/feature_store.yaml expands: what Feast's own CLI needs in its
        environment (`fraud env` prints them), and what the platform substitutes itself."""
        return {"FRAUD_DATA_DIR": str(self.data_dir), "FRAUD_FEAST_REDIS": self.feast_redis_connection}
