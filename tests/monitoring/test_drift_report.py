"""The drift run's report.html says what the job decided: a header with the window, the model
version, the rows compared and the checks that alerted, every check's verdict (report-only
columns marked so, decision shares and missing values included), above Evidently's report."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from html import unescape
from html.parser import HTMLParser

import numpy as np
import pandas as pd
import pytest

from contracts.settings import Settings
from monitoring.checks import DECISION_RATE, FEATURE_DRIFT, MISSING_VALUES, DriftCheck, DriftRun, Window
from monitoring.drift import compare, reference_frame, write_outputs
from monitoring.drift_report import decision_header

ROWS = 3000
WINDOW = Window(datetime(2024, 2, 14, tzinfo=UTC), datetime(2024, 2, 15, tzinfo=UTC))


class HeaderTables(HTMLParser):
    """The decision header's tables: each table's class, its rows as lists of cell texts."""

    def __init__(self) -> None:
        super().__init__()
        self.tables: dict[str, list[list[str]]] = {}
        self._table: str | None = None
        self._cell: list[str] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "table":
            self._table = dict(attrs).get("class") or ""
            self.tables[self._table] = []
        elif tag == "tr" and self._table is not None:
            self.tables[self._table].append([])
        elif tag in ("td", "th") and self._table is not None:
            self._cell = []

    def handle_endtag(self, tag: str) -> None:
        if tag in ("td", "th") and self._table is not None and self._cell is not None:
            self.tables[self._table][-1].append(" ".join("".join(self._cell).split()))
            self._cell = None
        elif tag == "table":
            self._table = None

    def handle_data(self, data: str) -> None:
        if self._cell is not None:
            self._cell.append(data)


def header_of(page: str) -> str:
    start = page.index('<section id="fraud-drift-decision">')
    return page[start : page.index("</section>", start) + len("</section>")]


def tables_of(header: str) -> dict[str, list[list[str]]]:
    parser = HeaderTables()
    parser.feed(header)
    return parser.tables


def row_of(table: list[list[str]], kind: str, feature: str) -> list[str]:
    (row,) = [row for row in table if row[:2] == [kind, feature]]
    return row


@pytest.fixture(scope="module")
def written_report(settings: Settings) -> tuple[DriftRun, str]:
    """A run over a window where amount moved (alerts), the report-only weekend flag moved (never
    alerts) and device age went missing in a third of payments (alerts); its report.html."""
    rng = np.random.default_rng(11)

    def payments(rows: int) -> pd.DataFrame:
        return pd.DataFrame(
            {
                "amount": rng.gamma(2.0, 25.0, rows),
                "tx_during_weekend": (rng.random(rows) < 0.25).astype(float),
                "device_age_days": rng.gamma(2.0, 40.0, rows),
                "risk_score": rng.beta(0.5, 12.0, rows),
            }
        )

    local = Settings(**{**settings.model_dump(), "drift_report_only": ["tx_during_weekend"]})
    reference, current = payments(ROWS), payments(ROWS)
    current["amount"] *= 2
    current["tx_during_weekend"] = (rng.random(ROWS) < 0.8).astype(float)
    current.loc[rng.random(ROWS) < 0.33, "device_age_days"] = np.nan
    current["decision"] = reference_frame(current, local)["decision"]
    checks, snapshot = compare(reference_frame(reference, local), current, local)
    run = DriftRun(
        window=WINDOW, model_version="7", rows=ROWS, reference_rows=ROWS, other_version_rows=12, checks=checks
    )
    write_outputs(local, run, snapshot)
    assert run.html_path is not None
    return run, run.html_path.read_text(encoding="utf-8")


def test_report_opens_with_the_window_model_version_and_rows(written_report) -> None:
    _, page = written_report
    header = header_of(page)
    body = page.index("<body")
    assert page.index(header) == page.index(">", body) + 1  # first thing in the page's body
    facts = {row[0]: row[1] for row in tables_of(header)["run"]}
    assert facts["Window"] == "2024-02-14T00:00:00+00:00 to 2024-02-15T00:00:00+00:00"
    assert facts["Model version"] == "7"
    assert facts["Rows compared"] == (
        f"current: {ROWS} payments scored by v7 (12 of other versions left out); reference: {ROWS}"
    )
    assert "Drift run of model v7: 2 alerts" in header


def test_report_lists_the_checks_that_alerted_and_only_those(written_report) -> None:
    run, page = written_report
    header = header_of(page)
    assert {(c.kind, c.feature) for c in run.alerts} == {(FEATURE_DRIFT, "amount"), (MISSING_VALUES, "device_age_days")}
    decision = unescape(header[header.index("<h2>Decision</h2>") : header.index("<h2>Distribution drift")])
    assert decision.count("<li") == 2
    for check in run.alerts:
        assert check.message() in decision
    assert "no alert" not in decision
    distribution = tables_of(header)["distribution"]
    assert row_of(distribution, FEATURE_DRIFT, "amount")[-1] == "ALERT"
    assert row_of(distribution, FEATURE_DRIFT, "device_age_days")[-1] == "ok"


def test_report_only_columns_are_marked_so_in_the_header_and_in_evidently(written_report) -> None:
    run, page = written_report
    weekend = next(c for c in run.checks if c.kind == FEATURE_DRIFT and c.feature == "tx_during_weekend")
    assert weekend.value > weekend.threshold and not weekend.fired
    row = row_of(tables_of(header_of(page))["distribution"], FEATURE_DRIFT, "tx_during_weekend")
    assert row[-1] == "report-only (past its threshold)"
    assert row[3] == f"{weekend.value:.4f}" and row[4] == f"{weekend.threshold:.4f}"
    evidently = page.replace(header_of(page), "")  # its widgets' data sits in the page's <head>
    assert "Drift in column 'tx_during_weekend' (report-only: never alerts)" in evidently
    assert "Drift in column 'amount'\"" in evidently  # an alerting column keeps Evidently's title


def test_report_shows_decision_shares_and_missing_values_in_a_table(written_report) -> None:
    run, page = written_report
    shares = tables_of(header_of(page))["shares"]
    for check in run.checks:
        if check.kind in (DECISION_RATE, MISSING_VALUES):
            row = row_of(shares, check.kind, check.feature)
            assert row[3:6] == [f"{check.reference_value:.4f}", f"{check.current_value:.4f}", f"{check.value:.4f}"]
            assert row[-1] == ("ALERT" if check.fired else "ok")
    assert {row[1] for row in shares if row[0] == DECISION_RATE} == {
        "decision=approve",
        "decision=review",
        "decision=block",
    }
    missing = row_of(shares, MISSING_VALUES, "device_age_days")
    assert missing[-1] == "ALERT" and float(missing[4]) == pytest.approx(0.33, abs=0.03)


def test_a_run_without_alerts_says_no_alert() -> None:
    quiet = DriftCheck(FEATURE_DRIFT, "amount", "wasserstein_distance_norm", 0.02, 0.1)
    run = DriftRun(
        window=Window.ending(datetime(2024, 3, 1, tzinfo=UTC), timedelta(hours=24)),
        model_version="4",
        rows=500,
        reference_rows=900,
        other_version_rows=0,
        checks=[quiet],
    )
    header = decision_header(run)
    assert "Drift run of model v4: no alert" in header
    assert '<p class="no-alert">no alert' in header and "<li" not in header
