"""The test registry reached through a relay a test can cut (a registry outage on demand), and small
real models registered through the platform's own path."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from urllib.parse import urlparse

import numpy as np
import pandas as pd
import xgboost as xgb

from contracts.settings import Settings
from tests.support.tcp_proxy import TcpProxy
from training.reference import build_reference
from training.register import CandidateRun, Lineage, log_and_register
from training.report import write_evaluation_report
from training.validate import GateCheck


@contextmanager
def relayed_registry(settings: Settings, **changes: object) -> Iterator[tuple[Settings, TcpProxy]]:
    """`settings` (with `changes`) whose MLflow URI goes through a relay to the run's PostgreSQL registry."""
    url = urlparse(os.environ["MLFLOW_TRACKING_URI"])
    proxy = TcpProxy(url.hostname or "127.0.0.1", url.port or 5432).start()
    relayed_uri = url._replace(netloc=f"{url.username}@127.0.0.1:{proxy.port}").geturl()
    try:
        yield Settings(**{**settings.model_dump(), **changes, "mlflow_tracking_uri": relayed_uri}), proxy
    finally:
        proxy.cut()


def register(settings: Settings, seed: int) -> str:
    """A small real model, registered through the platform's own registration path."""
    rng = np.random.default_rng(seed)
    names = ["amount", "customer_id_nb_tx_1day_window"]
    frame = pd.DataFrame(rng.uniform(0, 5, size=(200, 2)), columns=names)
    frame["is_fraud"] = (frame["amount"] > 4).astype(int)
    frame["tx_datetime"] = pd.date_range("2024-01-01", periods=len(frame), freq="h", tz="UTC")
    booster = xgb.train(
        {"objective": "binary:logistic", "seed": seed},
        xgb.DMatrix(frame[names], label=frame["is_fraud"], feature_names=names),
        3,
    )
    report = write_evaluation_report(
        frame,
        booster.inplace_predict(frame[names].to_numpy()),
        settings.data_dir / f"report-{seed}",
        title="t",
        metrics={"auc_roc": 1.0},
    )
    lineage = Lineage(
        feature_service="fraud_detection_v1",
        feature_names=names,
        data_source="test",
        data_start="2024-01-01",
        data_end="2024-01-31",
        data_rows=200,
        data_frauds=int(frame["is_fraud"].sum()),
        code_version="test",
    )
    candidate = CandidateRun(
        params={"seed": seed},
        metrics={"auc_roc": 1.0},
        training_set=frame,
        lineage=lineage,
        checks=[GateCheck("t", True, None, None, "ok")],
        report=report,
    )
    reference = build_reference(frame, names, booster.inplace_predict(frame[names].to_numpy()), max_rows=1000)
    version = log_and_register(settings, booster, candidate, reference)
    return str(version.version)
