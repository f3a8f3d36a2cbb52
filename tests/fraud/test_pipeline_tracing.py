"""Pipeline steps as spans: a feature build in process (the SDK's in-memory exporter), and a
`fraud` command as one trace over real OTLP/HTTP: its root span, its step below."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from contracts.settings import REPO_ROOT, Settings
from feature_repo.pipeline import build_offline_tables
from tests.support.tracing import OtlpSink, clean_environment, recorded_spans

FRAUD = str(Path(sys.executable).parent / "fraud")


def test_a_feature_build_is_one_span_counting_its_rows_per_view(settings, transactions, tmp_path: Path) -> None:
    local = Settings(**{**settings.model_dump(), "data_dir": tmp_path})  # the session's tables stay as they are
    with recorded_spans() as exporter:
        result = build_offline_tables(local, transactions)
    (build,) = [s for s in exporter.get_finished_spans() if s.name == "features.build"]
    attributes = dict(build.attributes or {})
    assert attributes["fraud.incremental"] is False
    assert attributes["fraud.transactions"] == len(transactions)
    assert {k: v for k, v in attributes.items() if k.startswith("fraud.rows.")} == {
        f"fraud.rows.{view}": rows for view, rows in result.rows.items()
    }


def test_a_fraud_command_is_one_trace_its_step_below_its_root(transactions, tmp_path: Path) -> None:
    raw = tmp_path / "payments.parquet"
    transactions.drop(columns=["fraud_scenario"], errors="ignore").head(50).to_parquet(raw)
    sink = OtlpSink()
    try:
        env = clean_environment(FRAUD_DATA_DIR=str(tmp_path / "data"), OTEL_EXPORTER_OTLP_ENDPOINT=sink.url)
        done = subprocess.run([FRAUD, "ingest", str(raw)], env=env, cwd=REPO_ROOT, capture_output=True, timeout=120)
        assert done.returncode == 0, done.stderr.decode()
        spans = {name: (service, span) for service, name, span in sink.spans()}
    finally:
        sink.close()
    assert set(spans) == {"fraud ingest", "data.ingest"}
    assert {service for service, _ in spans.values()} == {"fraud-cli"}
    root, ingest = spans["fraud ingest"][1], spans["data.ingest"][1]
    assert not root.parent_span_id  # type: ignore[attr-defined]
    assert ingest.parent_span_id == root.span_id  # type: ignore[attr-defined]
    assert [(a.key, a.value.string_value) for a in ingest.attributes] == [("fraud.file", raw.name)]  # type: ignore[attr-defined]
