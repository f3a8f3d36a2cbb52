"""Who is champion, and who was: the audit trail of the `champion` alias, as the registry keeps it.

`training/lifecycle.py` writes the trail (every move of the alias under a registry lock,
numbered, never overwritten); the scorer reads it to find the last approved champion when
the alias points at a version nobody approved.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from typing import Literal

from mlflow.entities.model_registry import ModelVersion
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from contracts.registry import AUDIT_TAG_PREFIX, REGISTRY_ERRORS, RegistryUnavailable, VersionTag, is_absent
from contracts.settings import Settings

MoveKind = Literal["promote", "rollback", "external"]


@dataclass(frozen=True)
class AliasMove:
    """One move of the champion alias; `external` is a move made outside `fraud model`, found later."""

    kind: MoveKind
    at: str
    by: str
    from_version: str | None
    to_version: str | None  # None: the alias was removed
    reason: str

    def to_tag(self) -> str:
        return json.dumps(asdict(self))


def audit_tag(sequence: int) -> str:
    """The registered-model tag of the trail's entry number `sequence` (1, 2, ...)."""
    return f"{AUDIT_TAG_PREFIX}{sequence:06d}"


def read_audit_trail(client: MlflowClient, settings: Settings) -> list[AliasMove]:
    """Every recorded move of the alias, oldest first; none when the model is not registered yet."""
    try:
        tags = client.get_registered_model(settings.model_name).tags
    except MlflowException as error:
        if is_absent(error):
            return []
        raise RegistryUnavailable.of(settings, error) from error
    except REGISTRY_ERRORS as error:
        raise RegistryUnavailable.of(settings, error) from error
    keys = sorted(key for key in tags if key.startswith(AUDIT_TAG_PREFIX))
    return [AliasMove(**json.loads(tags[key])) for key in keys]


def champion_history(moves: list[AliasMove]) -> list[str]:
    """Champions in order, as a stack: a promotion (or a move outside `fraud model`) pushes, a
    rollback pops back to its target (skipping the versions it passed over)."""
    stack: list[str] = []
    for move in moves:
        if move.kind == "rollback":
            while stack and stack[-1] != move.to_version:
                stack.pop()
            continue
        if move.to_version is None:  # the alias was removed outside `fraud model`
            stack.clear()
            continue
        if not stack and move.from_version:
            stack.append(move.from_version)
        stack.append(move.to_version)
    return stack


def is_approved(version: ModelVersion) -> bool:
    return bool(version.tags.get(VersionTag.APPROVED_BY))


def last_approved_champion(
    client: MlflowClient, settings: Settings, moves: list[AliasMove], before: str | None = None
) -> str | None:
    """The most recent champion of the trail that is approved, below `before` when it is on top."""
    history = champion_history(moves)
    if before is not None and history and history[-1] == before:
        history = history[:-1]
    for version in reversed(history):
        try:
            if version != before and is_approved(client.get_model_version(settings.model_name, version)):
                return version
        except MlflowException as error:
            if not is_absent(error):  # a version deleted since: go on with the one before it
                raise RegistryUnavailable.of(settings, error) from error
    return None
