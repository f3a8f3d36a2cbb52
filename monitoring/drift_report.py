"""The drift run's report page: what the job decided, on top of Evidently's report of the same data.

Evidently's report alone misleads: it says "Data drift detected" on report-only columns
(FRAUD_DRIFT_REPORT_ONLY), which never alert, and it does not show the decision-share and
missing-value checks the job alerts on. The page written is Evidently's HTML with, right after
<body>, a header: the window, the model version, the rows compared, the checks that alerted (or
"no alert"), and a table of every check with its verdict. Evidently's own widget of each
report-only column is titled as such.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass

import jinja2

from monitoring.checks import DECISION_RATE, FEATURE_DRIFT, MISSING_VALUES, PREDICTION_DRIFT, DriftCheck, DriftRun

log = logging.getLogger(__name__)

ALERT = "ALERT"
OK = "ok"
REPORT_ONLY = "report-only"
REPORT_ONLY_TITLE = " (report-only: never alerts)"
_BODY = re.compile(r"<body[^>]*>", re.IGNORECASE)

# Autoescape: every value shown (a feature name, a message) is text, never markup.
_HEADER = jinja2.Environment(autoescape=True, undefined=jinja2.StrictUndefined).from_string(
    """\
<section id="fraud-drift-decision">
<style>
#fraud-drift-decision { font-family: system-ui, sans-serif; margin: 1.5rem auto; max-width: 1200px; color: #222; }
#fraud-drift-decision table { border-collapse: collapse; margin: 0.5rem 0 1.2rem; }
#fraud-drift-decision th, #fraud-drift-decision td { border: 1px solid #ccc; padding: 0.25rem 0.6rem; }
#fraud-drift-decision th { background: #f3f3f3; text-align: left; }
#fraud-drift-decision td.num { text-align: right; font-variant-numeric: tabular-nums; }
#fraud-drift-decision .ALERT { color: #b00020; font-weight: bold; }
#fraud-drift-decision .report-only { color: #666; font-style: italic; }
</style>
<h1>Drift run of model v{{ run.model_version }}: {{ headline }}</h1>
<table class="run">
<tr><th>Window</th><td>{{ run.window.start.isoformat() }} to {{ run.window.end.isoformat() }}</td></tr>
<tr><th>Model version</th><td>{{ run.model_version }}</td></tr>
<tr><th>Rows compared</th><td>current: {{ run.rows }} payments scored by v{{ run.model_version }}
 ({{ run.other_version_rows }} of other versions left out); reference: {{ run.reference_rows }}</td></tr>
<tr><th>Finished</th><td>{{ run.finished_at.isoformat() }}</td></tr>
</table>
<h2>Decision</h2>
{%- if alerts %}
<ul class="alerts">
{%- for check in alerts %}
<li class="ALERT">{{ check.message() }}</li>
{%- endfor %}
</ul>
{%- else %}
<p class="no-alert">no alert: every alerting check is within its threshold.</p>
{%- endif %}
<h2>Distribution drift (inputs and risk score)</h2>
<table class="distribution">
<thead><tr><th>Check</th><th>Column</th><th>Statistic</th><th>Value</th><th>Threshold</th>
<th>Floor</th><th>Chance level</th><th>Verdict</th></tr></thead><tbody>
{%- for row in distribution %}
<tr><td>{{ row.check.kind }}</td><td>{{ row.check.feature }}</td><td>{{ row.check.statistic }}</td>
<td class="num">{{ row.value }}</td><td class="num">{{ row.threshold }}</td><td class="num">{{ row.floor }}</td>
<td class="num">{{ row.chance }}</td><td class="{{ row.verdict_class }}">{{ row.verdict }}</td></tr>
{%- endfor %}
</tbody></table>
<h2>Decision shares and missing values</h2>
<table class="shares">
<thead><tr><th>Check</th><th>Of</th><th>Statistic</th><th>Reference share</th><th>Window share</th>
<th>Change</th><th>Threshold</th><th>Verdict</th></tr></thead><tbody>
{%- for row in shares %}
<tr><td>{{ row.check.kind }}</td><td>{{ row.check.feature }}</td><td>{{ row.check.statistic }}</td>
<td class="num">{{ row.reference }}</td><td class="num">{{ row.current }}</td><td class="num">{{ row.value }}</td>
<td class="num">{{ row.threshold }}</td><td class="{{ row.verdict_class }}">{{ row.verdict }}</td></tr>
{%- endfor %}
</tbody></table>
<p>Below, Evidently's report of the same columns, each drift against the job's threshold.
Columns marked report-only (FRAUD_DRIFT_REPORT_ONLY) are measured and shown, and never alert.
Evidently does not show the decision-share checks: the table above does.</p>
</section>
"""
)


@dataclass(frozen=True)
class CheckRow:
    """One check as the header's tables show it."""

    check: DriftCheck
    value: str
    threshold: str
    floor: str
    chance: str
    reference: str
    current: str
    verdict: str

    @property
    def verdict_class(self) -> str:
        return self.verdict.split(" ")[0]


def verdict(check: DriftCheck) -> str:
    """ALERT, ok, or report-only (saying when the statistic is past its threshold all the same)."""
    if check.fired:
        return ALERT
    if not check.alerting:
        return f"{REPORT_ONLY} (past its threshold)" if check.value > check.threshold else REPORT_ONLY
    return OK


def _number(value: float | None) -> str:
    return "" if value is None else f"{value:.4f}"


def _row(check: DriftCheck) -> CheckRow:
    return CheckRow(
        check=check,
        value=_number(check.value),
        threshold=_number(check.threshold),
        floor=_number(check.floor),
        chance=_number(check.chance),
        reference=_number(check.reference_value),
        current=_number(check.current_value),
        verdict=verdict(check),
    )


def decision_header(run: DriftRun) -> str:
    """The HTML section saying what the run decided, and every check's verdict."""
    alerts = run.alerts
    headline = f"{len(alerts)} alert{'s' if len(alerts) != 1 else ''}" if alerts else "no alert"
    return _HEADER.render(
        run=run,
        headline=headline,
        alerts=alerts,
        distribution=[_row(c) for c in run.checks if c.kind in (FEATURE_DRIFT, PREDICTION_DRIFT)],
        shares=[_row(c) for c in run.checks if c.kind in (DECISION_RATE, MISSING_VALUES)],
    )


def report_page(run: DriftRun, evidently_html: str) -> str:
    """Evidently's standalone HTML with the decision header after <body>, and its widget of each
    report-only column titled as report-only."""
    page = evidently_html
    for check in run.checks:
        if check.kind == FEATURE_DRIFT and not check.alerting:
            page = _title_report_only(page, check.feature)
    header = decision_header(run)
    body = _BODY.search(page)
    if body is None:
        log.warning("Evidently's report has no <body> tag: the decision header goes first in the page")
        return header + page
    return page[: body.end()] + header + page[body.end() :]


def _title_report_only(page: str, column: str) -> str:
    # Evidently titles each column's drift widget so, in the JSON the page renders from.
    title = f"Drift in column '{column}'"
    if title not in page:
        log.warning("no Evidently drift widget titled %r: not marked report-only there", title)
        return page
    return page.replace(title, title + REPORT_ONLY_TITLE)
