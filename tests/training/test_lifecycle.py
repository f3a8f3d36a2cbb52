"""Registry lifecycle on real MLflow stores (SQLite and PostgreSQL): approval, alias moves, audit."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import mlflow
import pytest
from mlflow.tracking import MlflowClient

from contracts.champion import audit_tag
from contracts.registry import RegistryUnavailable, alias_version, registry_client
from contracts.settings import Settings
from tests.support.registry import register, relayed_registry
from tests.support.tcp_proxy import TcpProxy
from training.lifecycle import LifecycleError, approve, audit_trail, list_versions, promote, rollback


def test_unapproved_version_cannot_become_champion(registry: Settings) -> None:
    version = register(registry, 1)
    with pytest.raises(LifecycleError, match="not approved"):
        promote(registry, version, by="ops", reason="try")
    assert alias_version(registry_client(registry), registry) is None


def test_approval_records_who_when_and_why(registry: Settings) -> None:
    version = register(registry, 1)
    approved = approve(registry, version, by="alice", note="checked the holdout report")
    assert approved.tags["approval.by"] == "alice"
    assert approved.tags["approval.note"] == "checked the holdout report"
    assert approved.tags["approval.at"].startswith("20")
    with pytest.raises(LifecycleError, match="already approved by alice"):
        approve(registry, version, by="bob", note="again")
    with pytest.raises(LifecycleError, match="--by"):
        approve(registry, register(registry, 2), by=" ", note="x")


def test_approving_an_unknown_version_names_the_problem(registry: Settings) -> None:
    register(registry, 1)
    with pytest.raises(LifecycleError, match="has no version 99"):
        approve(registry, "99", by="alice", note="x")


def test_promote_and_rollback_move_the_alias_and_keep_an_audit_trail(registry: Settings) -> None:
    v1, v2, v3 = (register(registry, seed) for seed in (1, 2, 3))
    for version in (v1, v2, v3):
        approve(registry, version, by="alice", note="ok")
    client = registry_client(registry)
    promote(registry, v1, by="bob", reason="first")
    promote(registry, v2, by="bob", reason="better")
    promote(registry, v3, by="carol", reason="even better")
    assert alias_version(client, registry) == v3
    back = rollback(registry, by="dave", reason="alerts")
    assert (back.from_version, back.to_version) == (v3, v2)
    assert alias_version(client, registry) == v2
    rollback(registry, by="dave", reason="still alerts")
    assert alias_version(client, registry) == v1
    with pytest.raises(LifecycleError, match="no previous approved champion"):
        rollback(registry, by="dave", reason="nothing left")
    trail = audit_trail(registry)
    assert [(m.kind, m.by, m.from_version, m.to_version) for m in trail] == [
        ("promote", "bob", None, v1),
        ("promote", "bob", v1, v2),
        ("promote", "carol", v2, v3),
        ("rollback", "dave", v3, v2),
        ("rollback", "dave", v2, v1),
    ]
    assert trail[3].reason == "alerts" and trail[3].at


def test_promoting_the_champion_again_is_refused(registry: Settings) -> None:
    version = register(registry, 1)
    approve(registry, version, by="alice", note="ok")
    promote(registry, version, by="bob", reason="first")
    with pytest.raises(LifecycleError, match="already the champion"):
        promote(registry, version, by="bob", reason="again")
    assert len(audit_trail(registry)) == 1


def test_list_shows_status_metrics_approver_and_aliases(registry: Settings) -> None:
    v1, v2 = register(registry, 1), register(registry, 2)
    approve(registry, v1, by="alice", note="ok")
    promote(registry, v1, by="bob", reason="first")
    listed = {v.version: v for v in list_versions(registry)}
    assert listed[v1].aliases == ["champion"] and listed[v1].approved_by == "alice"
    assert listed[v2].aliases == [] and listed[v2].approved_by is None
    assert listed[v1].metrics["auc_roc"] == 1.0
    assert listed[v1].data_start == "2024-01-01"


def test_version_carries_its_lineage(registry: Settings) -> None:
    version = register(registry, 1)
    client = MlflowClient(tracking_uri=registry.mlflow_tracking_uri)
    tags = client.get_model_version(registry.model_name, version).tags
    assert tags["feature_service"] == "fraud_detection_v1"
    assert tags["features"] == '["amount", "customer_id_nb_tx_1day_window"]'
    assert tags["data_rows"] == "200" and tags["code_version"] == "test"
    run = client.get_run(client.get_model_version(registry.model_name, version).run_id)
    dataset_input = run.inputs.dataset_inputs[0]
    assert dataset_input.dataset.digest == tags["data_digest"]
    assert {t.key: t.value for t in dataset_input.tags}["rows"] == "200"


def test_registering_leaves_the_process_wide_tracking_uri_as_it_was(registry: Settings) -> None:
    before = mlflow.get_tracking_uri(), mlflow.get_registry_uri()
    register(registry, 1)
    assert (mlflow.get_tracking_uri(), mlflow.get_registry_uri()) == before


# --- Never guess on an error; one trail, also with two operators; moves made elsewhere ---------


@pytest.fixture()
def relayed(settings: Settings, request: pytest.FixtureRequest) -> Iterator[tuple[Settings, TcpProxy]]:
    """The run's PostgreSQL registry reached through a relay the test can cut, under a model of its own."""
    name = request.node.name[-40:]
    with relayed_registry(settings, data_dir=settings.data_dir / name, model_name=f"relayed_{name}") as relayed:
        yield relayed


def test_a_failing_registry_is_never_read_as_no_champion(relayed: tuple[Settings, TcpProxy]) -> None:
    registry, proxy = relayed
    assert alias_version(registry_client(registry), registry) is None  # reachable, nothing there: None
    proxy.cut()
    with pytest.raises(RegistryUnavailable, match=r"registry at .* failed"):
        alias_version(registry_client(registry), registry)


def test_a_promotion_the_registry_cuts_off_leaves_nothing_half_done(relayed: tuple[Settings, TcpProxy]) -> None:
    registry, proxy = relayed
    v1, v2 = register(registry, 1), register(registry, 2)
    for version in (v1, v2):
        approve(registry, version, by="alice", note="ok")
    promote(registry, v1, by="bob", reason="first")
    proxy.cut()
    with pytest.raises(RegistryUnavailable):
        promote(registry, v2, by="bob", reason="while the registry is gone")
    proxy.start()
    assert alias_version(registry_client(registry), registry) == v1
    assert [(m.kind, m.to_version) for m in audit_trail(registry)] == [("promote", v1)]


def test_two_operators_promoting_at_once_are_serialised_and_both_recorded(registry: Settings) -> None:
    versions = [register(registry, seed) for seed in (1, 2, 3)]
    for version in versions:
        approve(registry, version, by="alice", note="ok")
    promote(registry, versions[0], by="alice", reason="first")
    errors: list[BaseException] = []

    def operator(version: str, name: str) -> None:
        try:
            promote(registry, version, by=name, reason="at the same time")
        except BaseException as error:  # the test reports whatever either thread met
            errors.append(error)

    threads = [threading.Thread(target=operator, args=(v, f"op{i}")) for i, v in enumerate(versions[1:])]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    trail = audit_trail(registry)
    assert [m.kind for m in trail] == ["promote"] * 3
    assert trail[2].from_version == trail[1].to_version  # the second saw the first's move
    assert alias_version(registry_client(registry), registry) == trail[-1].to_version
    tags = registry_client(registry).get_registered_model(registry.model_name).tags
    assert sorted(k for k in tags if k.startswith("alias_audit.")) == [audit_tag(i) for i in (1, 2, 3)]


def test_a_move_made_outside_fraud_model_is_recorded_and_rollback_skips_the_unapproved(registry: Settings) -> None:
    v1, v2, v3 = (register(registry, seed) for seed in (1, 2, 3))
    for version in (v1, v2):
        approve(registry, version, by="alice", note="ok")
    promote(registry, v1, by="bob", reason="first")
    promote(registry, v2, by="bob", reason="second")
    # What MLflow's UI alias editor does: nobody approved v3.
    registry_client(registry).set_registered_model_alias(registry.model_name, "champion", v3)
    trail = audit_trail(registry)
    assert (trail[-1].kind, trail[-1].from_version, trail[-1].to_version) == ("external", v2, v3)
    assert "outside `fraud model`" in trail[-1].by
    assert len(audit_trail(registry)) == 3  # found once, recorded once
    back = rollback(registry, by="dave", reason="unapproved champion")
    assert (back.from_version, back.to_version) == (v3, v2)
    back = rollback(registry, by="dave", reason="further")
    assert (back.from_version, back.to_version) == (v2, v1)
