"""The evaluation report: valid PNG charts, an HTML page over them, scenario recall, MLflow logging."""

from __future__ import annotations

import os
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path

import matplotlib.image
import mlflow
import numpy as np
import pandas as pd
import pytest
from mlflow.tracking import MlflowClient

from training.report import (
    EvaluationReport,
    log_report_to_mlflow,
    scenario_name,
    write_evaluation_report,
)

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
BASE_IMAGES = {"roc", "precision_recall", "score_distribution"}


class _PageParser(HTMLParser):
    """Collects the page's <img src> values and its visible text."""

    def __init__(self) -> None:
        super().__init__()
        self.sources: list[str] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "img":
            self.sources.extend(value for name, value in attrs if name == "src" and value)

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def _parse(page: Path) -> _PageParser:
    parser = _PageParser()
    parser.feed(page.read_text(encoding="utf-8"))
    return parser


@pytest.fixture()
def scored() -> tuple[pd.DataFrame, np.ndarray]:
    """2,000 payments, about 5% fraud spread over scenarios 1-4, frauds scored higher."""
    rng = np.random.default_rng(11)
    n = 2_000
    is_fraud = (rng.random(n) < 0.05).astype(int)
    scenario = np.where(is_fraud == 1, rng.integers(1, 5, n), 0)
    scores = np.where(is_fraud == 1, rng.beta(4, 2, n), rng.beta(1, 8, n))
    return pd.DataFrame({"is_fraud": is_fraud, "fraud_scenario": scenario}), scores


@pytest.fixture()
def report(scored: tuple[pd.DataFrame, np.ndarray], tmp_path: Path) -> EvaluationReport:
    frame, scores = scored
    return write_evaluation_report(
        frame,
        scores,
        tmp_path / "report",
        title="Test week",
        metrics={"auc_roc": 0.8765, "card_precision_at_100": 0.1234},
    )


def _hand_built() -> tuple[pd.DataFrame, np.ndarray]:
    """Five legitimate rows; frauds: scenario 1 at 0.9 and 0.1, scenario 3 at 0.4, 0.8 and 0.9,
    scenario 7 (unknown id) at 0.25.

    Six frauds, so by default k = 6: the sixth highest score is 0.25 (a legitimate 0.95 ranks first).
    """
    rows = [
        (0, 0, 0.05),
        (0, 0, 0.2),
        (0, 0, 0.95),
        (0, 0, 0.1),
        (0, 0, 0.0),
        (1, 1, 0.9),
        (1, 1, 0.1),
        (1, 3, 0.4),
        (1, 3, 0.8),
        (1, 3, 0.9),
        (1, 7, 0.25),
    ]
    frame = pd.DataFrame(rows, columns=["is_fraud", "fraud_scenario", "score"])
    return frame[["is_fraud", "fraud_scenario"]], frame["score"].to_numpy()


# ----------------------------------------------------------------------------- files


def test_report_writes_every_chart_as_a_decodable_png(report: EvaluationReport) -> None:
    assert set(report.images) == BASE_IMAGES | {"scenarios"}
    for key, path in report.images.items():
        assert path.parent == report.directory, key
        data = path.read_bytes()
        assert data.startswith(PNG_SIGNATURE), key
        assert len(data) > 5_000, f"{key} is suspiciously small ({len(data)} bytes)"
        pixels = matplotlib.image.imread(path)
        assert pixels.shape[0] >= 200 and pixels.shape[1] >= 200, key
        assert pixels.std() > 0, f"{key} is a blank image"


def test_report_leaves_no_pyplot_figure_open(scored: tuple[pd.DataFrame, np.ndarray], tmp_path: Path) -> None:
    import matplotlib.pyplot as plt

    before = set(plt.get_fignums())
    frame, scores = scored
    write_evaluation_report(frame, scores, tmp_path, title="t", metrics={})
    assert set(plt.get_fignums()) == before


def test_html_references_every_image_by_relative_name(report: EvaluationReport) -> None:
    assert report.html == report.directory / "index.html"
    sources = _parse(report.html).sources
    assert sorted(sources) == sorted(path.name for path in report.images.values())
    for source in sources:
        assert (report.html.parent / source).is_file(), source


def test_html_shows_title_metric_names_values_and_scenario_names(report: EvaluationReport) -> None:
    text = " ".join(_parse(report.html).text)
    assert "Test week" in text
    for name, value in (("auc_roc", "0.8765"), ("card_precision_at_100", "0.1234")):
        assert name in text and value in text
    for scenario_id in (1, 2, 3, 4):
        assert scenario_name(scenario_id) in text


def test_html_escapes_title_and_metric_names(scored: tuple[pd.DataFrame, np.ndarray], tmp_path: Path) -> None:
    frame, scores = scored
    title = "<script>alert('x')</script> & co"
    report = write_evaluation_report(frame, scores, tmp_path, title=title, metrics={"<b>auc</b>": 0.5})
    page = report.html.read_text(encoding="utf-8")
    assert "<script>" not in page and "<b>" not in page
    assert "&lt;script&gt;" in page and "&lt;b&gt;auc&lt;/b&gt;" in page and "&amp; co" in page
    text = " ".join(_parse(report.html).text)
    assert title in text and "<b>auc</b>" in text  # the browser shows the original text


def test_integer_metrics_are_shown_without_decimals(scored: tuple[pd.DataFrame, np.ndarray], tmp_path: Path) -> None:
    frame, scores = scored
    report = write_evaluation_report(frame, scores, tmp_path, title="t", metrics={"n_test": 12345, "auc_roc": 0.5})
    text = _parse(report.html).text
    assert "12345" in text and "0.5000" in text


# ----------------------------------------------------------------------------- scenarios


def test_scenario_metrics_are_computed_per_scenario_on_a_hand_built_frame(tmp_path: Path) -> None:
    frame, scores = _hand_built()
    table = write_evaluation_report(
        frame, scores, tmp_path, title="t", metrics={}, review_threshold=0.3
    ).scenario_metrics
    assert table is not None
    assert table["scenario_id"].tolist() == [1, 3, 7]
    assert table["scenario"].tolist() == ["large amount", "compromised card", "scenario 7"]
    assert table["n_frauds"].tolist() == [2, 3, 1]
    assert table["recall_at_review_threshold"].tolist() == [0.5, 1.0, 0.0]
    # Top 6 scores: 0.95 (legitimate), 0.9, 0.9, 0.8, 0.4, 0.25; the 0.1 fraud is out.
    assert table["recall_in_top_k"].tolist() == [0.5, 1.0, 1.0]
    assert table["mean_score"].tolist() == pytest.approx([0.5, 0.7, 0.25])


def test_a_score_equal_to_the_review_threshold_counts_as_flagged(tmp_path: Path) -> None:
    frame, scores = _hand_built()
    table = write_evaluation_report(
        frame, scores, tmp_path, title="t", metrics={}, review_threshold=0.4
    ).scenario_metrics
    assert table is not None
    assert table.set_index("scenario_id")["recall_at_review_threshold"].to_dict() == {1: 0.5, 3: 1.0, 7: 0.0}


def test_explicit_top_k_sets_the_alert_budget(tmp_path: Path) -> None:
    frame, scores = _hand_built()
    table = write_evaluation_report(frame, scores, tmp_path, title="t", metrics={}, top_k=2).scenario_metrics
    assert table is not None
    # Top 2: the legitimate 0.95, then 0.9 shared by a scenario 1 and a scenario 3 fraud:
    # ties with the k-th score are in, whatever their row order.
    recall = table.set_index("scenario_id")["recall_in_top_k"]
    assert recall.to_list() == pytest.approx([0.5, 1 / 3, 0.0])


def test_scenario_names_follow_the_simulator_ids() -> None:
    assert [scenario_name(i) for i in (1, 2, 3, 4, 9)] == [
        "large amount",
        "compromised terminal",
        "compromised card",
        "account takeover",
        "scenario 9",
    ]


def test_without_scenario_column_there_is_no_scenario_chart_or_table(
    scored: tuple[pd.DataFrame, np.ndarray], tmp_path: Path
) -> None:
    frame, scores = scored
    report = write_evaluation_report(
        frame.drop(columns="fraud_scenario"), scores, tmp_path, title="t", metrics={"auc_roc": 0.9}
    )
    assert set(report.images) == BASE_IMAGES
    assert report.scenario_metrics is None
    assert not (tmp_path / "scenarios.png").exists()
    text = " ".join(_parse(report.html).text)
    assert "Fraud scenarios" not in text and scenario_name(1) not in text


def test_rewriting_without_scenarios_removes_the_stale_scenario_chart(
    scored: tuple[pd.DataFrame, np.ndarray], tmp_path: Path
) -> None:
    frame, scores = scored
    first = write_evaluation_report(frame, scores, tmp_path, title="t", metrics={})
    assert first.images["scenarios"].is_file()
    write_evaluation_report(frame.drop(columns="fraud_scenario"), scores, tmp_path, title="t", metrics={})
    assert not first.images["scenarios"].exists()


# ----------------------------------------------------------------------------- invalid input


def test_mismatched_lengths_raise_value_error(scored: tuple[pd.DataFrame, np.ndarray], tmp_path: Path) -> None:
    frame, scores = scored
    with pytest.raises(ValueError, match="one score per row"):
        write_evaluation_report(frame, scores[:-1], tmp_path, title="t", metrics={})


@pytest.mark.parametrize("label", [0, 1])
def test_single_class_input_raises_value_error(label: int, tmp_path: Path) -> None:
    frame = pd.DataFrame({"is_fraud": [label] * 4})
    with pytest.raises(ValueError, match="both frauds and legitimate"):
        write_evaluation_report(frame, np.linspace(0, 1, 4), tmp_path, title="t", metrics={})


def test_missing_is_fraud_column_raises_value_error(tmp_path: Path) -> None:
    frame = pd.DataFrame({"fraud_scenario": [0, 1]})
    with pytest.raises(ValueError, match="is_fraud"):
        write_evaluation_report(frame, np.array([0.1, 0.9]), tmp_path, title="t", metrics={})


def test_non_binary_labels_raise_value_error(tmp_path: Path) -> None:
    frame = pd.DataFrame({"is_fraud": [0, 1, 2]})
    with pytest.raises(ValueError, match="0 or 1"):
        write_evaluation_report(frame, np.array([0.1, 0.5, 0.9]), tmp_path, title="t", metrics={})


def test_nan_scores_raise_value_error(tmp_path: Path) -> None:
    frame = pd.DataFrame({"is_fraud": [0, 1, 0]})
    with pytest.raises(ValueError, match="NaN"):
        write_evaluation_report(frame, np.array([0.1, np.nan, 0.2]), tmp_path, title="t", metrics={})


# ----------------------------------------------------------------------------- MLflow


@pytest.fixture()
def local_mlflow(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A throwaway sqlite tracking store; its experiment id is yielded.

    `mlflow.set_tracking_uri` also writes MLFLOW_TRACKING_URI, so the previous value of that
    variable is the URI to restore (None unsets both) for the tests that use the session store.
    """
    # MLflow's default experiment keeps artifacts in ./mlruns: keep any stray run out of the repo.
    monkeypatch.chdir(tmp_path)
    previous = os.environ.get("MLFLOW_TRACKING_URI")
    mlflow.set_tracking_uri(f"sqlite:///{tmp_path}/m.db")
    try:
        yield mlflow.create_experiment("report-test", artifact_location=(tmp_path / "art").as_uri())
    finally:
        # A run left active by a failing test would otherwise be ended (written) at exit
        # in whatever store is current by then.
        while mlflow.active_run() is not None:
            mlflow.end_run()
        mlflow.set_tracking_uri(previous)


def test_log_report_to_mlflow_logs_every_report_file_into_the_run(report: EvaluationReport, local_mlflow: str) -> None:
    with mlflow.start_run(experiment_id=local_mlflow) as run:
        log_report_to_mlflow(report)
    client = MlflowClient()
    logged = {Path(item.path).name for item in client.list_artifacts(run.info.run_id, "evaluation")}
    expected = {report.html.name} | {path.name for path in report.images.values()}
    assert logged == expected
    local = client.download_artifacts(run.info.run_id, "evaluation/index.html")
    assert Path(local).read_bytes() == report.html.read_bytes()


def test_log_report_to_mlflow_uses_the_given_artifact_path(report: EvaluationReport, local_mlflow: str) -> None:
    with mlflow.start_run(experiment_id=local_mlflow) as run:
        log_report_to_mlflow(report, artifact_path="reports/test_week")
    client = MlflowClient()
    assert client.list_artifacts(run.info.run_id, "evaluation") == []
    logged = {Path(item.path).name for item in client.list_artifacts(run.info.run_id, "reports/test_week")}
    assert report.html.name in logged and "roc.png" in logged


def test_log_report_to_mlflow_without_an_active_run_raises(report: EvaluationReport, local_mlflow: str) -> None:
    # The throwaway store is there so a regression (MLflow silently starting a run) cannot
    # write into the working directory's default store.
    assert mlflow.active_run() is None
    with pytest.raises(RuntimeError, match="active MLflow run"):
        log_report_to_mlflow(report)
