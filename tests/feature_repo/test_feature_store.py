"""The feature store on real Feast: historical retrieval keeps entity order; the Feast CLI works."""

from __future__ import annotations

import os
import subprocess
import sys

import httpx

from contracts.net import free_port
from feature_repo.store import FEATURE_REPO_DIR
from feature_repo.transforms import entity_frame
from tests.support.processes import started
from training.dataset import build_training_set


def test_historical_features_come_back_in_entity_order(feature_store, transactions, settings) -> None:
    service = feature_store.get_feature_service(settings.feature_service)
    sample = transactions.sample(n=25, random_state=3)
    joined = build_training_set(feature_store, service, sample)
    assert joined["transaction_id"].tolist() == sample["transaction_id"].tolist()
    assert joined["customer_id"].tolist() == sample["customer_id"].tolist()
    assert (joined["amount"].to_numpy() == sample["tx_amount"].to_numpy()).all()


def test_feast_cli_apply_publishes_the_feature_service(feature_store, settings) -> None:
    env = {**os.environ, **settings.feast_variables()}
    feast = os.path.join(os.path.dirname(sys.executable), "feast")
    result = subprocess.run([feast, "apply"], cwd=FEATURE_REPO_DIR, env=env, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-2000:]
    listed = subprocess.run(
        [feast, "feature-services", "list"], cwd=FEATURE_REPO_DIR, env=env, capture_output=True, text=True
    )
    assert listed.returncode == 0, listed.stderr[-2000:]
    assert settings.feature_service in listed.stdout


def test_entity_frame_has_no_label_columns(transactions) -> None:
    # Labels must never reach the feature store as request data.
    assert not {"is_fraud", "fraud_scenario"} & set(entity_frame(transactions.head()).columns)


def _feast(*args: str, settings, cwd=FEATURE_REPO_DIR, **kwargs) -> subprocess.CompletedProcess:
    env = {**os.environ, **settings.feast_variables()}
    feast = os.path.join(os.path.dirname(sys.executable), "feast")
    return subprocess.run([feast, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=300, **kwargs)


def test_feast_plan_is_clean_right_after_fraud_features_apply(online_until, settings, tmp_path) -> None:
    # The session's world is applied and materialised; `fraud features apply` runs from another folder.
    fraud = os.path.join(os.path.dirname(sys.executable), "fraud")
    applied = subprocess.run([fraud, "features", "apply"], cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert applied.returncode == 0, applied.stderr[-2000:]
    plan = _feast("plan", settings=settings)
    assert plan.returncode == 0, plan.stderr[-2000:]
    assert "No changes to registry" in plan.stdout, plan.stdout[-3000:]
    assert "Updated" not in plan.stdout and "Created" not in plan.stdout and "Deleted" not in plan.stdout


def test_feast_ui_serves_the_platforms_registry(feature_store, settings) -> None:
    port = free_port()
    feast = os.path.join(os.path.dirname(sys.executable), "feast")
    argv = [feast, "-c", str(FEATURE_REPO_DIR), "ui", "--host", "127.0.0.1", "--port", str(port)]
    base = f"http://127.0.0.1:{port}"
    with started(argv, {**os.environ, **settings.feast_variables()}, f"{base}/health"):
        assert httpx.get(f"{base}/", timeout=10).status_code == 200  # the UI's page
        services = httpx.get(f"{base}/api/v1/feature_services", params={"project": "fraud_detection"}, timeout=30)
    assert services.status_code == 200, services.text[:500]
    assert settings.feature_service in services.text
