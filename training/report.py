"""An evaluation report a person can look at: curves, score distribution and per-scenario recall.

`write_evaluation_report` renders PNGs and one `index.html` (the Jinja2 template
`templates/evaluation_report.html`) that references them by relative file name, so the
directory can be opened in a browser as is or logged to MLflow with `log_report_to_mlflow`.
Figures are built as `matplotlib.figure.Figure` objects, which draw with the Agg canvas
when saved to PNG: no pyplot, no global backend switch, and no figure registered anywhere
that would have to be closed.
"""

from __future__ import annotations

import numbers
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import jinja2
import mlflow
import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from sklearn.metrics import auc, average_precision_score, precision_recall_curve, roc_curve

from contracts.settings import Settings
from contracts.transactions import scenario_name

IMAGE_FILES: dict[str, str] = {
    "roc": "roc.png",
    "precision_recall": "precision_recall.png",
    "score_distribution": "score_distribution.png",
    "scenarios": "scenarios.png",
}
HTML_FILE = "index.html"
SCENARIO_COLUMNS = [
    "scenario_id",
    "scenario",
    "n_frauds",
    "recall_at_review_threshold",
    "recall_in_top_k",
    "mean_score",
]

CAPTIONS: dict[str, str] = {
    "roc": "ROC curve",
    "precision_recall": "Precision-recall curve",
    "score_distribution": "Score distribution by class",
    "scenarios": "Recall per fraud scenario",
}

_DPI = 100
_HIST_BINS = 50
# Autoescape: every value shown (a title, a metric name) is text, never markup.
_TEMPLATES = jinja2.Environment(
    loader=jinja2.PackageLoader("training", "templates"), autoescape=True, undefined=jinja2.StrictUndefined
)


@dataclass(frozen=True)
class EvaluationReport:
    """Where a written report lives.

    `images` maps "roc", "precision_recall", "score_distribution" and, when the frame had
    fraud scenarios, "scenarios" to their PNG files. `scenario_metrics` has the columns of
    `scenario_metrics()` (None without a `fraud_scenario` column).
    """

    directory: Path
    html: Path
    images: dict[str, Path]
    scenario_metrics: pd.DataFrame | None


def scenario_metrics(
    frame: pd.DataFrame, scores: np.ndarray, review_threshold: float, top_k: int | None = None
) -> pd.DataFrame:
    """One row per fraud scenario: how many of its frauds the model catches.

    Only fraud rows (`is_fraud == 1`) count, grouped by `fraud_scenario` (rows without an id
    are left out). Columns:

    - `scenario_id`, `scenario` (readable name), `n_frauds`;
    - `recall_at_review_threshold`: share of the scenario's frauds with score >= threshold;
    - `recall_in_top_k`: share of the scenario's frauds among the k highest-scored rows of the
      whole frame, k = `top_k` or, by default, the number of frauds in the frame (the alert
      budget with which a perfect ranking would catch every fraud). Rows tied with the k-th
      score are included, so the result does not depend on row order;
    - `mean_score`: mean score of the scenario's frauds.

    Inputs are taken as valid (one finite score per row, 0/1 labels): `write_evaluation_report`
    checks them before calling this.
    """
    scores = np.asarray(scores, dtype=np.float64)
    frauds = frame["is_fraud"].to_numpy() == 1
    k = int(frauds.sum()) if top_k is None else top_k
    cutoff = _kth_highest(scores, k)
    data = pd.DataFrame(
        {
            "scenario_id": pd.to_numeric(frame["fraud_scenario"], errors="coerce").to_numpy()[frauds],
            "score": scores[frauds],
        }
    ).dropna(subset=["scenario_id"])
    data["flagged"] = data["score"] >= review_threshold
    data["in_top_k"] = data["score"] >= cutoff
    table = (
        data.groupby("scenario_id", sort=True)
        .agg(
            n_frauds=("score", "size"),
            recall_at_review_threshold=("flagged", "mean"),
            recall_in_top_k=("in_top_k", "mean"),
            mean_score=("score", "mean"),
        )
        .reset_index()
    )
    table["scenario_id"] = table["scenario_id"].astype(np.int64)
    table["scenario"] = [scenario_name(int(i)) for i in table["scenario_id"]]
    return table[SCENARIO_COLUMNS]


def write_evaluation_report(
    frame: pd.DataFrame,
    scores: np.ndarray,
    out_dir: Path,
    *,
    title: str,
    metrics: dict[str, float],
    review_threshold: float = 0.3,
    top_k: int | None = None,
) -> EvaluationReport:
    """Write PNG charts and an `index.html` for a binary fraud model scored on `frame`.

    `frame` needs `is_fraud` (0/1) and may have `fraud_scenario` (0 legitimate, 1..4 the
    simulator's scenarios); `scores` holds one score per row, in row order, higher meaning
    riskier. `metrics` is shown as given; `review_threshold` is the score from which a payment
    goes to review; `top_k` is passed to `scenario_metrics`. The directory is created if
    needed and a chart left there by an earlier report but not produced now is removed.
    """
    labels, scores = _validated(frame, scores, review_threshold)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    images = {key: out_dir / IMAGE_FILES[key] for key in ("roc", "precision_recall", "score_distribution")}
    _plot_roc(labels, scores, review_threshold, images["roc"])
    _plot_precision_recall(labels, scores, review_threshold, images["precision_recall"])
    _plot_score_distribution(labels, scores, review_threshold, images["score_distribution"])

    table = None
    if "fraud_scenario" in frame.columns:
        table = scenario_metrics(frame, scores, review_threshold, top_k)
        if table.empty:  # no fraud carries a scenario id: nothing to chart
            table = None
    if table is not None:
        images["scenarios"] = out_dir / IMAGE_FILES["scenarios"]
        _plot_scenarios(table, review_threshold, images["scenarios"])
    # A stale scenario chart from an earlier report would be shown in MLflow as if current.
    for key, name in IMAGE_FILES.items():
        if key not in images:
            (out_dir / name).unlink(missing_ok=True)

    page = out_dir / HTML_FILE
    page.write_text(_render_html(title, metrics, labels, scores, review_threshold, table, images), encoding="utf-8")
    return EvaluationReport(directory=out_dir, html=page, images=images, scenario_metrics=table)


def report_dir(settings: Settings, kind: str) -> Path:
    """A fresh folder for one report under FRAUD_DATA_DIR/reports (reports are logged whole)."""
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
    path = settings.data_dir / "reports" / f"{kind}-{stamp}"
    path.mkdir(parents=True, exist_ok=False)
    return path


def log_report_to_mlflow(report: EvaluationReport, artifact_path: str = "evaluation") -> None:
    """Log every file of the report directory as artifacts of the active MLflow run.

    A run must be active (inside `with mlflow.start_run():`); logging the whole directory is
    why each report should get a directory of its own.
    """
    if mlflow.active_run() is None:
        raise RuntimeError("log_report_to_mlflow needs an active MLflow run; call it inside `with mlflow.start_run():`")
    mlflow.log_artifacts(str(report.directory), artifact_path)


# ----------------------------------------------------------------------------- validation


def _validated(frame: pd.DataFrame, scores: np.ndarray, review_threshold: float) -> tuple[np.ndarray, np.ndarray]:
    """Labels as 0/1 ints and scores as floats, or a ValueError saying what to fix."""
    if "is_fraud" not in frame.columns:
        raise ValueError("frame has no 'is_fraud' column; the report needs the 0/1 fraud label of every scored row")
    scores = np.asarray(scores, dtype=np.float64)
    if scores.ndim != 1:
        raise ValueError(f"scores must hold one score per row (1-D), got shape {scores.shape}")
    if len(scores) != len(frame):
        raise ValueError(
            f"got {len(scores)} scores for {len(frame)} rows; pass exactly one score "
            "per row of frame, in the same order"
        )
    if not np.isfinite(scores).all():
        raise ValueError("scores contain NaN or infinite values; score every row before the report")
    if not np.isfinite(review_threshold):
        raise ValueError(f"review_threshold must be a finite score, got {review_threshold}")
    raw = frame["is_fraud"]
    if raw.isna().any() or not raw.isin([0, 1]).all():
        raise ValueError("is_fraud must be 0 or 1 on every row; drop unlabelled rows first")
    labels = raw.to_numpy().astype(np.int8)
    if len(labels) == 0 or labels.min() == labels.max():
        raise ValueError(
            "the frame needs both frauds and legitimate payments for ROC and "
            "precision-recall curves; evaluate on a period that has both"
        )
    return labels, scores


def _kth_highest(scores: np.ndarray, k: int) -> float:
    """The k-th highest score (inf when k <= 0, so nothing is in the top k)."""
    if k <= 0:
        return float("inf")
    k = min(k, len(scores))
    return float(np.partition(scores, len(scores) - k)[len(scores) - k])


def _operating_point(labels: np.ndarray, scores: np.ndarray, threshold: float) -> tuple[float, float, float]:
    """False positive rate, recall and precision (NaN when nothing is flagged) at `threshold`."""
    flagged = scores >= threshold
    true_positives = int((flagged & (labels == 1)).sum())
    fpr = float((flagged & (labels == 0)).sum() / (labels == 0).sum())
    recall = true_positives / float((labels == 1).sum())
    precision = true_positives / flagged.sum() if flagged.any() else float("nan")
    return fpr, recall, float(precision)


# ----------------------------------------------------------------------------- charts


def _save(figure: Figure, path: Path) -> None:
    # A bare Figure is not tracked by pyplot: once saved and dropped it is garbage collected.
    figure.savefig(path, dpi=_DPI)


def _plot_roc(labels: np.ndarray, scores: np.ndarray, threshold: float, path: Path) -> None:
    fpr, tpr, _ = roc_curve(labels, scores)
    point_fpr, point_recall, _ = _operating_point(labels, scores, threshold)
    figure = Figure(figsize=(5.5, 5), layout="constrained")
    ax = figure.add_subplot()
    ax.plot(fpr, tpr, color="tab:blue", label=f"model (AUC = {auc(fpr, tpr):.3f})")
    ax.plot([0, 1], [0, 1], linestyle="--", color="grey", label="chance (AUC = 0.5)")
    ax.plot([point_fpr], [point_recall], "o", color="tab:red", label=f"review threshold {threshold:g}")
    ax.set(
        title="ROC curve",
        xlabel="False positive rate",
        ylabel="True positive rate (recall)",
        xlim=(0, 1),
        ylim=(0, 1.01),
    )
    ax.legend(loc="lower right")
    _save(figure, path)


def _plot_precision_recall(labels: np.ndarray, scores: np.ndarray, threshold: float, path: Path) -> None:
    precision, recall, _ = precision_recall_curve(labels, scores)
    base_rate = float(labels.mean())
    _, point_recall, point_precision = _operating_point(labels, scores, threshold)
    figure = Figure(figsize=(5.5, 5), layout="constrained")
    ax = figure.add_subplot()
    ax.plot(
        recall,
        precision,
        drawstyle="steps-post",
        color="tab:blue",
        label=f"model (AP = {average_precision_score(labels, scores):.3f})",
    )
    ax.axhline(base_rate, linestyle="--", color="grey", label=f"fraud base rate ({base_rate:.2%})")
    if not np.isnan(point_precision):
        ax.plot([point_recall], [point_precision], "o", color="tab:red", label=f"review threshold {threshold:g}")
    ax.set(title="Precision-recall curve", xlabel="Recall", ylabel="Precision", xlim=(0, 1), ylim=(0, 1.01))
    ax.legend(loc="lower left")
    _save(figure, path)


def _plot_score_distribution(labels: np.ndarray, scores: np.ndarray, threshold: float, path: Path) -> None:
    low, high = float(scores.min()), float(scores.max())
    if low == high:  # histogram bin edges must increase
        low, high = low - 0.5, high + 0.5
    bins = np.linspace(low, high, _HIST_BINS + 1).tolist()
    figure = Figure(figsize=(7, 4.5), layout="constrained")
    ax = figure.add_subplot()
    # Log counts: frauds are a tiny minority and would vanish on a linear axis.
    for value, name, color in ((0, "legitimate", "tab:blue"), (1, "fraud", "tab:red")):
        subset = scores[labels == value]
        ax.hist(subset, bins=bins, log=True, alpha=0.55, color=color, label=f"{name} (n = {len(subset):,})")
    ax.axvline(threshold, linestyle="--", color="black", label=f"review threshold {threshold:g}")
    ax.set(title="Score distribution by class", xlabel="Score", ylabel="Transactions (log scale)")
    ax.legend(loc="upper center")
    _save(figure, path)


def _plot_scenarios(table: pd.DataFrame, threshold: float, path: Path) -> None:
    figure = Figure(figsize=(7, 1.2 + 0.6 * len(table)), layout="constrained")
    ax = figure.add_subplot()
    positions = np.arange(len(table))
    recalls = table["recall_at_review_threshold"].to_numpy()
    ax.barh(positions, recalls, color="tab:red", alpha=0.8)
    caught = np.rint(recalls * table["n_frauds"].to_numpy()).astype(int)
    for y, recall, hit, total in zip(positions, recalls, caught, table["n_frauds"]):
        ax.text(min(recall, 1.0) + 0.01, float(y), f"{recall:.0%} ({hit}/{total})", va="center")
    ax.set_yticks(positions, labels=table["scenario"].tolist())
    ax.invert_yaxis()  # first scenario on top, as in the table
    ax.set(
        title=f"Recall per fraud scenario at review threshold {threshold:g}",
        xlabel="Share of the scenario's frauds flagged",
        xlim=(0, 1.25),
    )
    _save(figure, path)


# ----------------------------------------------------------------------------- HTML


def _format_value(value: object) -> str:
    """Integers as they are, other numbers with four decimals, anything else as text."""
    if isinstance(value, (bool, np.bool_, numbers.Integral)):
        return str(value)
    if isinstance(value, numbers.Real):
        return f"{float(value):.4f}"
    return str(value)


def _summary(labels: np.ndarray, scores: np.ndarray, threshold: float) -> str:
    n_frauds = int(labels.sum())
    _, recall, precision = _operating_point(labels, scores, threshold)
    flagged = int((scores >= threshold).sum())
    text = (
        f"{len(labels):,} transactions scored, {n_frauds:,} frauds "
        f"(base rate {n_frauds / len(labels):.2%}). At the review threshold {threshold:g} "
        f"the model flags {flagged:,} transactions"
    )
    return text + ("." if flagged == 0 else f": recall {recall:.1%}, precision {precision:.1%}.")


def _render_html(
    title: str,
    metrics: dict[str, float],
    labels: np.ndarray,
    scores: np.ndarray,
    threshold: float,
    table: pd.DataFrame | None,
    images: dict[str, Path],
) -> str:
    return (
        _TEMPLATES.get_template("evaluation_report.html").render(
            title=title,
            summary=_summary(labels, scores, threshold),
            threshold=f"{threshold:g}",
            metrics=[(name, _format_value(value)) for name, value in metrics.items()],
            scenarios=[] if table is None else list(table.itertuples()),
            images=[{"file": path.name, "caption": CAPTIONS[key]} for key, path in images.items()],
        )
        + "\n"
    )
