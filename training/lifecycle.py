"""Model lifecycle in the MLflow registry: approve, promote, roll back, list, audit.

Deploying is moving the `champion` alias; rolling back is moving it back. Only approved
versions can become champion. Every alias move is kept in the registry itself, as a
registered-model tag `alias_audit.NNNNNN` holding who, when, from, to and why, so the
trail lives with the models (SQLite locally, PostgreSQL in production) and `mlflow ui`
shows it (contracts/champion.py reads it).

A move and its entry are written under a lock held in the registry (a registered model
that only one operator at a time can create), the alias first, then its entry, numbered
from the trail read under that lock: two operators at once are serialised, and no entry
is ever overwritten. A move made outside `fraud model` (MLflow's UI or API), or one whose
entry a crash kept from being written, is found by the next lifecycle command and
recorded as `external`. A registry that fails is never read as "nothing there": only
"does not exist" is.

A safe rollout puts one approved version beside the champion as `challenger`, with its plan
(shadow or canary, and a share of traffic: contracts/rollout.py) in a registered-model tag.
Its start, share changes and stop are made under the same lock and recorded in the same
trail (kinds `challenger_*`, which never count as champions). A challenger that becomes
champion (promoted, or rolled back to) ends its rollout: challenger and champion are never
the same version.
"""

from __future__ import annotations

import contextlib
import getpass
import os
import random
import socket
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime

from mlflow.entities.model_registry import ModelVersion
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from contracts.champion import (
    AliasMove,
    MoveKind,
    audit_tag,
    champion_history,
    is_approved,
    last_approved_champion,
    read_audit_trail,
)
from contracts.registry import (
    CHAMPION,
    REGISTRY_ERRORS,
    RegistryUnavailable,
    VersionTag,
    alias_version,
    is_absent,
    registry_client,
)
from contracts.rollout import CHALLENGER, PLAN_TAG, RolloutPlan, read_plan
from contracts.settings import Settings

LOCK_SUFFIX = "__champion_lock"
LOCK_WAIT_S = 20.0  # how long an operator waits for another's move to finish
LOCK_STALE_S = 120.0  # a lock older than this was left by a crashed operator: broken
EXTERNAL_BY = "unknown (outside `fraud model`)"


class LifecycleError(ValueError):
    """A registry action that is not allowed; the message says what to do instead."""


@dataclass(frozen=True)
class VersionSummary:
    version: str
    created_at: str
    approved_by: str | None
    approved_at: str | None
    aliases: list[str]
    metrics: dict[str, float]
    data_start: str | None
    data_end: str | None


def get_version(client: MlflowClient, settings: Settings, version: str) -> ModelVersion:
    """A registered version, or a LifecycleError naming what exists."""
    try:
        return client.get_model_version(settings.model_name, str(version))
    except MlflowException as error:
        if not is_absent(error):
            raise RegistryUnavailable.of(settings, error) from error
        raise LifecycleError(
            f"{settings.model_name} has no version {version}; `fraud model list` shows the versions"
        ) from error
    except REGISTRY_ERRORS as error:
        raise RegistryUnavailable.of(settings, error) from error


def approve(settings: Settings, version: str, by: str, note: str) -> ModelVersion:
    """Record who approved `version`, when and why; approval is what allows promotion."""
    if not by.strip() or not note.strip():
        raise LifecycleError("an approval needs a name (--by) and a note (--note)")
    client = registry_client(settings)
    model_version = get_version(client, settings, version)
    if is_approved(model_version):
        raise LifecycleError(
            f"version {version} was already approved by {model_version.tags[VersionTag.APPROVED_BY]} "
            f"at {model_version.tags.get(VersionTag.APPROVED_AT)}"
        )
    with _registry_errors(settings):
        # The time first, the name last: `approval.by` is what makes a version approved.
        for key, value in (
            (VersionTag.APPROVED_AT, _now()),
            (VersionTag.APPROVAL_NOTE, note.strip()),
            (VersionTag.APPROVED_BY, by.strip()),
        ):
            client.set_model_version_tag(settings.model_name, str(version), key, value)
    return get_version(client, settings, version)


def promote(settings: Settings, version: str, by: str, reason: str) -> AliasMove:
    """Point `champion` at an approved `version` and record the move."""
    _require_name(by)
    client = registry_client(settings)
    with _champion_lock(client, settings, by):
        trail = _reconciled_trail(client, settings)
        if not is_approved(get_version(client, settings, version)):
            raise LifecycleError(
                f"version {version} is not approved; run `fraud model approve {version} --by NAME --note TEXT` first"
            )
        previous = alias_version(client, settings, CHAMPION)
        if previous == str(version):
            raise LifecycleError(f"version {version} is already the champion")
        return _move(client, settings, trail, "promote", previous, str(version), by, reason)


def rollback(settings: Settings, by: str, reason: str) -> AliasMove:
    """Move `champion` back to the last approved champion before the current one."""
    _require_name(by)
    client = registry_client(settings)
    with _champion_lock(client, settings, by):
        trail = _reconciled_trail(client, settings)
        current = alias_version(client, settings, CHAMPION)
        target = last_approved_champion(client, settings, trail, before=current) if current else None
        if current is None or target is None:
            raise LifecycleError("there is no previous approved champion to roll back to")
        return _move(client, settings, trail, "rollback", current, target, by, reason)


def audit_trail(settings: Settings) -> list[AliasMove]:
    """Every move of the alias, oldest first, a move made outside `fraud model` recorded first."""
    client = registry_client(settings)
    if _registered(client, settings) is None:
        return []
    with _champion_lock(client, settings, "fraud model audit"):
        return _reconciled_trail(client, settings)


def list_versions(settings: Settings) -> list[VersionSummary]:
    """Every version with its approval, aliases and holdout metrics, newest first."""
    client = registry_client(settings)
    with _registry_errors(settings):
        versions = client.search_model_versions(f"name = '{settings.model_name}'")
        summaries = []
        for version in sorted(versions, key=lambda v: int(v.version), reverse=True):
            full = client.get_model_version(settings.model_name, version.version)
            metrics = client.get_run(full.run_id).data.metrics if full.run_id else {}
            summaries.append(
                VersionSummary(
                    version=str(full.version),
                    created_at=datetime.fromtimestamp(full.creation_timestamp / 1000, UTC).isoformat(),
                    approved_by=full.tags.get(VersionTag.APPROVED_BY),
                    approved_at=full.tags.get(VersionTag.APPROVED_AT),
                    aliases=list(full.aliases),
                    metrics=dict(metrics),
                    data_start=full.tags.get(VersionTag.DATA_START),
                    data_end=full.tags.get(VersionTag.DATA_END),
                )
            )
    return summaries


# --- Safe rollout: the challenger ----------------------------------------------------------

START_HINT = "`fraud rollout start V --mode shadow|canary --share S --by NAME`"
STOP_HINT = "`fraud rollout stop --by NAME`"


def start_rollout(settings: Settings, version: str, mode: str, share: float, by: str, reason: str) -> AliasMove:
    """Make an approved `version` (not the champion) the challenger, meeting `share` of traffic
    in `mode` (shadow or canary), and record the start."""
    _require_name(by)
    plan = _plan(str(version), mode, share, started_at=_now(), started_by=by.strip())
    client = registry_client(settings)
    with _champion_lock(client, settings, by):
        trail = _reconciled_trail(client, settings)
        if not is_approved(get_version(client, settings, plan.version)):
            raise LifecycleError(
                f"version {version} is not approved; run `fraud model approve {version} --by NAME --note TEXT` first"
            )
        if alias_version(client, settings, CHAMPION) == plan.version:
            raise LifecycleError(f"version {version} is the champion already; a challenger must be another version")
        current = alias_version(client, settings, CHALLENGER)
        if current is not None:
            raise LifecycleError(f"version {current} is the challenger already; stop that rollout first ({STOP_HINT})")
        with _registry_errors(settings):
            # The plan, then the alias: until the alias is set there is no challenger, and once
            # it is, its plan is there (read_plan ignores a plan naming another version).
            client.set_registered_model_tag(settings.model_name, PLAN_TAG, plan.to_tag())
            client.set_registered_model_alias(settings.model_name, CHALLENGER, plan.version)
        return _record_rollout(client, settings, trail, "challenger_start", None, plan, by, reason)


def set_rollout_share(settings: Settings, share: float, by: str, reason: str) -> AliasMove:
    """Change the share of traffic the challenger meets, and record the change."""
    _require_name(by)
    client = registry_client(settings)
    with _champion_lock(client, settings, by):
        trail = _reconciled_trail(client, settings)
        plan = _plan_in_force(client, settings)
        if share == plan.share:
            raise LifecycleError(f"the challenger v{plan.version} meets {share:g} of traffic already")
        changed = _checked(lambda: replace(plan, share=share))
        with _registry_errors(settings):
            client.set_registered_model_tag(settings.model_name, PLAN_TAG, changed.to_tag())
        return _record_rollout(client, settings, trail, "challenger_share", plan.version, changed, by, reason)


def stop_rollout(settings: Settings, by: str, reason: str) -> AliasMove:
    """Remove the challenger (the alias, then its plan) and record the stop."""
    _require_name(by)
    client = registry_client(settings)
    with _champion_lock(client, settings, by):
        trail = _reconciled_trail(client, settings)
        current = alias_version(client, settings, CHALLENGER)
        if current is None:
            raise LifecycleError(f"no rollout is in progress, so there is none to stop; start one with {START_HINT}")
        return _end_rollout(client, settings, trail, current, by, reason)


def rollout_plan(settings: Settings) -> RolloutPlan | None:
    """The rollout in force, None when there is none.

    A read takes no lock: every change writes the alias and the plan in an order that never
    shows a challenger with another version's plan (see start_rollout, stop_rollout).
    """
    return read_plan(registry_client(settings), settings)


def _end_rollout(
    client: MlflowClient, settings: Settings, trail: list[AliasMove], challenger: str, by: str, reason: str
) -> AliasMove:
    """Remove the `challenger` alias, then its plan, and record the stop (under the lock)."""
    plan = read_plan(client, settings)  # None for an alias set outside `fraud rollout`
    with _registry_errors(settings):
        # The alias first: without it nobody meets the challenger, whatever the tag says.
        client.delete_registered_model_alias(settings.model_name, CHALLENGER)
        if PLAN_TAG in client.get_registered_model(settings.model_name).tags:
            client.delete_registered_model_tag(settings.model_name, PLAN_TAG)
    move = AliasMove(
        kind="challenger_stop",
        at=_now(),
        by=by.strip(),
        from_version=challenger,
        to_version=None,
        reason=reason.strip() or "challenger_stop",
        mode=plan.mode if plan else None,
        share=plan.share if plan else None,
    )
    _record(client, settings, trail, move)
    return move


def _plan(version: str, mode: str, share: float, started_at: str, started_by: str) -> RolloutPlan:
    return _checked(lambda: RolloutPlan(version, mode, share, started_at, started_by))  # type: ignore[arg-type]


def _checked(make: Callable[[], RolloutPlan]) -> RolloutPlan:
    """A plan, or the LifecycleError saying which of its values is wrong (mode, share)."""
    try:
        return make()
    except ValueError as error:
        raise LifecycleError(str(error)) from error


def _plan_in_force(client: MlflowClient, settings: Settings) -> RolloutPlan:
    plan = read_plan(client, settings)
    if plan is not None:
        return plan
    current = alias_version(client, settings, CHALLENGER)
    if current is None:
        raise LifecycleError(f"no rollout is in progress; start one with {START_HINT}")
    raise LifecycleError(
        f"version {current} is challenger without a plan (set outside `fraud rollout`); "
        f"stop it ({STOP_HINT}) and start it again"
    )


def _record_rollout(
    client: MlflowClient,
    settings: Settings,
    trail: list[AliasMove],
    kind: MoveKind,
    from_version: str | None,
    plan: RolloutPlan,
    by: str,
    reason: str,
) -> AliasMove:
    move = AliasMove(
        kind=kind,
        at=_now(),
        by=by.strip(),
        from_version=from_version,
        to_version=plan.version,
        reason=reason.strip() or kind,
        mode=plan.mode,
        share=plan.share,
    )
    _record(client, settings, trail, move)
    return move


# --- Writing the trail -------------------------------------------------------------------


def _move(
    client: MlflowClient,
    settings: Settings,
    trail: list[AliasMove],
    kind: MoveKind,
    from_version: str | None,
    to_version: str,
    by: str,
    reason: str,
) -> AliasMove:
    """Move the alias, then record the move (under the lock: the trail read is the trail written);
    promoting (or rolling back to) the challenger ends its rollout."""
    move = AliasMove(
        kind=kind,
        at=_now(),
        by=by.strip(),
        from_version=from_version,
        to_version=to_version,
        reason=reason.strip() or kind,
    )
    with _registry_errors(settings):
        client.set_registered_model_alias(settings.model_name, CHAMPION, to_version)
    _record(client, settings, trail, move)
    if alias_version(client, settings, CHALLENGER) == to_version:
        # The challenger became champion: its rollout is over (the champion moves first, so a
        # move cut off between the two still promoted, and `fraud rollout stop` finishes it).
        _end_rollout(client, settings, trail, to_version, by, f"v{to_version} became champion ({kind})")
    return move


def _record(client: MlflowClient, settings: Settings, trail: list[AliasMove], move: AliasMove) -> None:
    with _registry_errors(settings):
        client.set_registered_model_tag(settings.model_name, audit_tag(len(trail) + 1), move.to_tag())
    trail.append(move)


def _reconciled_trail(client: MlflowClient, settings: Settings) -> list[AliasMove]:
    """The trail, with an `external` entry added when the alias is not where the trail left it."""
    trail = read_audit_trail(client, settings)
    history = champion_history(trail)
    recorded = history[-1] if history else None
    current = alias_version(client, settings, CHAMPION)
    if current != recorded:
        _record(
            client,
            settings,
            trail,
            AliasMove(
                kind="external",
                at=_now(),
                by=EXTERNAL_BY,
                from_version=recorded,
                to_version=current,
                reason="the alias was moved outside `fraud model` (MLflow's UI or API), or a move's entry was "
                "not written; found and recorded here",
            ),
        )
    return trail


# --- The lock ------------------------------------------------------------------------------


@contextlib.contextmanager
def _champion_lock(client: MlflowClient, settings: Settings, holder: str) -> Iterator[None]:
    """Hold the registry's lock on the champion alias: a registered model only one can create."""
    name = f"{settings.model_name}{LOCK_SUFFIX}"
    me = f"{holder.strip()} ({getpass.getuser()}@{socket.gethostname()}, pid {os.getpid()})"
    deadline = time.monotonic() + LOCK_WAIT_S
    while not _try_lock(client, settings, name, me):
        if time.monotonic() > deadline:
            raise LifecycleError(
                f"another change of the champion is in progress ({_lock_holder(client, name)}); "
                "try again once it is done"
            )
        time.sleep(random.uniform(0.05, 0.2))
    try:
        yield
    finally:
        with _registry_errors(settings):
            client.delete_registered_model(name)


def _try_lock(client: MlflowClient, settings: Settings, name: str, me: str) -> bool:
    try:
        client.create_registered_model(
            name,
            tags={"holder": me, "acquired_at": str(time.time())},
            description="Held while the champion alias moves; deleted after.",
        )
        return True
    except MlflowException as error:
        if error.error_code != "RESOURCE_ALREADY_EXISTS":
            raise RegistryUnavailable.of(settings, error) from error
    except REGISTRY_ERRORS as error:
        raise RegistryUnavailable.of(settings, error) from error
    _break_if_stale(client, name)
    return False


def _break_if_stale(client: MlflowClient, name: str) -> None:
    """Delete a lock its holder left behind (killed mid-move); the next attempt takes it."""
    with contextlib.suppress(MlflowException):  # gone meanwhile, or broken by another operator
        lock = client.get_registered_model(name)
        if time.time() - float(lock.tags.get("acquired_at", "0")) > LOCK_STALE_S:
            client.delete_registered_model(name)


def _lock_holder(client: MlflowClient, name: str) -> str:
    with contextlib.suppress(MlflowException):
        return f"held by {client.get_registered_model(name).tags.get('holder', 'someone')}"
    return "held by someone"


# --- Small helpers -------------------------------------------------------------------------


def _registered(client: MlflowClient, settings: Settings) -> object | None:
    try:
        return client.get_registered_model(settings.model_name)
    except MlflowException as error:
        if is_absent(error):
            return None
        raise RegistryUnavailable.of(settings, error) from error


@contextlib.contextmanager
def _registry_errors(settings: Settings) -> Iterator[None]:
    """A registry failure inside the block ends it with a sentence, never as a half-told success."""
    try:
        yield
    except REGISTRY_ERRORS as error:
        raise RegistryUnavailable.of(settings, error) from error


def _require_name(by: str) -> None:
    if not by.strip():
        raise LifecycleError("say who moves the alias (--by NAME)")


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")
