"""The drift job: the feature vectors served in a window against the serving model's reference.

What it compares (Evidently 0.7 computes the statistics and renders the report):
- each model input: a flag or other two-valued feature by Jensen-Shannon distance, any
  other by Wasserstein distance in reference standard deviations. Both are distances,
  not p-values: with a million served rows a p-value flags differences too small to
  matter, while a distance means the same at any window size;
- the prediction: the risk score's distribution (Wasserstein), and each decision's share
  of payments (approve / review / block) against the reference scored with today's thresholds;
- missing values: each input's share of missing values, against the reference's.

A window shorter than a day is compared with the reference's payments at the same hours of
the day (`reference_for_window`), so time of day does not read as drift.

Each statistic past its threshold (Settings) is an alert. The job writes the HTML report
(what it decided, then Evidently's report: monitoring/drift_report.py) and a JSON summary
under FRAUD_DATA_DIR/monitoring/drift/, records the run in
MLflow (experiment `fraud-monitoring`), publishes each alert on the alert stream and
keeps the latest results in Redis, where the scorer's /metrics shows them.
"""

from __future__ import annotations

import json
import logging
import math
import re
import time
import warnings

import numpy as np
import pandas as pd
from mlflow.entities import Metric, RunStatus

with warnings.catch_warnings():
    # Evidently's import-time deprecation notices (numpy.core, litestar) are not the user's to fix.
    warnings.simplefilter("ignore", DeprecationWarning)
    from evidently import DataDefinition, Dataset, Report
    from evidently.core.report import Snapshot
    from evidently.metrics import MissingValueCount, ValueDrift

from contracts.decision import DECISIONS, decide
from contracts.prediction_log import feature_column
from contracts.registry import MONITORING_EXPERIMENT, REFERENCE_TIME_COLUMN, experiment_id, registry_client
from contracts.settings import Settings
from feature_repo.transforms import DAY_S
from monitoring.alerts import publish_drift_run
from monitoring.calibration import Statistic, chance_levels
from monitoring.checks import (
    DECISION_RATE,
    FEATURE_DRIFT,
    MISSING_VALUES,
    PREDICTION_DRIFT,
    DriftCheck,
    DriftRun,
    Window,
)
from monitoring.drift_report import report_page
from monitoring.prediction_log import read_prediction_log
from monitoring.reference import SCORE_COLUMN, feature_columns, load_reference

log = logging.getLogger(__name__)

DECISION_COLUMN = "decision"
WINDOW_COLUMNS = ("tx_datetime", "model_version", "risk_score", DECISION_COLUMN)
# (Evidently's method name, the statistic as alerts name it)
NUMERIC_TEST = ("wasserstein", "wasserstein_distance_norm")
CATEGORICAL_TEST = ("jensenshannon", "jensenshannon_distance")


class DriftJobError(ValueError):
    """The job cannot give a verdict (no traffic, no reference): the message says what to do."""


# --- The window ----------------------------------------------------------------------


def served_window(settings: Settings, window: Window, features: list[str] | None = None) -> pd.DataFrame:
    """Logged predictions of payments inside the window (with these feature columns; None: all)."""
    columns = None if features is None else [*WINDOW_COLUMNS, *map(feature_column, features)]
    logged = read_prediction_log(settings, window.start, window.end, columns=columns)
    inside = (logged["tx_datetime"] >= window.start) & (logged["tx_datetime"] < window.end)
    return logged[inside.to_numpy()]


def serving_version(served: pd.DataFrame) -> str:
    """The model version that scored most of the window."""
    return str(served["model_version"].value_counts().idxmax())


def current_frame(served: pd.DataFrame, features: list[str]) -> pd.DataFrame:
    """The window's model inputs (NaN when missing, or not logged at all), score and decision."""
    columns = {
        name: (
            served[feature_column(name)].to_numpy(np.float64)
            if feature_column(name) in served
            else np.full(len(served), np.nan)
        )
        for name in features
    }
    frame = pd.DataFrame(columns)
    frame[SCORE_COLUMN] = served["risk_score"].to_numpy(np.float64)
    frame[DECISION_COLUMN] = served[DECISION_COLUMN].to_numpy()
    return frame


def reference_frame(reference: pd.DataFrame, settings: Settings) -> pd.DataFrame:
    """The reference in time order (what the calibration's blocks need), with the decision today's
    thresholds give each of its scores."""
    frame = reference.copy()
    if REFERENCE_TIME_COLUMN in frame:
        frame = frame.sort_values(REFERENCE_TIME_COLUMN, kind="stable").drop(columns=REFERENCE_TIME_COLUMN)
    frame = frame.reset_index(drop=True)
    # Rows of the training period carry inputs only: no score, so no decision either.
    frame[DECISION_COLUMN] = [
        None if math.isnan(score) else decide(score, settings) for score in frame[SCORE_COLUMN].tolist()
    ]
    return frame


def reference_for_window(reference: pd.DataFrame, window: Window, settings: Settings) -> pd.DataFrame:
    """For a window shorter than a day, the reference payments made at the same hours of the day.

    Payments differ by hour (night flags, amounts, who pays): a daytime window compared
    with whole days drifts every afternoon. A reference without payment times, or with fewer
    than FRAUD_DRIFT_MIN_ROWS payments at those hours, is used whole (and said so).
    """
    length = (window.end - window.start).total_seconds()
    if length >= DAY_S or REFERENCE_TIME_COLUMN not in reference:
        return reference
    times = pd.to_datetime(reference[REFERENCE_TIME_COLUMN], utc=True)
    of_day = (times - times.dt.floor("D")).dt.total_seconds().to_numpy()
    start = pd.Timestamp(window.start)
    start = start.tz_localize("UTC") if start.tzinfo is None else start.tz_convert("UTC")
    start_of_day = (start - start.floor("D")).total_seconds()
    same_hours = reference[(of_day - start_of_day) % DAY_S < length]
    if len(same_hours) < settings.drift_min_rows:
        log.warning(
            "the reference holds %d payments at %s-%s UTC (fewer than %d): comparing with the whole reference",
            len(same_hours),
            f"{window.start:%H:%M}",
            f"{window.end:%H:%M}",
            settings.drift_min_rows,
        )
        return reference
    return same_hours


# --- The comparison ------------------------------------------------------------------


def drift_test(reference: pd.Series) -> tuple[str, str]:
    """(Evidently method, statistic name) for a feature, from its reference values."""
    return CATEGORICAL_TEST if reference.dropna().nunique() <= 2 else NUMERIC_TEST


def statistics(reference: pd.DataFrame, current: pd.DataFrame, settings: Settings) -> list[Statistic]:
    """Every check's statistic: each input's drift, the score's, each decision's share, each input's
    missing values; each with its configured floor."""
    features = feature_columns(reference.drop(columns=DECISION_COLUMN))
    # A feature with no value on one side has no distribution to compare: its missing-value
    # check is what speaks for it (a field gone missing in every payment).
    compared = [name for name in features if current[name].notna().any() and reference[name].notna().any()]
    checks = []
    for name in compared:
        alerting = name not in settings.drift_report_only
        if drift_test(reference[name]) == CATEGORICAL_TEST:
            checks.append(
                Statistic(
                    FEATURE_DRIFT,
                    name,
                    CATEGORICAL_TEST[1],
                    settings.drift_categorical_threshold,
                    "jensenshannon",
                    name,
                    alerting=alerting,
                )
            )
        else:
            checks.append(
                Statistic(
                    FEATURE_DRIFT,
                    name,
                    NUMERIC_TEST[1],
                    settings.drift_numeric_threshold,
                    "wasserstein",
                    name,
                    alerting=alerting,
                )
            )
    checks.append(
        Statistic(
            PREDICTION_DRIFT,
            SCORE_COLUMN,
            NUMERIC_TEST[1],
            settings.prediction_drift_threshold,
            "wasserstein",
            SCORE_COLUMN,
        )
    )
    checks += [
        Statistic(
            DECISION_RATE,
            f"decision={decision}",
            "share_change",
            settings.decision_rate_max_change,
            "share",
            DECISION_COLUMN,
            value=decision,
        )
        for decision in DECISIONS
    ]
    checks += [
        Statistic(MISSING_VALUES, name, "missing_share_increase", settings.missing_rate_max_increase, "missing", name)
        for name in features
    ]
    return checks


def compare(reference: pd.DataFrame, current: pd.DataFrame, settings: Settings) -> tuple[list[DriftCheck], Snapshot]:
    """Every check of the window against the reference, each against a threshold calibrated for the
    window's size (monitoring/calibration.py), and the Evidently report of them."""
    measured = statistics(reference, current, settings)
    chance = chance_levels(
        reference, measured, len(current), settings.drift_calibration_resamples, settings.drift_chance_margin
    )
    checks = []
    for statistic, level in zip(measured, chance.tolist()):
        value, before, now = statistic.measure(reference, current)
        checks.append(
            DriftCheck(
                statistic.kind,
                statistic.feature,
                statistic.name,
                value,
                threshold=max(statistic.floor, level),
                reference_value=before,
                current_value=now,
                alerting=statistic.alerting,
                floor=statistic.floor,
                chance=level,
            )
        )
    return checks, _report(reference, current, checks)


def _report(reference: pd.DataFrame, current: pd.DataFrame, checks: list[DriftCheck]) -> Snapshot:
    """Evidently's report over the same columns, each drift shown against the job's own threshold."""
    features = feature_columns(reference.drop(columns=DECISION_COLUMN))
    drift = {c.feature: c for c in checks if c.kind in (FEATURE_DRIFT, PREDICTION_DRIFT)}
    categorical = [name for name, check in drift.items() if check.statistic == CATEGORICAL_TEST[1]]
    definition = DataDefinition(
        numerical_columns=[name for name in features if name not in categorical] + [SCORE_COLUMN],
        categorical_columns=[*categorical, DECISION_COLUMN],
    )
    method = {NUMERIC_TEST[1]: NUMERIC_TEST[0], CATEGORICAL_TEST[1]: CATEGORICAL_TEST[0]}
    metrics = [
        ValueDrift(column=name, method=method[check.statistic], threshold=check.threshold)
        for name, check in drift.items()
    ]
    metrics += [MissingValueCount(column=name) for name in features]
    return Report(metrics).run(
        Dataset.from_pandas(current, data_definition=definition),
        Dataset.from_pandas(reference, data_definition=definition),
    )


# --- The run -------------------------------------------------------------------------


def run_drift(
    settings: Settings,
    window: Window,
    model_version: str | None = None,
    reference: pd.DataFrame | None = None,
    record: bool = True,
) -> DriftRun:
    """Compare the window's served payments with the reference of the model that served them.

    model_version: default, the version that scored most of the window (rows of other
    versions are left out and counted). reference: default, the one saved with that
    version in the registry. record: write the report and summary, log the run to MLflow,
    publish alerts and the latest results to Redis.
    """
    started = time.perf_counter()
    if model_version is None:
        # Only the window's own columns: which version served is known before its inputs are.
        model_version = serving_version(_enough_rows(served_window(settings, window, features=[]), window, settings))
    reference = load_reference(settings, model_version) if reference is None else reference
    features = feature_columns(reference)
    served = _enough_rows(served_window(settings, window, features), window, settings)
    mine = served[served["model_version"].astype(str) == model_version]
    if len(mine) < settings.drift_min_rows:
        raise DriftJobError(
            f"model v{model_version} scored {len(mine)} payments in the window "
            f"(at least {settings.drift_min_rows} needed); choose another version or window"
        )
    reference = reference_for_window(reference, window, settings)
    checks, snapshot = compare(reference_frame(reference, settings), current_frame(mine, features), settings)
    run = DriftRun(
        window=window,
        model_version=model_version,
        rows=len(mine),
        reference_rows=len(reference),
        other_version_rows=len(served) - len(mine),
        checks=checks,
        seconds=time.perf_counter() - started,
    )
    if record:
        write_outputs(settings, run, snapshot)
        run.mlflow_run_id = log_to_mlflow(settings, run)
        publish_drift_run(settings, run)
    for check in run.alerts:
        log.warning("drift alert: %s", check.message())
    log.info(
        "drift run over %s rows of v%s: %d alerts, report %s", run.rows, model_version, len(run.alerts), run.html_path
    )
    return run


def _enough_rows(served: pd.DataFrame, window: Window, settings: Settings) -> pd.DataFrame:
    if len(served) < settings.drift_min_rows:
        raise DriftJobError(
            f"only {len(served)} payments were scored between {window.start:%Y-%m-%d %H:%M} and "
            f"{window.end:%Y-%m-%d %H:%M} UTC (at least {settings.drift_min_rows} needed, "
            "FRAUD_DRIFT_MIN_ROWS); widen the window or check that `fraud worker` runs"
        )
    return served


def write_outputs(settings: Settings, run: DriftRun, snapshot: Snapshot) -> None:
    """The HTML report (what the job decided, then Evidently's report) and the JSON summary, in a
    folder of their own per run."""
    folder = settings.monitoring_dir / "drift" / f"{run.finished_at:%Y%m%dT%H%M%S%fZ}-v{run.model_version}"
    folder.mkdir(parents=True, exist_ok=True)
    run.html_path, run.summary_path = folder / "report.html", folder / "summary.json"
    run.html_path.write_text(report_page(run, snapshot.get_html_str(as_iframe=False)), encoding="utf-8")
    run.summary_path.write_text(json.dumps(run.summary(), indent=2))


def log_to_mlflow(settings: Settings, run: DriftRun) -> str:
    """The run in MLflow: its window and version as tags, each statistic as a metric, the files."""
    client = registry_client(settings)
    tags = {
        "model_name": settings.model_name,
        "model_version": run.model_version,
        "window_start": run.window.start.isoformat(),
        "window_end": run.window.end.isoformat(),
        "alerts": str(len(run.alerts)),
    }
    run_id = client.create_run(experiment_id(client, settings, MONITORING_EXPERIMENT), tags=tags).info.run_id
    status = RunStatus.to_string(RunStatus.FAILED)
    try:
        at = int(run.finished_at.timestamp() * 1000)
        values = {_metric_key(check): check.value for check in run.checks} | {"rows": float(run.rows)}
        client.log_batch(run_id, metrics=[Metric(key, value, at, 0) for key, value in values.items()])
        for path in (run.html_path, run.summary_path):
            if path is not None:
                client.log_artifact(run_id, str(path))
        status = RunStatus.to_string(RunStatus.FINISHED)
    finally:
        client.set_terminated(run_id, status)
    return run_id


def _metric_key(check: DriftCheck) -> str:
    return re.sub(r"[^0-9A-Za-z_./ -]", "_", f"{check.kind}/{check.feature}")
