"""The Prometheus and Grafana files docker-compose mounts: they must only query series the
scorer exports, and point at the services compose defines."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from pathlib import PurePosixPath

import redis
import yaml
from prometheus_client.parser import text_string_to_metric_families

from contracts.settings import REPO_ROOT, Settings
from monitoring.alerts import publish_drift_run
from monitoring.checks import FEATURE_DRIFT, DriftCheck, DriftRun, Window
from serving.metrics import DriftCollector, ModelCollector, ScorerMetrics

MONITORING = REPO_ROOT / "monitoring"
METRIC = re.compile(r"\b(fraud_[a-z_]+)")


def exported_series(settings: Settings) -> set[str]:
    """Every series name the scorer's /metrics can show, a drift run's included."""
    local = Settings(**{**settings.model_dump(), "drift_results_key": "fraud:test-dashboards:latest"})
    run = DriftRun(
        window=Window.ending(datetime.now(UTC), timedelta(hours=24)),
        model_version="1",
        rows=500,
        reference_rows=1000,
        other_version_rows=0,
        checks=[DriftCheck(FEATURE_DRIFT, "amount", "wasserstein_distance_norm", 0.3, 0.1)],
    )
    client = redis.Redis.from_url(local.redis_url)
    try:
        publish_drift_run(local, run)
        metrics = ScorerMetrics()
        metrics.observe_request("/score", "POST", 200, 0.001)
        metrics.decisions.labels("approve").inc()
        metrics.risk_score.observe(0.1)
        metrics.missing.labels("device_age_days").inc()
        metrics.events_dropped.inc()
        text = metrics.exposition([ModelCollector(lambda: ("m", "1", "2")), DriftCollector(local, client)]).decode()
    finally:
        client.delete(local.drift_results_key, local.alert_stream)
        client.close()
    return {found.name for family in text_string_to_metric_families(text) for found in family.samples}


def dashboard_queries() -> list[str]:
    dashboard = json.loads((MONITORING / "grafana" / "dashboards" / "fraud-scorer.json").read_text())
    return [target["expr"] for panel in dashboard["panels"] for target in panel["targets"]]


def rule_queries() -> list[str]:
    rules = yaml.safe_load((MONITORING / "prometheus" / "alerts.yml").read_text())
    return [rule["expr"] for group in rules["groups"] for rule in group["rules"]]


def test_dashboard_and_alert_rules_query_only_exported_series(settings) -> None:
    exported = exported_series(settings)
    queried = {name for expr in dashboard_queries() + rule_queries() for name in METRIC.findall(expr)}
    assert len(queried) >= 8
    assert queried <= exported, f"not exported by the scorer: {sorted(queried - exported)}"


def test_prometheus_scrapes_the_compose_scorer_and_loads_the_rules() -> None:
    config = yaml.safe_load((MONITORING / "prometheus" / "prometheus.yml").read_text())
    compose = yaml.safe_load((REPO_ROOT / "docker-compose.yml").read_text())
    (job,) = config["scrape_configs"]
    assert job["metrics_path"] == "/metrics"
    assert job["static_configs"][0]["targets"] == ["scorer:8000"]
    assert "8000:8000" in compose["services"]["scorer"]["ports"]
    # Rule files resolve against the config's folder, in the container as under promtool.
    mounts = container_mounts(compose["services"]["prometheus"]["volumes"])
    config_folder = PurePosixPath(mounts["./monitoring/prometheus/prometheus.yml"]).parent
    for rule_file in config["rule_files"]:
        assert mounts[f"./monitoring/prometheus/{rule_file}"] == str(config_folder / rule_file)


def test_prometheus_sends_alerts_to_the_compose_alertmanager() -> None:
    config = yaml.safe_load((MONITORING / "prometheus" / "prometheus.yml").read_text())
    compose = yaml.safe_load((REPO_ROOT / "docker-compose.yml").read_text())
    (alertmanagers,) = config["alerting"]["alertmanagers"]
    (target,) = alertmanagers["static_configs"][0]["targets"]
    host, port = target.split(":")
    alertmanager = compose["services"][host]
    assert f"{port}:{port}" in alertmanager["ports"]
    assert host in compose["services"]["prometheus"]["depends_on"]
    mounts = container_mounts(alertmanager["volumes"])
    assert mounts["./monitoring/alertmanager/alertmanager.yml"] == "/etc/alertmanager/alertmanager.yml"


def container_mounts(volumes: list[str]) -> dict[str, str]:
    """Each bind mount's host path and its path in the container."""
    return dict(volume.split(":")[:2] for volume in volumes)


def test_grafana_provisions_the_dashboard_from_the_mounted_folder() -> None:
    compose = yaml.safe_load((REPO_ROOT / "docker-compose.yml").read_text())
    provider = yaml.safe_load((MONITORING / "grafana" / "provisioning" / "dashboards" / "fraud.yml").read_text())
    datasource = yaml.safe_load(
        (MONITORING / "grafana" / "provisioning" / "datasources" / "prometheus.yml").read_text()
    )
    mounts = dict(volume.rsplit(":", 2)[:2] for volume in compose["services"]["grafana"]["volumes"])
    assert mounts["./monitoring/grafana/dashboards"] == provider["providers"][0]["options"]["path"]
    assert datasource["datasources"][0]["url"] == "http://prometheus:9090"
    uid = datasource["datasources"][0]["uid"]
    dashboard = json.loads((MONITORING / "grafana" / "dashboards" / "fraud-scorer.json").read_text())
    assert all(panel["datasource"]["uid"] == uid for panel in dashboard["panels"])
