"""Who is champion, and who was: the audit trail of the `champion` alias, as the registry keeps it.

`training/lifecycle.py` writes the trail (every move of the alias under a registry lock,
numbered, never overwritten); the scorer reads it to find the last approved champion when
the alias points at a version nobody approved. The same trail records each change of the
rollout (the `challenger` alias and its plan, contracts/rollout.py); those entries never
count as champions.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, fields
from typing import Literal

from mlflow.entities.model_registry import ModelVersion
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from contracts.registry import AUDIT_TAG_PREFIX, RegistryUnavailable, VersionTag, is_absent, registered_model_tags
from contracts.settings import Settings

MoveKind = Literal["promote", "rollback", "external", "challenger_start", "challenger_share", "challenger_stop"]
# The kinds that move `champion`; any other entry (a challenger's, or a kind a later version
# writes) is no champion.
CHAMPION_KINDS: frozenset[str] = frozenset({"promote", "rollback", "external"})


@dataclass(frozen=True)
class AliasMove:
    """One move of an alias; `external` is a move of `champion` made outside `fraud model`, found later.

    Challenger entries carry the rollout's mode and share (None on champion entries, and on
    entries written before rollouts existed).
    """

    kind: MoveKind
    at: str
    by: str
    from_version: str | None
    to_version: str | None  # None: the alias was removed
    reason: str
    mode: str | None = None
    share: float | None = None

    @property
    def moves_champion(self) -> bool:
        return self.kind in CHAMPION_KINDS

    def to_tag(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_tag(cls, text: str) -> AliasMove:
        """An entry as stored; a field this code does not know (written by a later version) is ignored."""
        known = {field.name for field in fields(cls)}
        return cls(**{key: value for key, value in json.loads(text).items() if key in known})


def audit_tag(sequence: int) -> str:
    """The registered-model tag of the trail's entry number `sequence` (1, 2, ...)."""
    return f"{AUDIT_TAG_PREFIX}{sequence:06d}"


def read_audit_trail(client: MlflowClient, settings: Settings) -> list[AliasMove]:
    """Every recorded move of the alias, oldest first; none when the model is not registered yet."""
    tags = registered_model_tags(client, settings)
    if tags is None:
        return []
    keys = sorted(key for key in tags if key.startswith(AUDIT_TAG_PREFIX))
    return [AliasMove.from_tag(tags[key]) for key in keys]


def champion_history(moves: list[AliasMove]) -> list[str]:
    """Champions in order, as a stack: a promotion (or a move outside `fraud model`) pushes, a
    rollback pops back to its target (skipping the versions it passed over). Entries of other
    aliases (the challenger's) are skipped."""
    stack: list[str] = []
    for move in moves:
        if not move.moves_champion:
            continue
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
