"""Safe rollout in the registry (SQLite and PostgreSQL): the challenger, its plan, and the trail."""

from __future__ import annotations

import json

import pytest

from contracts.champion import audit_tag, champion_history, last_approved_champion, read_audit_trail
from contracts.registry import CHAMPION, alias_version, registry_client
from contracts.rollout import CHALLENGER, PLAN_TAG, RolloutPlan
from contracts.settings import Settings
from tests.support.registry import register
from training.lifecycle import (
    LifecycleError,
    approve,
    audit_trail,
    promote,
    rollback,
    rollout_plan,
    set_rollout_share,
    start_rollout,
    stop_rollout,
)


def approved_versions(registry: Settings, count: int) -> list[str]:
    versions = [register(registry, seed) for seed in range(1, count + 1)]
    for version in versions:
        approve(registry, version, by="alice", note="ok")
    return versions


def model_tags(registry: Settings) -> dict[str, str]:
    return dict(registry_client(registry).get_registered_model(registry.model_name).tags)


def test_rollout_start_share_stop_moves_the_challenger_and_records_each_change(registry: Settings) -> None:
    v1, v2 = approved_versions(registry, 2)
    promote(registry, v1, by="bob", reason="first")
    client = registry_client(registry)

    start_rollout(registry, v2, mode="canary", share=0.1, by="carol", reason="try v2")
    plan = rollout_plan(registry)
    assert plan is not None and (plan.version, plan.mode, plan.share, plan.started_by) == (v2, "canary", 0.1, "carol")
    assert alias_version(client, registry, CHALLENGER) == v2

    set_rollout_share(registry, 0.5, by="dave", reason="looks fine")
    widened = rollout_plan(registry)
    assert widened is not None and widened.share == 0.5
    assert (widened.started_by, widened.started_at) == ("carol", plan.started_at)  # still the same rollout

    stop_rollout(registry, by="erin", reason="done")
    assert rollout_plan(registry) is None
    assert alias_version(client, registry, CHALLENGER) is None
    assert PLAN_TAG not in model_tags(registry)
    assert alias_version(client, registry, CHAMPION) == v1  # the champion never moved

    trail = audit_trail(registry)
    assert [(m.kind, m.by, m.from_version, m.to_version, m.mode, m.share, m.reason) for m in trail] == [
        ("promote", "bob", None, v1, None, None, "first"),
        ("challenger_start", "carol", None, v2, "canary", 0.1, "try v2"),
        ("challenger_share", "dave", v2, v2, "canary", 0.5, "looks fine"),
        ("challenger_stop", "erin", v2, None, "canary", 0.5, "done"),
    ]
    assert len(audit_trail(registry)) == 4  # challenger entries are no champion moves to reconcile


def test_rollout_refusals_say_what_to_do_and_change_nothing(registry: Settings) -> None:
    v1, v2 = approved_versions(registry, 2)
    v3 = register(registry, 3)
    promote(registry, v1, by="bob", reason="first")
    with pytest.raises(LifecycleError, match=f"version {v3} is not approved"):
        start_rollout(registry, v3, mode="shadow", share=0.1, by="carol", reason="")
    with pytest.raises(LifecycleError, match="is the champion already"):
        start_rollout(registry, v1, mode="shadow", share=0.1, by="carol", reason="")
    with pytest.raises(LifecycleError, match="rollout mode 'blue' is not one of shadow, canary"):
        start_rollout(registry, v2, mode="blue", share=0.1, by="carol", reason="")
    with pytest.raises(LifecycleError, match=r"share 1\.5 is not between 0 and 1"):
        start_rollout(registry, v2, mode="shadow", share=1.5, by="carol", reason="")
    with pytest.raises(LifecycleError, match="--by"):
        start_rollout(registry, v2, mode="shadow", share=0.1, by=" ", reason="")
    with pytest.raises(LifecycleError, match="no rollout is in progress; start one with `fraud rollout start"):
        set_rollout_share(registry, 0.2, by="carol", reason="")
    with pytest.raises(LifecycleError, match="none to stop"):
        stop_rollout(registry, by="carol", reason="")
    assert rollout_plan(registry) is None

    start_rollout(registry, v2, mode="shadow", share=0.2, by="carol", reason="")
    approve(registry, v3, by="alice", note="ok")
    with pytest.raises(LifecycleError, match=f"version {v2} is the challenger already; stop that rollout first"):
        start_rollout(registry, v3, mode="canary", share=0.1, by="dave", reason="")
    with pytest.raises(LifecycleError, match=r"share -0\.1 is not between 0 and 1"):
        set_rollout_share(registry, -0.1, by="dave", reason="")
    with pytest.raises(LifecycleError, match=r"meets 0\.2 of traffic already"):
        set_rollout_share(registry, 0.2, by="dave", reason="")
    plan = rollout_plan(registry)
    assert plan is not None and (plan.version, plan.mode, plan.share) == (v2, "shadow", 0.2)
    assert [m.kind for m in audit_trail(registry)] == ["promote", "challenger_start"]


def test_challenger_entries_leave_champion_history_and_rollback_alone(registry: Settings) -> None:
    v1, v2, v3 = approved_versions(registry, 3)
    promote(registry, v1, by="bob", reason="first")
    promote(registry, v2, by="bob", reason="second")
    start_rollout(registry, v3, mode="canary", share=0.3, by="carol", reason="")
    set_rollout_share(registry, 1.0, by="carol", reason="")
    stop_rollout(registry, by="carol", reason="")  # an entry with no target: not "champion removed"
    client = registry_client(registry)
    trail = read_audit_trail(client, registry)
    assert champion_history(trail) == [v1, v2]
    assert last_approved_champion(client, registry, trail, before=v2) == v1  # the scorer's fallback
    back = rollback(registry, by="dave", reason="alerts")
    assert (back.from_version, back.to_version) == (v2, v1)


def test_a_trail_written_before_rollouts_still_reads_and_grows(registry: Settings) -> None:
    v1, v2 = approved_versions(registry, 2)
    client = registry_client(registry)
    # An entry as the platform wrote it before rollouts: no mode, no share.
    old_entry = {"kind": "promote", "at": "2026-01-01T00:00:00+00:00", "by": "bob"}
    old_entry |= {"from_version": None, "to_version": v1, "reason": "first"}
    client.set_registered_model_tag(registry.model_name, audit_tag(1), json.dumps(old_entry))
    client.set_registered_model_alias(registry.model_name, CHAMPION, v1)
    [old] = audit_trail(registry)
    assert (old.kind, old.to_version, old.mode, old.share) == ("promote", v1, None, None)

    start_rollout(registry, v2, mode="shadow", share=0.25, by="carol", reason="")
    tags = model_tags(registry)
    assert json.loads(tags[audit_tag(2)])["kind"] == "challenger_start"
    assert champion_history(audit_trail(registry)) == [v1]


def test_a_plan_without_its_alias_is_no_rollout_and_a_new_start_replaces_it(registry: Settings) -> None:
    v1, v2, v3 = approved_versions(registry, 3)
    promote(registry, v1, by="bob", reason="first")
    # What a start cut off between its two writes leaves: the plan tag, no alias.
    stale = RolloutPlan(v2, "canary", 0.5, "2026-01-01T00:00:00+00:00", "carol")
    registry_client(registry).set_registered_model_tag(registry.model_name, PLAN_TAG, stale.to_tag())
    assert rollout_plan(registry) is None
    start_rollout(registry, v3, mode="shadow", share=0.1, by="dave", reason="")
    plan = rollout_plan(registry)
    assert plan is not None and (plan.version, plan.mode, plan.share) == (v3, "shadow", 0.1)


def test_promoting_the_challenger_ends_its_rollout(registry: Settings) -> None:
    v1, v2 = approved_versions(registry, 2)
    promote(registry, v1, by="bob", reason="first")
    start_rollout(registry, v2, mode="canary", share=0.2, by="carol", reason="")
    promote(registry, v2, by="dave", reason="canary went well")
    client = registry_client(registry)
    assert alias_version(client, registry, CHAMPION) == v2
    assert alias_version(client, registry, CHALLENGER) is None and rollout_plan(registry) is None
    assert PLAN_TAG not in model_tags(registry)
    last = audit_trail(registry)[-1]
    assert (last.kind, last.by, last.from_version, last.mode, last.share) == (
        "challenger_stop",
        "dave",
        v2,
        "canary",
        0.2,
    )
    assert last.reason == f"v{v2} became champion (promote)"
