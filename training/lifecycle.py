"""Model lifecycle in the MLflow registry: approve, promote, roll back, list, audit.

Deploying is moving the `champion` alias; rolling back is moving it back. Only approved
versions can become champion. Every alias move is kept in the registry itself, as a
registered-model tag `alias_audit.NNNNNN` holding who, when, from, to and why, so the
trail lives with the models (SQLite locally, PostgreSQL in production) and `mlflow ui`
shows it.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Literal

from mlflow.entities.model_registry import ModelVersion
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from contracts.registry import AUDIT_TAG_PREFIX, CHAMPION, VersionTag, alias_version, registry_client
from contracts.settings import Settings


class LifecycleError(ValueError):
    """A registry action that is not allowed; the message says what to do instead."""


@dataclass(frozen=True)
class AliasMove:
    """One move of the champion alias."""

    kind: Literal["promote", "rollback"]
    at: str
    by: str
    from_version: str | None
    to_version: str
    reason: str


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
        raise LifecycleError(
            f"{settings.model_name} has no version {version}; `fraud model list` shows the versions"
        ) from error


def is_approved(version: ModelVersion) -> bool:
    return bool(version.tags.get(VersionTag.APPROVED_BY))


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
    for key, value in (
        (VersionTag.APPROVED_BY, by.strip()),
        (VersionTag.APPROVED_AT, _now()),
        (VersionTag.APPROVAL_NOTE, note.strip()),
    ):
        client.set_model_version_tag(settings.model_name, str(version), key, value)
    return get_version(client, settings, version)


def promote(settings: Settings, version: str, by: str, reason: str) -> AliasMove:
    """Point `champion` at an approved `version` and record the move."""
    client = registry_client(settings)
    target = get_version(client, settings, version)
    if not is_approved(target):
        raise LifecycleError(
            f"version {version} is not approved; run `fraud model approve {version} --by NAME --note TEXT` first"
        )
    previous = alias_version(client, settings, CHAMPION)
    if previous == str(version):
        raise LifecycleError(f"version {version} is already the champion")
    return _move(client, settings, "promote", previous, str(version), by, reason)


def rollback(settings: Settings, by: str, reason: str) -> AliasMove:
    """Move `champion` back to the champion before the current one."""
    client = registry_client(settings)
    history = champion_history(audit_trail(settings))
    current = alias_version(client, settings, CHAMPION)
    if current is None or len(history) < 2 or history[-1] != current:
        raise LifecycleError("there is no previous champion to roll back to")
    target = history[-2]
    if not is_approved(get_version(client, settings, target)):
        raise LifecycleError(f"the previous champion, version {target}, is not approved")
    return _move(client, settings, "rollback", current, target, by, reason)


def champion_history(moves: list[AliasMove]) -> list[str]:
    """Champions in order, as a stack: a promotion pushes, a rollback pops."""
    stack: list[str] = []
    for move in moves:
        if move.kind == "promote":
            if not stack and move.from_version:
                stack.append(move.from_version)
            stack.append(move.to_version)
        elif stack:
            stack.pop()
    return stack


def audit_trail(settings: Settings) -> list[AliasMove]:
    """Every recorded alias move, oldest first."""
    client = registry_client(settings)
    try:
        tags = client.get_registered_model(settings.model_name).tags
    except MlflowException:
        return []
    keys = sorted(k for k in tags if k.startswith(AUDIT_TAG_PREFIX))
    return [AliasMove(**json.loads(tags[key])) for key in keys]


def list_versions(settings: Settings) -> list[VersionSummary]:
    """Every version with its approval, aliases and holdout metrics, newest first."""
    client = registry_client(settings)
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


def _move(
    client: MlflowClient,
    settings: Settings,
    kind: Literal["promote", "rollback"],
    from_version: str | None,
    to_version: str,
    by: str,
    reason: str,
) -> AliasMove:
    if not by.strip():
        raise LifecycleError("say who moves the alias (--by NAME)")
    move = AliasMove(
        kind=kind,
        at=_now(),
        by=by.strip(),
        from_version=from_version,
        to_version=to_version,
        reason=reason.strip() or kind,
    )
    client.set_registered_model_alias(settings.model_name, CHAMPION, to_version)
    sequence = len(audit_trail(settings)) + 1
    client.set_registered_model_tag(settings.model_name, f"{AUDIT_TAG_PREFIX}{sequence:06d}", json.dumps(asdict(move)))
    return move


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")
